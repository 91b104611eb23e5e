"""kop's log lines: Rust records through Python's ``logging``, and the ``kop serve`` formats.

The native side queues its records (never blocking a tokio worker); one daemon thread started
here takes them in batches and hands each to the ``kop.<module>`` logger (``kop.net``,
``kop.storage``, ``kop.group``, ...), so an embedding application's handlers, levels and
formatters apply to both languages. ``kop serve`` installs one handler on the root logger with
the text or JSON formatter below, so Python and Rust lines look the same.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from types import ModuleType

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = [
    "LOG_FORMATS",
    "TRACE",
    "JsonFormatter",
    "TextFormatter",
    "configure_cli_logging",
    "flush_native_logging",
    "python_level",
    "start_native_logging",
]

TRACE = 5  # Rust's TRACE, below logging.DEBUG
LOG_FORMATS = ("text", "json")
_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}
_BATCH = 1024  # records per call into the native module
_POLL_SECS = 0.5
# Attributes every LogRecord has; anything else on a record came from `extra=` (a field).
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

log = logging.getLogger("kop.logs")


def python_level(level: str) -> int:
    """kop's ``log_level`` (error, warn, info, debug, trace) as a ``logging`` level."""
    return _LEVELS[level]


# ---- the native bridge ---------------------------------------------------------------------


class _Drain:
    """The one thread per process that moves native records into ``logging``."""

    def __init__(self, native: ModuleType) -> None:
        self.native = native
        self._stop = threading.Event()
        self._dropped_seen = 0
        self._emitted = 0  # records taken and handed to logging, in queue order
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="kop-log-bridge", daemon=True)
        self._thread.start()
        # Before interpreter shutdown: emit what is queued, and leave native code for good.
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain_once(_POLL_SECS)
            except Exception:  # the native call itself failed: keep trying, slowly
                log.exception("kop: taking Rust log records failed")
                self._stop.wait(_POLL_SECS)
        self._drain_once(0.0)

    def _drain_once(self, timeout: float) -> None:
        records = self.native.take_log_records(timeout, _BATCH)
        for record in records:
            try:
                _emit(*record)
            except Exception:  # a broken filter or handler must not end the bridge
                if not self._stop.is_set():
                    log.exception("kop: forwarding a Rust log record failed")
        if records:
            with self._progress:
                self._emitted += len(records)
                self._progress.notify_all()
        self._report_dropped()

    def _report_dropped(self) -> None:
        dropped = int(self.native.log_record_counts()[1])
        if dropped > self._dropped_seen:
            log.warning(
                "%d Rust log records dropped: the logging handlers did not keep up",
                dropped - self._dropped_seen,
                extra={"dropped": dropped - self._dropped_seen},
            )
            self._dropped_seen = dropped

    def flush(self, timeout: float) -> None:
        """Wait until every record queued before this call has been handed to ``logging``."""
        queued = int(self.native.log_record_counts()[0])
        with self._progress:
            self._progress.wait_for(lambda: self._emitted >= queued, timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * _POLL_SECS + 1)


_drain: _Drain | None = None
_drain_lock = threading.Lock()


def start_native_logging(native: ModuleType, level: str) -> None:
    """Route the native module's records (at ``level`` and above) into ``logging``; the
    thread starts on the first call, later calls only change the level."""
    global _drain
    logging.addLevelName(TRACE, "TRACE")
    native.init_logging(level)
    with _drain_lock:
        if _drain is None or _drain.native is not native:
            # A re-imported or substituted module (tests) gets a drain of its own.
            if _drain is not None:
                _drain.close()
            _drain = _Drain(native)


def flush_native_logging(timeout: float = 1.0) -> None:
    """Let the records Rust logged so far reach ``logging`` before what Python logs next (e.g.
    "storage opened" before "kop listening on"). Waits at most ``timeout`` seconds."""
    drain = _drain
    if drain is not None:
        drain.flush(timeout)


def _emit(
    name: str,
    levelno: int,
    message: str,
    fields: list[tuple[str, Any]],
    created: float,
    pathname: str | None,
    lineno: int | None,
    thread_name: str | None,
) -> None:
    logger = logging.getLogger(name)
    if not logger.isEnabledFor(levelno):
        return
    values = dict(fields)
    # The text carries the fields too (`msg key=value`), for any host formatter; JSON output
    # uses the bare message and the typed fields.
    text = message + "".join(f" {key}={value}" for key, value in fields)
    record = logger.makeRecord(
        name,
        levelno,
        pathname or "(rust)",
        lineno or 0,
        text,  # no args: logging does not %-format it
        (),
        None,
        extra={"kop_message": message, "kop_fields": values},
    )
    # The time the Rust event happened, not the time it was drained.
    record.relativeCreated += (created - record.created) * 1000
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.threadName = thread_name or "rust"
    logger.handle(record)


# ---- formats ---------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """``2026-01-02 03:04:05,678 INFO kop.net: message key=value`` for both languages."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _extra_fields(record) if not hasattr(record, "kop_fields") else {}
        return text + "".join(f" {key}={value}" for key, value in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "kop_fields", None)
        if fields is None:
            fields = {key: _jsonable(value) for key, value in _extra_fields(record).items()}
        out: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": getattr(record, "kop_message", None) or record.getMessage(),
            "fields": fields,
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int((created % 1) * 1000):03d}Z"


def configure_cli_logging(
    log_format: str = "text", level: str = "info", stream: TextIO | None = None
) -> None:
    """``kop serve``: one stderr handler on the root logger in the chosen format, replacing the
    one an earlier call installed. Like ``logging.basicConfig``, a root logger that already has
    other handlers (an application's, pytest's) keeps them and only gets the level."""
    logging.addLevelName(TRACE, "TRACE")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "kop_cli", False)]
    for old in ours:
        root.removeHandler(old)
    if len(root.handlers) == 0:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        handler.kop_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(python_level(level))
