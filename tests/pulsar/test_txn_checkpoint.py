"""Transaction state across a Pulsar takeover (docs/pulsar-storage.md, "Transactions"): the heads
a takeover hands Rust rebuild the same open transactions and aborted-transaction index whether it
scans from the start or resumes from an index checkpoint."""

from __future__ import annotations

import random
import struct

import pytest

pulsar = pytest.importorskip("pulsar")

import test_backend  # noqa: E402
from test_backend import append_all  # noqa: E402
from test_index_checkpoint import forget_checkpoint, load_checkpoint, scan_reads  # noqa: E402

from helpers.wire import record_batch  # noqa: E402
from kop.pulsar import index as index_module  # noqa: E402
from kop.pulsar.format import parse_batch_header, with_base_offset  # noqa: E402
from kop.pulsar.transactions import ABORT, COMMIT, batch_head, marker_kind  # noqa: E402

pytestmark = pytest.mark.pulsar

namespace = test_backend.namespace
make_backend = test_backend.make_backend
raw_client = test_backend.raw_client


@pytest.fixture(autouse=True)
def small_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "DENSE_LIMIT", 20)
    monkeypatch.setattr(index_module, "SPARSE_LIMIT", 16)
    monkeypatch.setattr(index_module, "STRIDE", 4)


def workload(n: int, seed: int = 5) -> list[bytes]:
    """Transactions of 4 producers (committed, aborted, one left open) among plain batches."""
    rng = random.Random(seed)
    out, offset = [], 0
    seqs = dict.fromkeys(range(4), 0)
    open_pids: set[int] = set()
    for i in range(n):
        pid = rng.choice([-1, 0, 1, 2, 3])
        if pid >= 0 and pid in open_pids and rng.random() < 0.25 and i < n - 20:
            kind = rng.choice([ABORT, COMMIT])
            key, value = struct.pack(">hh", 0, kind), struct.pack(">hi", 0, 1)
            data = record_batch(
                [(key, value)],
                base_timestamp=1_000 + i,
                producer_id=pid,
                producer_epoch=0,
                attributes=0x30,
            )
            open_pids.discard(pid)
            count = 1
        elif pid >= 0:
            count = rng.randint(1, 3)
            records = [(None, b"v%d" % i)] * count
            data = record_batch(
                records,
                base_timestamp=1_000 + i,
                producer_id=pid,
                producer_epoch=0,
                base_sequence=seqs[pid],
                attributes=0x10,
            )
            seqs[pid] += count
            open_pids.add(pid)
        else:
            count = 1
            data = record_batch([(None, b"plain")], base_timestamp=1_000 + i)
        out.append(with_base_offset(data, offset))
        offset += count
    return out


def replay(heads: list[bytes]) -> tuple[dict[int, int], list[tuple[int, int, int]]]:
    """A model of kop-core ProducerStates::replay: (open first offsets, aborted index)."""
    open_txns: dict[int, int] = {}
    aborted: list[tuple[int, int, int]] = []
    for h in heads:
        info = parse_batch_header(h[:61])
        attributes = struct.unpack_from(">h", h, 21)[0]
        if info.producer_id < 0 or not attributes & 0x10:
            continue
        if attributes & 0x20:
            first = open_txns.pop(info.producer_id, None)
            if marker_kind(h) == ABORT and first is not None:
                aborted.append((info.producer_id, first, info.base_offset))
        else:
            open_txns.setdefault(info.producer_id, info.base_offset)
    return open_txns, aborted


def test_a_takeover_from_a_checkpoint_rebuilds_the_transactions_of_a_full_scan(make_backend):
    batches = workload(400)
    expected = replay([batch_head(b) for b in batches])
    assert expected[0] and expected[1], "the workload leaves open and aborted transactions"
    tail_bytes = sum(len(d) for d in batches[-10:])
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, tail_bytes)
    append_all(a, "t", epoch, batches)
    a.close_partition("t", 0)  # a clean close writes a checkpoint
    assert load_checkpoint(a).txns.aborted, "the checkpoint carries aborted transactions"

    b = make_backend()
    *_, headers, _tail = b.open_partition("t", 0, tail_bytes)
    assert scan_reads(b) < len(batches) // 4  # from the checkpoint
    assert replay(headers) == expected
    b.close_partition("t", 0)

    forget_checkpoint(b)
    c = make_backend()
    *_, full_headers, _ = c.open_partition("t", 0, tail_bytes)
    assert scan_reads(c) >= len(batches)
    assert replay(full_headers) == expected
