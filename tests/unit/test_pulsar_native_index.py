"""Offsets of Pulsar-format partitions from the broker entry index (kop.pulsar.native_index):
the arithmetic on batch entries, the position cache and the time look-up's search."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("pulsar")  # kop.pulsar imports pulsar-client

from kop.pulsar.native_index import (
    PositionCache,
    Probe,
    entry_first_offset,
    key_in_entry,
    search_start,
)


def test_offsets_of_batch_and_single_entries() -> None:
    # Entries as Pulsar 4.2 stamps them: batches of 5, 5, 2 messages, then one message.
    entries = [(5, 0, 4, 5), (5, 1, 9, 5), (5, 2, 11, 2), (6, 0, 12, 1)]
    offsets = []
    for ledger, entry, index, count in entries:
        first = entry_first_offset(index, count)
        for offset in range(first, index + 1):
            offsets.append(offset)
            assert key_in_entry(ledger, entry, index, count, offset) == (
                ledger,
                entry,
                offset - first,
            )
    assert offsets == list(range(13))  # every message once, in order
    assert entry_first_offset(24, 5) == 20  # after retention: the index goes on
    with pytest.raises(ValueError):
        key_in_entry(5, 1, 9, 5, 4)  # held by the entry before
    with pytest.raises(ValueError):
        key_in_entry(5, 1, 9, 5, 10)


def test_position_cache_finds_the_nearest_position_before_and_stays_bounded() -> None:
    cache = PositionCache(limit=8)
    assert cache.at_or_before(10) is None
    for offset in random.Random(3).sample(range(0, 1000, 10), 40):
        cache.add(offset, (1, offset, 0))
        assert len(cache) <= 9
    cache.add(990, (1, 990, 0))
    found = cache.at_or_before(995)
    assert found is not None and found[0] <= 995
    assert cache.at_or_before(990) == (990, (1, 990, 0))  # the newest survives thinning
    cache.add(990, (2, 0, 0))  # re-learnt: replaced
    assert cache.at_or_before(999) == (990, (2, 0, 0))
    cache.drop_below(991)
    assert cache.at_or_before(999) is None and len(cache) == 0


def test_drop_below_keeps_later_positions() -> None:
    cache = PositionCache()
    for offset in (0, 100, 200):
        cache.add(offset, (1, offset, 0))
    cache.drop_below(100)
    assert cache.at_or_before(99) is None
    assert cache.at_or_before(150) == (100, (1, 100, 0))


def _probe(stamps: list[int | None], calls: list[int]) -> Probe:
    """The first message (not None: a hole) at or after an offset, like the partition's."""

    def probe(offset: int) -> tuple[int, int] | None:
        calls.append(offset)
        for at in range(offset, len(stamps)):
            ts = stamps[at]
            if ts is not None:
                return at, ts
        return None

    return probe


def _first_match(stamps: list[int | None], start: int, ts: int) -> int | None:
    return next((i for i in range(start, len(stamps)) if (stamps[i] or -1) >= ts), None)


@pytest.mark.parametrize("linear", [1, 16])
def test_time_search_lands_at_or_before_the_first_match(linear: int) -> None:
    rng = random.Random(7)
    stamps: list[int | None] = []
    ts = 1_000
    for _ in range(5_000):
        ts += rng.choice((0, 0, 1, 5))
        stamps.append(None if rng.random() < 0.01 else ts)  # holes: kop's markers
    for target in (0, 1_000, stamps[2_500] or 0, ts, ts + 1, 3_000):
        calls: list[int] = []
        start = search_start(0, len(stamps), target, _probe(stamps, calls), linear)
        want = _first_match(stamps, 0, target)
        # Reading forward from ``start`` finds exactly the first match.
        assert _first_match(stamps, start, target) == want
        if want is not None:
            assert want - start <= max(linear, 1) + 10
        assert len(calls) <= 14  # log2(5000 / linear) probes, not a scan


def test_time_search_of_a_log_that_starts_late() -> None:
    stamps: list[int | None] = [None] * 100 + list(range(100, 200))  # offsets 0..99 deleted
    calls: list[int] = []
    start = search_start(100, 200, 150, _probe(stamps, calls), 1)
    assert start == 150
