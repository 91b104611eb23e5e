"""kop.logs: native records through `logging`, and the text / JSON formats of `kop serve`."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from kop import logs

HERE = Path(__file__).resolve().parent
T0 = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z


def rust_record(message: str = "connection closed", level: int = 30) -> tuple[Any, ...]:
    fields = [("peer", "127.0.0.1:5000"), ("suppressed", 3), ("tls", False)]
    return ("kop.net", level, message, fields, T0, "src/net/conn.rs", 42, "tokio-runtime-worker")


class FakeBridge:
    """The native side of the bridge: a queue, a level, a drop counter."""

    def __init__(self) -> None:
        self.queue: list[tuple[Any, ...]] = []
        self.levels: list[str] = []
        self.dropped = 0
        self.queued = 0
        self.ready = threading.Condition()

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("fake_native_logs")
        mod.init_logging = self.levels.append  # type: ignore[attr-defined]
        mod.take_log_records = self.take  # type: ignore[attr-defined]
        mod.log_record_counts = lambda: (self.queued, self.dropped)  # type: ignore[attr-defined]
        return mod

    def put(self, *records: tuple[Any, ...]) -> None:
        with self.ready:
            self.queue.extend(records)
            self.queued += len(records)
            self.ready.notify_all()

    def take(self, timeout: float, max_records: int) -> list[tuple[Any, ...]]:
        with self.ready:
            if not self.queue:
                self.ready.wait(timeout)
            batch, self.queue[:] = self.queue[:max_records], self.queue[max_records:]
            return batch


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.seen.set()


@pytest.fixture
def collect() -> Any:
    handler = Collect()
    kop_logger = logging.getLogger("kop")
    old_level = kop_logger.level
    kop_logger.addHandler(handler)
    kop_logger.setLevel(logging.DEBUG)
    yield handler
    kop_logger.removeHandler(handler)
    kop_logger.setLevel(old_level)


def wait_for(handler: Collect, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(handler.records) < count:
        assert time.monotonic() < deadline, [r.getMessage() for r in handler.records]
        time.sleep(0.01)


def test_native_records_reach_kop_loggers_with_their_fields_and_time(collect: Collect) -> None:
    bridge = FakeBridge()
    logs.start_native_logging(bridge.module(), "debug")
    assert bridge.levels == ["debug"]
    bridge.put(rust_record(), rust_record("deep detail", level=logs.TRACE))
    wait_for(collect, 1)
    time.sleep(0.1)
    # TRACE (5) is below the kop logger's DEBUG: the first only.
    (record,) = [r for r in collect.records if r.name == "kop.net"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "connection closed peer=127.0.0.1:5000 suppressed=3 tls=False"
    assert record.kop_fields == {"peer": "127.0.0.1:5000", "suppressed": 3, "tls": False}  # type: ignore[attr-defined]
    assert record.created == T0 and round(record.msecs) == 250
    assert (record.pathname, record.lineno) == ("src/net/conn.rs", 42)
    assert record.threadName == "tokio-runtime-worker"


def test_flush_waits_until_queued_records_are_logged(collect: Collect) -> None:
    bridge = FakeBridge()
    logs.start_native_logging(bridge.module(), "info")
    bridge.put(*[rust_record(f"line {i}") for i in range(50)])
    logs.flush_native_logging(timeout=5)
    assert [r.kop_message for r in collect.records[-50:]] == [f"line {i}" for i in range(50)]  # type: ignore[attr-defined]


def test_dropped_records_are_reported_once(collect: Collect) -> None:
    bridge = FakeBridge()
    logs.start_native_logging(bridge.module(), "info")
    bridge.dropped = 7
    bridge.put(rust_record())
    deadline = time.monotonic() + 5
    while not any("dropped" in r.getMessage() for r in collect.records):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (warning,) = [r for r in collect.records if "dropped" in r.getMessage()]
    assert warning.name == "kop.logs"
    assert warning.getMessage().startswith("7 Rust log records dropped")


def _format(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    return formatter.format(record)


def _rust_log_record() -> logging.LogRecord:
    record = logging.makeLogRecord(
        {
            "name": "kop.net",
            "levelno": 30,
            "levelname": "WARNING",
            "msg": "closed peer=h:1 n=2",
            "kop_message": "closed",
            "kop_fields": {"peer": "h:1", "n": 2},
        }
    )
    record.created = T0
    record.msecs = 250.0
    return record


def test_json_lines_have_time_level_logger_message_fields() -> None:
    line = _format(logs.JsonFormatter(), _rust_log_record())
    assert json.loads(line) == {
        "time": "2027-01-15T08:00:00.250Z",
        "level": "WARNING",
        "logger": "kop.net",
        "message": "closed",
        "fields": {"peer": "h:1", "n": 2},
    }
    python_record = logging.makeLogRecord(
        {"name": "kop.server", "levelname": "INFO", "msg": "listening on %s", "args": ("x",)}
    )
    python_record.topic = "t"  # what extra={"topic": "t"} does
    out = json.loads(_format(logs.JsonFormatter(), python_record))
    assert (out["message"], out["fields"], out["logger"]) == (
        "listening on x",
        {"topic": "t"},
        "kop.server",
    )


def test_text_lines_look_the_same_for_both_languages() -> None:
    formatter = logs.TextFormatter()
    rust = _format(formatter, _rust_log_record())
    python_record = logging.makeLogRecord(
        {"name": "kop.server", "levelname": "WARNING", "msg": "closed", "created": T0}
    )
    python_record.peer = "h:1"
    python_record.n = 2
    python = _format(formatter, python_record)
    assert rust.endswith("WARNING kop.net: closed peer=h:1 n=2")
    assert python.endswith("WARNING kop.server: closed peer=h:1 n=2")


def test_configure_cli_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        root.handlers[:] = []
        stream = io.StringIO()
        logs.configure_cli_logging("text", "info", stream)
        logs.configure_cli_logging("json", "trace", stream)
        assert len(root.handlers) == 1 and root.level == logs.TRACE
        logging.getLogger("kop.test").info("hello %s", "there")
        assert json.loads(stream.getvalue())["message"] == "hello there"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


# `kop serve --log-format json` with a fake kop._native that logs one "Rust" record.
_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import fake_native
native = fake_native.make_module()
pending = [("kop.storage", 20, "opened", [("partitions", 4)], 1.8e9, "x.rs", 1, "main")]
def take(timeout, max_records):
    import time
    time.sleep(min(timeout, 0.05))
    return [pending.pop()] if pending else []
native.take_log_records = take
sys.modules["kop._native"] = native
from kop.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_kop_serve_json_lines_from_python_and_rust(subprocess_env: dict[str, str]) -> None:
    args = ["serve", "--storage", "memory://", "--listeners", "PLAINTEXT://127.0.0.1:0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(HERE), *args, "--log-format", "json"],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any('"kop.storage"' in line for line in lines):
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
    proc.send_signal(signal.SIGTERM)
    lines += proc.stderr.read().splitlines()
    assert proc.wait(timeout=30) == 0
    objects = [json.loads(line) for line in lines if line.strip()]
    by_logger = {o["logger"]: o for o in objects}
    assert by_logger["kop.storage"]["fields"] == {"partitions": 4}
    assert by_logger["kop.storage"]["message"] == "opened"
    assert any(o["message"].startswith("kop listening on") for o in objects)
    assert all(set(o) >= {"time", "level", "logger", "message", "fields"} for o in objects)
