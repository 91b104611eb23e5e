"""Shared pytest fixtures: the servers end-to-end tests run against.

Targets come from ``KOP_TEST_TARGETS`` (comma-separated; default ``kop-cli,kop-embedded``;
``kop-pulsar`` runs kop on the session's Pulsar standalone; add ``kafka`` for the reference
Apache Kafka from scripts/kafka.sh). Every server is made by ``helpers.servers.make_server``
(``start_server`` starts it): a kop target whose package is not built fails the test, unless
``KOP_ALLOW_MISSING=1`` turns that into a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import java, txn
from helpers import pulsar as pulsar_helper
from helpers.servers import ALL_TARGETS, ServerHandle, start_server


def _targets() -> list[str]:
    raw = os.environ.get("KOP_TEST_TARGETS", "kop-cli,kop-embedded")
    out = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in out if t not in ALL_TARGETS]
    if unknown:
        raise pytest.UsageError(f"KOP_TEST_TARGETS: unknown target(s) {unknown}; use {ALL_TARGETS}")
    return out


TARGETS = _targets()

# kop-cli runs everything unless KOP_CLI_TESTS=process (scripts/test.sh sets it): then kop-cli
# runs only the tests marked ``kop_process``, those where kop being a process of its own on the
# local log matters (kill -9, restarts, signals, its log lines). The rest would repeat coverage:
# kop-pulsar runs every test through the same `kop serve` process and CLI/env configuration, and
# kop-embedded runs every test on the same local log (tests/e2e/README.md, "Targets").
CLI_TESTS = os.environ.get("KOP_CLI_TESTS", "all")
if CLI_TESTS not in ("all", "process"):
    raise pytest.UsageError(f"KOP_CLI_TESTS={CLI_TESTS!r}: use all or process")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CLI_TESTS == "all":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cli = callspec is not None and "kop-cli" in callspec.params.values()
        if on_cli and item.get_closest_marker("kop_process") is None:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    pulsar_helper.stop_pulsar_service()


def _stop(srv: ServerHandle) -> None:
    srv.stop()


@pytest.fixture(scope="session")
def kafka_tools() -> None:
    """The Kafka Java tools are resolved (scripts/kafka.sh fetch)."""
    java.fetch()


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> txn.JavaClasses:
    """tests/clients/java compiled against the Kafka jars (TxnClient; WordCount after
    ``with_streams()``)."""
    java.fetch()
    return txn.JavaClasses(tmp_path_factory.mktemp("java-classes"))


@pytest.fixture(scope="session")
def go_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/clients/go built (franz-go from the Go module proxy): the kop-go-check binary."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is required for the Go client tests (see README)")
    binary = tmp_path_factory.mktemp("go") / "kop-go-check"
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}
    go_dir = Path(__file__).resolve().parent / "clients" / "go"
    subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=go_dir, env=env, check=True, timeout=600
    )
    return binary


KAFKAJS_VERSION = "2.2.4"


@pytest.fixture(scope="session")
def kafkajs() -> Path:
    """kafkajs from npm, installed once into the cache (as scripts/test.sh does): the
    node_modules directory to put on NODE_PATH."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are required for the kafkajs tests (see README)")
    cache = Path(os.environ.get("KOP_CACHE", Path.home() / ".cache" / "kop"))
    prefix = cache / f"kafkajs-{KAFKAJS_VERSION}"
    modules = prefix / "node_modules"
    if not (modules / "kafkajs" / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(prefix),
                f"kafkajs@{KAFKAJS_VERSION}",
            ],
            check=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    return modules


@pytest.fixture(scope="module", params=TARGETS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One server per module and target, shared by the module's tests (use unique topics).
    A module's ``SERVER_OPTIONS`` dict, if any, configures it (kop option names)."""
    target = request.param
    if target == "kafka":
        java.fetch()
    options = getattr(request.module, "SERVER_OPTIONS", {})
    srv = start_server(target, tmp_path_factory.mktemp(f"{target}-data"), **options)
    yield srv
    _stop(srv)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """A target name, for tests that start servers of their own through ``server_factory``."""
    if request.param == "kafka":
        java.fetch()
    return str(request.param)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """start(target, name="s", **options) -> a started server this test owns (stopped after);
    options as ``helpers.servers.make_server``."""
    started: list[ServerHandle] = []

    def start(target: str, name: str = "s", **options: Any) -> ServerHandle:
        srv = start_server(target, tmp_path / name, **options)
        started.append(srv)
        return srv

    yield start
    errors = []
    for srv in reversed(started):
        try:
            srv.stop()
        except Exception as err:
            errors.append(f"{srv}: {err}")
    if errors:
        pytest.fail("stopping servers failed: " + "; ".join(errors))
