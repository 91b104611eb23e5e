"""Fixtures for tests that need a real Pulsar.

``pulsar_service`` (session scope) uses an already running Pulsar when both ``KOP_PULSAR_URL``
(e.g. ``pulsar://127.0.0.1:6650``) and ``KOP_PULSAR_ADMIN_URL`` (e.g. ``http://127.0.0.1:8080``)
are set. Otherwise it starts a standalone with ``scripts/pulsar.sh start <tmpdir>`` on free
loopback ports (or on ``PULSAR_BROKER_PORT``/``PULSAR_WEB_PORT`` when those are set) and stops it
at the end of the session.

Timings that tests record with the ``pulsar_timings`` fixture are printed in pytest's terminal
summary, and written as JSON to ``$KOP_PULSAR_TIMINGS`` when that is set.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PULSAR_SH = REPO / "scripts" / "pulsar.sh"

_TIMINGS: dict[str, list[float]] = {}


@dataclass(frozen=True)
class PulsarService:
    url: str
    admin_url: str
    data_dir: Path | None  # None when the service was started by someone else

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call the admin REST API; returns the decoded JSON body (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.admin_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def topic_path(self, topic: str) -> str:
        """``persistent://tenant/ns/name`` -> ``/admin/v2/persistent/tenant/ns/name``."""
        parsed = urllib.parse.urlsplit(topic)
        assert parsed.scheme == "persistent", topic
        return f"/admin/v2/persistent/{parsed.netloc}{parsed.path}"

    def topic_stats(self, topic: str) -> dict[str, Any]:
        stats: dict[str, Any] = self.admin("GET", self.topic_path(topic) + "/stats")
        return stats

    def topic_epoch(self, topic: str) -> int | None:
        epoch = self.topic_stats(topic).get("topicEpoch")
        return None if epoch is None else int(epoch)

    def unload(self, topic: str) -> None:
        self.admin("PUT", self.topic_path(topic) + "/unload")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_script(
    *args: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PULSAR_SH), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def pulsar_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarService]:
    url = os.environ.get("KOP_PULSAR_URL")
    admin_url = os.environ.get("KOP_PULSAR_ADMIN_URL")
    if url or admin_url:
        if not (url and admin_url):
            pytest.fail("set both KOP_PULSAR_URL and KOP_PULSAR_ADMIN_URL, or neither")
        yield PulsarService(url, admin_url, None)
        return

    data_dir = tmp_path_factory.mktemp("pulsar")
    env = dict(os.environ)
    env.setdefault("PULSAR_BROKER_PORT", str(_free_port()))
    while "PULSAR_WEB_PORT" not in env or env["PULSAR_WEB_PORT"] == env["PULSAR_BROKER_PORT"]:
        env["PULSAR_WEB_PORT"] = str(_free_port())
    t0 = time.monotonic()
    started = _run_script("start", str(data_dir), env=env, timeout=900)
    if started.returncode != 0:
        _run_script("stop", str(data_dir), env=env, timeout=120)
        pytest.fail(
            f"scripts/pulsar.sh start failed (exit {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    record_timing("pulsar.sh start (incl. fetch) [s]", time.monotonic() - t0)
    service = PulsarService(
        url=f"pulsar://127.0.0.1:{env['PULSAR_BROKER_PORT']}",
        admin_url=f"http://127.0.0.1:{env['PULSAR_WEB_PORT']}",
        data_dir=data_dir,
    )
    try:
        yield service
    finally:
        stopped = _run_script("stop", str(data_dir), env=env, timeout=120)
        if stopped.returncode != 0:
            print(f"scripts/pulsar.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}")


def record_timing(name: str, seconds: float) -> None:
    _TIMINGS.setdefault(name, []).append(seconds)


@pytest.fixture
def pulsar_timings() -> Any:
    """``pulsar_timings(name, seconds)`` records one measurement for the summary."""
    return record_timing


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A fresh, unique non-partitioned topic name for one test."""
    stem = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]
    return f"persistent://public/default/{stem}-{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TIMINGS:
        return
    terminalreporter.section("pulsar fencing timings")
    for name, values in sorted(_TIMINGS.items()):
        vals = sorted(values)
        terminalreporter.write_line(
            f"{name}: n={len(vals)} min={vals[0] * 1000:.1f}ms "
            f"median={vals[len(vals) // 2] * 1000:.1f}ms max={vals[-1] * 1000:.1f}ms"
        )
    out = os.environ.get("KOP_PULSAR_TIMINGS")
    if out:
        Path(out).write_text(json.dumps(_TIMINGS, indent=2, sort_keys=True) + "\n")
