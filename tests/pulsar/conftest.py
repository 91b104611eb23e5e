"""Fixtures for tests that need a real Pulsar (see tests/helpers/pulsar.py for how it starts).

Timings that tests record with the ``pulsar_timings`` fixture are printed in pytest's terminal
summary, and written as JSON to ``$KOP_PULSAR_TIMINGS`` when that is set.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import pulsar as pulsar_helper
from helpers.pulsar import PulsarService

_TIMINGS: dict[str, list[float]] = {}


@pytest.fixture(scope="session")
def pulsar_service() -> PulsarService:
    try:
        service = pulsar_helper.pulsar_service()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    for seconds in pulsar_helper.START_SECONDS:
        record_timing("pulsar.sh start (incl. fetch) [s]", seconds)
    pulsar_helper.START_SECONDS.clear()
    return service


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


@pytest.fixture(scope="session")
def auth_pulsar() -> Iterator[Any]:
    """A second standalone, with token authentication and authorization on (shared by the tests
    of ``authorizer = "pulsar"`` and of tenants; tests/helpers/pulsar_auth.py)."""
    from helpers.pulsar_auth import start_auth_pulsar

    t0 = time.monotonic()
    try:
        service = start_auth_pulsar()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    record_timing("pulsar.sh start with auth [s]", time.monotonic() - t0)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def extras_pulsar() -> Iterator[Any]:
    """A third standalone, with the functions worker and the filesystem offloader (shared by
    tests/pulsar/test_pulsar_functions.py and test_tiered_storage.py;
    tests/helpers/pulsar_extras.py)."""
    from helpers.pulsar_extras import start_extras_pulsar

    t0 = time.monotonic()
    try:
        service = start_extras_pulsar()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    record_timing("pulsar.sh start with functions worker and offloader [s]", time.monotonic() - t0)
    yield service
    service.stop()
