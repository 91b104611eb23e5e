"""Stopping on SIGINT/SIGTERM at any moment, start-up included.

A signal only sets an event; whoever is running (start-up waiting for storage, or the serve loop)
checks it and stops in order. Nothing is interrupted in the middle of opening storage, so a stop
during start-up still flushes and closes what was opened.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = ["StartCancelled", "StopSignals", "sleep_unless"]

log = logging.getLogger("kop.server")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SLICE_S = 0.1  # how soon a waiting start-up notices a stop request


class StartCancelled(Exception):
    """Start-up was asked to stop (a signal or ``stop()``) before the server was serving."""


class StopSignals:
    """``with StopSignals() as stop:``: SIGINT and SIGTERM set ``stop.requested`` instead of
    killing the process, until the block ends (then the previous handlers are back). Off the
    main thread (where Python cannot install handlers) it only provides the event."""

    def __init__(self, requested: threading.Event | None = None) -> None:
        self.requested = requested if requested is not None else threading.Event()
        self._previous: dict[signal.Signals, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread, possibly inside a lock the stopping code
        # takes: it only logs and sets the event.
        name = signal.Signals(signum).name
        if self.requested.is_set():
            log.info("received %s again; already stopping", name)
        else:
            log.info("received %s, stopping", name)
        self.requested.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def sleep_unless(cancelled: Callable[[], bool], seconds: float) -> bool:
    """Sleep up to ``seconds``, in short slices so that signal handlers run and ``cancelled`` is
    seen quickly; True if ``cancelled()`` became true."""
    deadline = time.monotonic() + seconds
    while not cancelled():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, _SLICE_S))
    return True
