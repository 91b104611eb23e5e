"""Start-up on Pulsar: wait until Pulsar answers, up to a deadline.

kop and Pulsar are often started together (a compose file, a test, a host reboot), and Pulsar
takes 15-30 s to come up. Opening storage is tried again, with a log line per attempt, until it
works, the deadline (``pulsar_startup_timeout_ms``) passes, or the process is asked to stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from kop.lifecycle import StartCancelled, sleep_unless
from kop.pulsar.errors import PulsarStorageError

__all__ = ["wait_for_pulsar"]

log = logging.getLogger("kop.pulsar")

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


def wait_for_pulsar(
    attempt: Callable[[], T],
    *,
    where: str,
    timeout_ms: int,
    cancelled: Callable[[], bool],
) -> T:
    """``attempt()``'s result once it does not raise PulsarStorageError. Each attempt must clean
    up after itself. A permanent error (credentials refused) is raised at once; after
    ``timeout_ms`` one error that says so, with the last reason. StartCancelled if
    ``cancelled()`` becomes true meanwhile."""
    started = time.monotonic()
    deadline = started + timeout_ms / 1000
    delay = FIRST_DELAY_S
    tries = 0
    while True:
        if cancelled():
            raise StartCancelled(f"stopped while waiting for Pulsar {where}")
        tries += 1
        try:
            result = attempt()
        except PulsarStorageError as err:
            if err.permanent:
                raise
            now = time.monotonic()
            if now >= deadline:
                raise PulsarStorageError(
                    f"Pulsar {where} not ready within {timeout_ms / 1000:g} s "
                    f"(pulsar_startup_timeout_ms, {tries} attempt{'s' if tries > 1 else ''}); "
                    f"last error: {err}",
                    permanent=True,
                ) from err
            pause = min(delay, deadline - now)
            log.warning(
                "waiting for Pulsar (attempt %d, %.1f s of %g s): %s; next attempt in %.1f s",
                tries,
                now - started,
                timeout_ms / 1000,
                err,
                pause,
            )
            if sleep_unless(cancelled, pause):
                raise StartCancelled(f"stopped while waiting for Pulsar {where}") from err
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if tries > 1:
            log.info(
                "Pulsar %s ready after %d attempts (%.1f s)",
                where,
                tries,
                time.monotonic() - started,
            )
        return result
