"""kop.pulsar.startup.wait_for_pulsar: retries, a log line per attempt, one error after the
deadline, no wait for a permanent error, and a stop request honoured while waiting. The real
thing (kop serve started before Pulsar) is tests/pulsar/test_startup.py."""

from __future__ import annotations

import logging
import threading
import time

import pytest

pytest.importorskip("pulsar")

from kop.lifecycle import StartCancelled
from kop.pulsar import startup
from kop.pulsar.errors import PulsarStorageError


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "FIRST_DELAY_S", 0.01)
    monkeypatch.setattr(startup, "MAX_DELAY_S", 0.04)


class Flaky:
    """Fails ``failures`` times with a retriable error, then returns "opened"."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise PulsarStorageError(f"Pulsar admin http://h:1 unreachable (try {self.calls})")
        return "opened"


def test_retries_until_pulsar_answers_with_a_log_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = Flaky(3)
    with caplog.at_level(logging.INFO, logger="kop.pulsar"):
        got = startup.wait_for_pulsar(
            attempt, where="pulsar://h:2", timeout_ms=10_000, cancelled=lambda: False
        )
    assert got == "opened" and attempt.calls == 4
    waiting = [r.getMessage() for r in caplog.records if "waiting for Pulsar" in r.getMessage()]
    assert len(waiting) == 3
    for i, line in enumerate(waiting, start=1):
        assert line.startswith(f"waiting for Pulsar (attempt {i}, ")
        assert f"unreachable (try {i})" in line and "next attempt in" in line
    assert "Pulsar pulsar://h:2 ready after 4 attempts" in caplog.text


def test_gives_up_after_the_deadline_with_one_error_naming_the_last_reason() -> None:
    attempt = Flaky(10**9)
    t0 = time.monotonic()
    with pytest.raises(PulsarStorageError) as info:
        startup.wait_for_pulsar(
            attempt, where="pulsar://h:2", timeout_ms=300, cancelled=lambda: False
        )
    took = time.monotonic() - t0
    assert 0.3 <= took < 2
    message = str(info.value)
    assert message.startswith("Pulsar pulsar://h:2 not ready within 0.3 s")
    assert f"{attempt.calls} attempts" in message
    assert message.endswith(
        f"last error: Pulsar admin http://h:1 unreachable (try {attempt.calls})"
    )
    assert attempt.calls >= 3
    assert info.value.permanent  # nothing above retries it again


def test_zero_timeout_means_one_attempt() -> None:
    attempt = Flaky(1)
    with pytest.raises(PulsarStorageError, match=r"within 0 s .*1 attempt\)"):
        startup.wait_for_pulsar(attempt, where="x", timeout_ms=0, cancelled=lambda: False)
    assert attempt.calls == 1


def test_a_permanent_error_is_not_waited_for() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise PulsarStorageError("Pulsar admin answered 401: unauthorized", permanent=True)

    with pytest.raises(PulsarStorageError, match="401"):
        startup.wait_for_pulsar(refused, where="x", timeout_ms=60_000, cancelled=lambda: False)
    assert calls == [1]


def test_other_errors_are_not_retried() -> None:
    def broken() -> None:
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        startup.wait_for_pulsar(broken, where="x", timeout_ms=60_000, cancelled=lambda: False)


def test_a_stop_request_ends_the_wait_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "FIRST_DELAY_S", 30.0)
    monkeypatch.setattr(startup, "MAX_DELAY_S", 30.0)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(StartCancelled):
        startup.wait_for_pulsar(Flaky(10**9), where="x", timeout_ms=120_000, cancelled=stop.is_set)
    assert time.monotonic() - t0 < 2
