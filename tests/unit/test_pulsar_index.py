"""The Pulsar bridge's offset index (kop.pulsar.index) and checkpoint format, without a Pulsar."""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass

import pytest

pytest.importorskip("pulsar")  # kop.pulsar imports pulsar-client

from kop.pulsar.checkpoint import Checkpoint, CheckpointError
from kop.pulsar.index import PRODUCER_BATCHES, BatchIndex, IndexEntry, ProducerTails


@dataclass(frozen=True)
class FakeId:
    ledger: int
    entry: int

    def ledger_id(self) -> int:
        return self.ledger

    def entry_id(self) -> int:
        return self.entry


def make_batches(n: int, seed: int = 1) -> list[IndexEntry]:
    """``n`` consecutive batches of 1-4 records with timestamps that go up and down."""
    rng = random.Random(seed)
    out, offset = [], 0
    for i in range(n):
        count = rng.randint(1, 4)
        out.append(
            IndexEntry(
                base_offset=offset,
                last_offset=offset + count - 1,
                max_timestamp=rng.randint(0, 10 * n),
                size=rng.randint(50, 150),
                message_id=FakeId(10 + i // 100, i % 100),
                epoch=1 + i // 300,
            )
        )
        offset += count
    return out


def test_dense_index_finds_every_offset_exactly():
    batches = make_batches(200)
    index = BatchIndex()
    for b in batches:
        assert index.add(b)
    assert not index.add(batches[5])  # not after the last one: refused
    assert len(index) == 200 and index.next_offset == batches[-1].last_offset + 1
    for b in batches:
        for offset in range(b.base_offset, b.last_offset + 1):
            i = index.find(offset)
            assert i is not None and index[i] == b and not index.gap_before(i)
    assert index.find(index.next_offset) is None


def test_thinning_bounds_the_index_and_keeps_it_usable():
    batches = make_batches(5000)
    index = BatchIndex(dense_limit=50, sparse_limit=40, stride=4)
    for b in batches:
        index.add(b)
    assert len(index) <= 40 + 2 * 50
    assert index.batches == 5000
    assert index[0] == batches[0]  # the log start is never dropped
    # the newest dense_limit batches are all there, one entry each
    assert [index[i] for i in range(len(index) - 50, len(index))] == batches[-50:]
    running = []
    highest = -1
    for b in batches:
        highest = max(highest, b.max_timestamp)
        running.append(highest)
    position = {b.base_offset: n for n, b in enumerate(batches)}
    for n, b in enumerate(batches):
        i = index.find(b.base_offset)
        assert i is not None
        if index[i] == b:
            continue
        # not indexed: it lies in the hole right before entry i
        assert index.gap_before(i)
        assert index[i - 1].last_offset < b.base_offset < index[i].base_offset
        assert position[index[i - 1].base_offset] < n < position[index[i].base_offset]
    for i in range(len(index)):
        assert index.running_max(i) == running[position[index[i].base_offset]]


def test_timestamp_lookups_narrow_to_one_hole():
    batches = make_batches(3000, seed=7)
    index = BatchIndex(dense_limit=20, sparse_limit=30, stride=8)
    for b in batches:
        index.add(b)
    position = {b.base_offset: n for n, b in enumerate(batches)}
    for ts in [0, 5, 1000, 15_000, 29_999, 30_000]:
        first = next((n for n, b in enumerate(batches) if b.max_timestamp >= ts), None)
        i = index.first_at_timestamp(ts)
        if first is None:
            assert i is None
            continue
        assert i is not None
        at = position[index[i].base_offset]
        if index.gap_before(i):
            assert position[index[i - 1].base_offset] < first <= at
        else:
            assert first == at
    top = max(b.max_timestamp for b in batches)
    i = index.first_with_max_timestamp()
    assert i is not None and index.running_max(i) == top


# -- producer state: ProducerTails must leave Rust's producer state as a full replay does --------


def header(base_offset: int, pid: int, epoch: int, seq: int, count: int, control: bool) -> bytes:
    return struct.pack(
        ">qiibIhiqqqhii",
        base_offset,
        49,
        0,
        2,
        0,
        0x20 if control else 0,
        count - 1,
        0,
        0,
        pid,
        epoch,
        seq,
        count,
    )


def rust_producer_state(headers: list[bytes]) -> dict[int, tuple[int, list[tuple[int, int, int]]]]:
    """A model of kop-core broker/producer_state.rs ``ProducerStates::record``."""
    state: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}
    for h in headers:
        base, _, _, _, _, attrs, delta, _, _, pid, epoch, seq, _ = struct.unpack(
            ">qiibIhiqqqhii", h
        )
        if pid < 0 or attrs & 0x20:
            continue
        cur_epoch, batches = state.get(pid, (0, []))
        if epoch != cur_epoch:
            cur_epoch, batches = epoch, []
        if len(batches) == 5:
            batches = batches[1:]
        state[pid] = (cur_epoch, [*batches, (seq, seq + delta, base)])
    return state


def test_producer_tails_rebuild_the_same_producer_state():
    rng = random.Random(3)
    all_headers, offset = [], 0
    epochs = {pid: 0 for pid in range(6)}
    seqs = {pid: 0 for pid in range(6)}
    for _ in range(2000):
        pid = rng.choice([-1, 0, 1, 2, 3, 4, 5])
        count = rng.randint(1, 3)
        control = rng.random() < 0.05
        if pid >= 0 and rng.random() < 0.02:
            epochs[pid] += rng.choice([1, -1])  # a bump, or an older epoch again
            seqs[pid] = 0
        epoch, seq = (epochs[pid], seqs[pid]) if pid >= 0 else (-1, -1)
        all_headers.append(header(offset, pid, epoch, seq, count, control))
        if pid >= 0:
            seqs[pid] += count
        offset += count
    tails = ProducerTails()
    for h in all_headers:
        tails.add(h)
    kept = tails.headers()
    assert len(kept) <= 6 * PRODUCER_BATCHES
    assert rust_producer_state(kept) == rust_producer_state(all_headers)
    # re-adding what it already has (a takeover re-reading after a checkpoint) changes nothing
    for h in all_headers[-50:]:
        tails.add(h)
    assert tails.headers() == kept


def test_producer_tails_keep_the_most_recently_active_producer_ids():
    tails = ProducerTails(limit=3)
    for offset, pid in enumerate([1, 2, 3, 1, 4]):
        tails.add(header(offset, pid, 0, offset, 1, False))
    kept = [
        (struct.unpack_from(">q", h, 0)[0], struct.unpack_from(">q", h, 43)[0])
        for h in tails.headers()
    ]
    assert kept == [(0, 1), (2, 3), (3, 1), (4, 4)]  # producer id 2 was the least recent


# -- checkpoint format ---------------------------------------------------------------------------


def test_checkpoint_round_trip_and_resume_point():
    batches = make_batches(1000)
    index = BatchIndex(dense_limit=100, sparse_limit=50, stride=4)
    for b in batches:
        index.add(b)
    tails = ProducerTails()
    tails.add(header(batches[-1].base_offset, 9, 0, 0, 1, False))
    tail_bytes = sum(b.size for b in batches[-3:])
    cp = Checkpoint.of("persistent://t/ns/x-partition-0", 4, index, tails, tail_bytes, limit=20)
    assert cp is not None
    assert cp.resume == batches[-3]  # what follows it (itself included) fits the tail
    assert len(cp.entries) <= 20
    assert cp.entries[0][0] == batches[0] and cp.entries[-1][0] == batches[-4]
    assert cp.end_offset == batches[-1].last_offset + 1

    back = Checkpoint.decode(cp.encode(), FakeId)
    assert back == cp
    restored = BatchIndex()
    restored.restore(back.entries)
    for b in batches[-3:]:
        assert restored.add(b)
    # every offset is found exactly or in a hole, the running max survives
    for b in batches:
        i = restored.find(b.base_offset)
        assert i is not None
        assert restored[i] == b or restored.gap_before(i)
    assert restored.running_max(len(restored) - 1) == max(b.max_timestamp for b in batches)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not zlib",
        zlib.compress(b"[1, 2]"),
        zlib.compress(b'{"v": 99}'),
        zlib.compress(b'{"v": 1, "topic": "x", "epoch": 1}'),
        zlib.compress(
            b'{"v":1,"topic":"x","epoch":1,"end_offset":9,"entries":[[5,6,0,0,1,9,1,1]],'
            b'"resume":[3,4,0,0,1,9,1,2],"producers":[]}'  # resume before the entries
        ),
    ],
)
def test_a_bad_checkpoint_is_refused(payload):
    with pytest.raises(CheckpointError):
        Checkpoint.decode(payload, FakeId)


def test_trim_keeps_what_pulsar_still_stores():
    batches = make_batches(400, seed=5)
    index = BatchIndex(dense_limit=20, sparse_limit=16, stride=4)
    for b in batches:
        index.add(b)
    # retention deleted the first 150 batches; batch 150 is not indexed (it is in a hole)
    first = batches[150]
    i = index.find(first.base_offset)
    assert i is not None and index[i] != first, "pick a batch in a hole"
    index.trim(first)
    assert index[0] == first
    assert index[1].base_offset > first.base_offset
    assert all(index.running_max(k) <= index.running_max(k + 1) for k in range(len(index) - 1))
    assert index.find(first.base_offset) == 0
    assert index.find(0) == 0  # below the new log start: the first batch kept
    # an indexed first batch is not duplicated
    kept = index[3]
    index.trim(kept)
    assert index[0] == kept and index[1] != kept
    index.trim(None)  # nothing left
    assert len(index) == 0 and index.next_offset is None
