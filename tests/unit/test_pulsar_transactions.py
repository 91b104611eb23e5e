"""Transaction state a Pulsar takeover hands Rust (kop.pulsar.transactions, ProducerTails and
the checkpoint's ``txn``): replaying the kept heads rebuilds the open transactions and the
aborted-transaction index a replay of every batch gives, also across a checkpoint."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest

pytest.importorskip("pulsar")  # kop.pulsar imports pulsar-client

from kop.pulsar.checkpoint import Checkpoint
from kop.pulsar.index import BatchIndex, IndexEntry, ProducerTails
from kop.pulsar.transactions import ABORT, COMMIT, batch_head, marker_kind

_HEADER = ">qiibIhiqqqhii"


@dataclass(frozen=True)
class FakeId:
    ledger: int
    entry: int

    def ledger_id(self) -> int:
        return self.ledger

    def entry_id(self) -> int:
        return self.entry


def data_batch(offset: int, pid: int, epoch: int, seq: int, count: int, txn: bool) -> bytes:
    attributes = 0x10 if txn else 0
    head = struct.pack(
        _HEADER, offset, 49, 0, 2, 0, attributes, count - 1, 0, 0, pid, epoch, seq, count
    )
    return head + b"\x00" * 20  # records (not looked at)


def marker(offset: int, pid: int, epoch: int, kind: int) -> bytes:
    """A control batch as kop-core's records/control.rs writes it."""
    record = bytes([0, 0, 0, 8]) + struct.pack(">hh", 0, kind) + bytes([12])
    record += struct.pack(">hi", 0, 3) + bytes([0])
    body = bytes([2 * len(record)]) + record
    head = struct.pack(_HEADER, offset, 49, 0, 2, 0, 0x30, 0, 0, 0, pid, epoch, -1, 1)
    return head + body


def replay(heads: list[bytes]) -> tuple[dict[int, int], list[tuple[int, int, int]]]:
    """A model of kop-core ProducerStates::replay: (open first offsets, aborted index)."""
    open_txns: dict[int, int] = {}
    aborted: list[tuple[int, int, int]] = []
    last = -1
    for h in heads:
        base, _, _, _, _, attrs, _, _, _, pid, _, _, _ = struct.unpack_from(_HEADER, h)
        assert base > last, "heads come in offset order, each batch once"
        last = base
        if pid < 0 or not attrs & 0x10:
            continue
        if attrs & 0x20:
            first = open_txns.pop(pid, None)
            if marker_kind(h) == ABORT and first is not None:
                aborted.append((pid, first, base))
        else:
            open_txns.setdefault(pid, base)
    return open_txns, aborted


def workload(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    batches, offset = [], 0
    seqs = dict.fromkeys(range(5), 0)
    for _ in range(n):
        pid = rng.choice([-1, 0, 1, 2, 3, 4])
        if pid >= 0 and rng.random() < 0.15:
            batches.append(marker(offset, pid, 0, rng.choice([ABORT, COMMIT])))
            offset += 1
            continue
        count = rng.randint(1, 3)
        txn = pid in (0, 1, 2) or (pid >= 0 and rng.random() < 0.5)
        seq = seqs.get(pid, -1)
        batches.append(data_batch(offset, pid, 0 if pid >= 0 else -1, seq, count, txn))
        if pid >= 0:
            seqs[pid] += count
        offset += count
    return batches


def test_a_marker_head_is_the_whole_batch_and_its_kind_is_read():
    m = marker(7, 3, 0, COMMIT)
    assert batch_head(m) == m
    assert marker_kind(m) == COMMIT
    assert marker_kind(marker(7, 3, 0, ABORT)) == ABORT
    d = data_batch(0, 1, 0, 0, 1, True)
    assert len(batch_head(d)) == 61
    assert marker_kind(d) is None
    assert marker_kind(m[:63]) is None  # cut short


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_heads_rebuild_the_transaction_state_of_a_full_replay(seed):
    batches = workload(3000, seed)
    tails = ProducerTails()
    for b in batches:
        tails.add(batch_head(b))
    kept = tails.headers()
    assert replay(kept) == replay([batch_head(b) for b in batches])


def index_of(batches: list[bytes]) -> BatchIndex:
    index = BatchIndex()
    for i, b in enumerate(batches):
        base, *_ = struct.unpack_from(">q", b)
        count = struct.unpack_from(">i", b, 57)[0]
        index.add(IndexEntry(base, base + count - 1, 0, len(b), FakeId(1, i), 1))
    return index


def test_a_checkpoint_carries_the_transaction_state_a_takeover_resumes_from():
    batches = workload(2000, 7)
    cut = 1500
    tails = ProducerTails()
    for b in batches[:cut]:
        tails.add(batch_head(b))
    cp = Checkpoint.of("persistent://t/ns/x-partition-0", 1, index_of(batches[:cut]), tails, 300)
    assert cp is not None
    back = Checkpoint.decode(cp.encode(), FakeId)
    assert back.txns == cp.txns
    # A takeover: restore from the checkpoint, then read from the resume batch (re-reading
    # some batches the checkpoint counted) to the end.
    resumed = ProducerTails()
    for heads in back.producers:
        for h in heads:
            resumed.restore(h)
    resumed.txns = back.txns.copy()
    resume = next(
        i
        for i, b in enumerate(batches)
        if struct.unpack_from(">q", b)[0] == back.resume.base_offset
    )
    for b in batches[resume:]:
        resumed.add(batch_head(b))
    assert replay(resumed.headers()) == replay([batch_head(b) for b in batches])


def test_retention_drops_aborted_transactions_before_the_log_start():
    tails = ProducerTails()
    for b in [
        data_batch(0, 1, 0, 0, 1, True),
        marker(1, 1, 0, ABORT),
        data_batch(2, 2, 0, 0, 1, True),
        marker(3, 2, 0, ABORT),
    ]:
        tails.add(batch_head(b))
    assert [(f[:8], m[:8]) for f, m in tails.txns.aborted] == [
        (struct.pack(">q", 0), struct.pack(">q", 1)),
        (struct.pack(">q", 2), struct.pack(">q", 3)),
    ]
    tails.txns.trim(2)
    assert len(tails.txns.aborted) == 1
    tails.txns.trim(4)
    assert tails.txns.aborted == []


def test_a_version_1_checkpoint_has_no_transaction_state():
    import json
    import zlib

    doc = {
        "v": 1,
        "topic": "x",
        "epoch": 1,
        "end_offset": 1,
        "entries": [],
        "resume": [0, 0, 0, 0, 1, 9, 1, 1],
        "producers": [],
    }
    cp = Checkpoint.decode(zlib.compress(json.dumps(doc).encode()), FakeId)
    assert cp.txns.open == {} and cp.txns.aborted == []
