"""A real Pulsar standalone for tests, started once per pytest session by scripts/pulsar.sh.

``pulsar_service()`` uses an already running Pulsar when both ``KOP_PULSAR_URL`` (e.g.
``pulsar://127.0.0.1:6650``) and ``KOP_PULSAR_ADMIN_URL`` (e.g. ``http://127.0.0.1:8080``) are
set. Otherwise the first call starts a standalone on free loopback ports (or on
``PULSAR_BROKER_PORT``/``PULSAR_WEB_PORT`` when set) with a fresh data directory;
``stop_pulsar_service()`` (called at the end of the session) stops it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PULSAR_SH = REPO / "scripts" / "pulsar.sh"


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


_SERVICE: PulsarService | None = None
_STARTED: tuple[Path, dict[str, str]] | None = None
START_SECONDS: list[float] = []


def pulsar_service() -> PulsarService:
    """The session's Pulsar (started on first use)."""
    global _SERVICE, _STARTED
    if _SERVICE is not None:
        return _SERVICE
    url = os.environ.get("KOP_PULSAR_URL")
    admin_url = os.environ.get("KOP_PULSAR_ADMIN_URL")
    if url or admin_url:
        if not (url and admin_url):
            raise RuntimeError("set both KOP_PULSAR_URL and KOP_PULSAR_ADMIN_URL, or neither")
        _SERVICE = PulsarService(url, admin_url, None)
        return _SERVICE
    data_dir = Path(tempfile.mkdtemp(prefix="kop-test-pulsar-"))
    env = dict(os.environ)
    env.setdefault("PULSAR_BROKER_PORT", str(_free_port()))
    while "PULSAR_WEB_PORT" not in env or env["PULSAR_WEB_PORT"] == env["PULSAR_BROKER_PORT"]:
        env["PULSAR_WEB_PORT"] = str(_free_port())
    t0 = time.monotonic()
    started = _run_script("start", str(data_dir), env=env, timeout=900)
    if started.returncode != 0:
        _run_script("stop", str(data_dir), env=env, timeout=120)
        raise RuntimeError(
            f"scripts/pulsar.sh start failed (exit {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}"
        )
    START_SECONDS.append(time.monotonic() - t0)
    _STARTED = (data_dir, env)
    _SERVICE = PulsarService(
        url=f"pulsar://127.0.0.1:{env['PULSAR_BROKER_PORT']}",
        admin_url=f"http://127.0.0.1:{env['PULSAR_WEB_PORT']}",
        data_dir=data_dir,
    )
    return _SERVICE


def stop_pulsar_service() -> None:
    global _SERVICE, _STARTED
    if _STARTED is not None:
        data_dir, env = _STARTED
        stopped = _run_script("stop", str(data_dir), env=env, timeout=120)
        if stopped.returncode != 0:
            print(f"scripts/pulsar.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}")
    _SERVICE, _STARTED = None, None
