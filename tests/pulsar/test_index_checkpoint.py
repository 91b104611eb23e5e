"""Offset-index checkpoints (docs/pulsar-storage.md, "Index checkpoints") against a real Pulsar:
a takeover after a checkpoint reads only the tail and returns what a full scan returns; reads and
time look-ups through a sparse index are right; an unusable checkpoint is ignored.

The index limits are shrunk (monkeypatched) so a few hundred batches make a sparse index.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

pulsar = pytest.importorskip("pulsar")

import test_backend  # noqa: E402
from test_backend import append_all, batch, offsets_of, partition_topic  # noqa: E402

from kop.pulsar import PulsarBackend  # noqa: E402
from kop.pulsar import index as index_module  # noqa: E402
from kop.pulsar.checkpoint import Checkpoint  # noqa: E402
from kop.pulsar.client import message_id, message_key  # noqa: E402
from kop.pulsar.format import (  # noqa: E402
    BATCH_HEADER_SIZE,
    batch_properties,
    parse_batch_header,
)

pytestmark = pytest.mark.pulsar

# test_backend's fixtures
namespace = test_backend.namespace
make_backend = test_backend.make_backend
raw_client = test_backend.raw_client

PRODUCERS = 4


@pytest.fixture(autouse=True)
def small_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "DENSE_LIMIT", 20)
    monkeypatch.setattr(index_module, "SPARSE_LIMIT", 16)
    monkeypatch.setattr(index_module, "STRIDE", 4)


def workload(start: int, n: int, first_offset: int = 0) -> list[bytes]:
    """``n`` idempotent batches of 1-3 records from ``PRODUCERS`` producer ids (sequences
    continuing from ``start``), timestamps going up and down."""
    out, offset = [], first_offset
    for i in range(start, start + n):
        count = 1 + i % 3
        pid = i % PRODUCERS
        seq = sum(1 + j % 3 for j in range(pid, i, PRODUCERS))
        ts = 10_000 + (i * 7919) % 5_000
        out.append(batch(offset, count, ts=ts, producer_id=pid, sequence=seq))
        offset += count
    return out


def expected_headers(batches: list[bytes]) -> list[bytes]:
    """The last 5 batches of every producer id, in offset order (what Rust needs)."""
    per_pid: dict[int, list[bytes]] = {}
    for data in batches:
        per_pid.setdefault(parse_batch_header(data).producer_id, []).append(data)
    kept = [data for datas in per_pid.values() for data in datas[-5:]]
    kept.sort(key=lambda d: parse_batch_header(d).base_offset)
    return [d[:BATCH_HEADER_SIZE] for d in kept]


def scan_reads(backend: PulsarBackend, topic: str = "t", partition: int = 0) -> int:
    """Messages the scan behind the backend's index of the partition read."""
    return backend._partitions[(topic, partition)].scan_reads


def forget_checkpoint(backend: PulsarBackend, topic: str = "t") -> None:
    name = partition_topic(backend.namespace, topic)
    backend._checkpoint_store().save(name, None, wait=True)


def store_checkpoint(backend: PulsarBackend, data: bytes, topic: str = "t") -> None:
    name = partition_topic(backend.namespace, topic)
    backend._checkpoint_store().save(name, data, wait=True)


def load_checkpoint(backend: PulsarBackend, topic: str = "t") -> Checkpoint:
    data = backend._checkpoint_store().load(partition_topic(backend.namespace, topic))
    assert data is not None, "no checkpoint stored"
    return Checkpoint.decode(data, message_id)


def check_reads(backend: PulsarBackend, batches: list[bytes]) -> None:
    """Every offset reads its batch; a sequential read returns everything; time look-ups."""
    by_offset = {}
    for data in batches:
        h = parse_batch_header(data)
        for offset in range(h.base_offset, h.last_offset + 1):
            by_offset[offset] = data
    for offset in sorted(by_offset)[::5]:
        got = backend.read("t", 0, offset, 1, 1 << 62)
        assert got == [by_offset[offset]], f"offset {offset}"
    # a consumer reading along, 3 batches at a time
    size = max(len(d) for d in batches)
    got, offset = [], min(by_offset)
    while offset <= max(by_offset):
        part = backend.read("t", 0, offset, 3 * size, 1 << 62)
        assert part, f"nothing at {offset}"
        got += part
        offset = parse_batch_header(part[-1]).last_offset + 1
    assert got == batches
    # time look-ups: the first batch with max timestamp >= ts, and the (first) largest
    stamps = [parse_batch_header(d).max_timestamp for d in batches]
    for ts in [0, 11_000, 12_345, 14_000, max(stamps), max(stamps) + 1]:
        want = next((d for d, s in zip(batches, stamps, strict=True) if s >= ts), None)
        assert backend.batch_at_timestamp("t", 0, ts) == want, f"ts {ts}"
    assert backend.batch_with_max_timestamp("t", 0) == batches[stamps.index(max(stamps))]


# ------------------------------------------------------------------------------------------------


def test_takeover_after_a_checkpoint_reads_only_the_tail(make_backend, pulsar_timings):
    n = 600
    batches = workload(0, n)
    tail_bytes = sum(len(d) for d in batches[-10:])  # both instances keep a 10-batch tail
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, tail_bytes)
    append_all(a, "t", epoch, batches)
    a.close_partition("t", 0)  # a clean close writes a checkpoint

    b = make_backend()
    t0 = time.monotonic()
    epoch_b, log_start, next_offset, headers, tail = b.open_partition("t", 0, tail_bytes)
    pulsar_timings(f"takeover with a checkpoint, {n} batches [s]", time.monotonic() - t0)
    assert scan_reads(b) == 10  # the tail, nothing before it
    assert (epoch_b, log_start) == (epoch + 1, 0)
    assert next_offset == parse_batch_header(batches[-1]).last_offset + 1
    assert headers == expected_headers(batches)
    assert tail == batches[-10:]
    index = b._partitions[("t", 0)].index
    assert any(index.gap_before(i) for i in range(len(index))), "the index is sparse"
    assert len(index) < n // 4
    check_reads(b, batches)

    # The same as a full scan (the checkpoint forgotten).
    b.close_partition("t", 0)
    forget_checkpoint(b)
    c = make_backend()
    t0 = time.monotonic()
    full = c.open_partition("t", 0, tail_bytes)
    pulsar_timings(f"takeover scanning from the start, {n} batches [s]", time.monotonic() - t0)
    assert scan_reads(c) >= n
    assert full == (epoch_b + 1, log_start, next_offset, headers, tail)


def test_periodic_checkpoints_serve_a_takeover_after_a_crash(make_backend):
    """No clean close: the owner is fenced by the next one. Checkpoints written while
    appending still spare the new owner most of the scan."""
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, 1)  # a tail of 1 batch: resume at the last one
    p = a._partitions[("t", 0)]
    p.checkpoint_batches, p.checkpoint_min_interval_s = 50, 0.0
    batches = workload(0, 300)
    append_all(a, "t", epoch, batches)
    end = parse_batch_header(batches[-1]).last_offset + 1
    # Checkpoints are periodic (every 50 batches, written in the background, coalesced while
    # one is being written): the newest covers at least the first 250 batches.
    covered = parse_batch_header(batches[249]).last_offset + 1
    deadline = time.monotonic() + 10
    while True:
        data = a._checkpoint_store().load(partition_topic(a.namespace, "t"))
        cp = None if data is None else Checkpoint.decode(data, message_id)
        if cp is not None and cp.end_offset >= covered:
            break
        assert time.monotonic() < deadline, "no checkpoint of the first 250 batches"
        time.sleep(0.1)

    b = make_backend()  # a is never closed: b fences it
    _, log_start, next_offset, headers, _ = b.open_partition("t", 0, 1)
    assert 1 <= scan_reads(b) <= 52  # from the checkpoint's last batch on, not all 300
    assert (log_start, next_offset) == (0, end)
    assert headers == expected_headers(batches)
    more = workload(300, 40, first_offset=next_offset)
    append_all(b, "t", epoch + 1, more)
    check_reads(b, batches + more)
    check_reads(make_backend(), batches + more)  # a read-only index, also from the checkpoint


def test_a_checkpoint_of_an_older_epoch_and_stale_messages_after_it(
    make_backend, raw_client, namespace
):
    """A takeover starts from an old checkpoint (newer epochs wrote more since); stale-epoch
    batches and foreign messages after the checkpoint are skipped as in a full scan."""
    a = make_backend()
    a.create_topic("t", 1)
    epoch_a, *_ = a.open_partition("t", 0, 1)
    first = workload(0, 120)
    append_all(a, "t", epoch_a, first)
    a.close_partition("t", 0)
    old = load_checkpoint(a)
    assert old.epoch == epoch_a

    b = make_backend()
    epoch_b, _, next_b, _, _ = b.open_partition("t", 0, 1 << 20)
    second = workload(120, 80, first_offset=next_b)
    append_all(b, "t", epoch_b, second)
    b.close_partition("t", 0)
    # Between owners, a stale writer's batch (epoch a) and a message kop did not write.
    producer = raw_client.create_producer(partition_topic(namespace, "t"), batching_enabled=False)
    stale = batch(10_000, 1, producer_id=99)
    producer.send(stale, properties=batch_properties(epoch_a, 10_000, 1, 1))
    producer.send(b"hello", properties={"app": "x"})
    producer.close()
    store_checkpoint(b, old.encode())  # the older checkpoint wins again

    c = make_backend()
    opened = c.open_partition("t", 0, 1)
    # a's last batch, b's marker and batches, the stale batch, the foreign message
    assert scan_reads(c) == 1 + 1 + 80 + 2
    c.close_partition("t", 0)
    forget_checkpoint(c)
    d = make_backend()
    full = d.open_partition("t", 0, 1)
    assert scan_reads(d) == 1 + 120 + 1 + 80 + 2 + 1  # c's marker too
    assert full[1:] == opened[1:]
    assert full[2] == parse_batch_header(second[-1]).last_offset + 1
    assert full[3] == expected_headers(first + second)
    check_reads(d, first + second)


def corrupt(kind: str, cp: Checkpoint, backend: PulsarBackend) -> bytes:
    if kind == "garbage":
        return b"\x00not a checkpoint"
    if kind == "other topic":
        return dataclasses.replace(cp, topic=cp.topic + "x").encode()
    ledger, entry = message_key(cp.resume.message_id)
    if kind == "beyond the end":  # e.g. written for data a failed write never stored
        moved = dataclasses.replace(cp.resume, message_id=message_id(ledger, entry + 1000))
        return dataclasses.replace(cp, resume=moved).encode()
    if kind == "wrong epoch":
        return dataclasses.replace(cp, resume=dataclasses.replace(cp.resume, epoch=7)).encode()
    if kind == "wrong offset":
        moved = dataclasses.replace(cp.resume, base_offset=cp.resume.base_offset + 1)
        return dataclasses.replace(cp, resume=moved).encode()
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["garbage", "other topic", "beyond the end", "wrong epoch", "wrong offset"]
)
def test_an_unusable_checkpoint_means_a_full_scan(make_backend, kind):
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, 1 << 20)
    batches = workload(0, 100)
    append_all(a, "t", epoch, batches)
    a.close_partition("t", 0)
    store_checkpoint(a, corrupt(kind, load_checkpoint(a), a))

    b = make_backend()
    _, log_start, next_offset, headers, tail = b.open_partition("t", 0, 1)
    assert scan_reads(b) == 101  # the marker and every batch
    assert (log_start, next_offset) == (0, parse_batch_header(batches[-1]).last_offset + 1)
    assert headers == expected_headers(batches)
    assert tail == batches[-1:]
    check_reads(b, batches)
    # A checkpoint of the index that full scan built (as written after a long scan) is usable.
    b._partitions[("t", 0)].write_checkpoint(wait=True)
    c = make_backend()
    assert c.open_partition("t", 0, 1)[1:4] == (log_start, next_offset, headers)
    assert scan_reads(c) == 2  # the last batch and b's marker


def test_a_recreated_topic_does_not_use_the_old_checkpoint(make_backend):
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, 1 << 20)
    append_all(a, "t", epoch, workload(0, 50))
    a.close_partition("t", 0)
    a.delete_topic("t")
    a.create_topic("t", 1)
    assert make_backend().open_partition("t", 0, 1 << 20) == (1, 0, 0, [], [])


def test_the_index_topic_is_compacted(make_backend, pulsar_service, namespace):
    a = make_backend()
    a.create_topic("t", 2)
    for p in (0, 1):
        for round_ in range(3):  # three checkpoints of each partition
            epoch, _, next_offset, _, _ = a.open_partition("t", p, 1)
            append_all_p(a, p, epoch, workload(round_ * 10, 10, first_offset=next_offset))
            a.close_partition("t", p)
    path = pulsar_service.topic_path(f"persistent://public/{namespace}/__kop_index")
    assert pulsar_service.admin("GET", path + "/compactionThreshold") > 0
    pulsar_service.admin("PUT", path + "/compaction")
    deadline = time.monotonic() + 30
    while pulsar_service.admin("GET", path + "/compaction")["status"] != "SUCCESS":
        assert time.monotonic() < deadline, "compaction did not finish"
        time.sleep(0.2)
    b = make_backend()  # reads the compacted view: the last checkpoint of each partition
    for p in (0, 1):
        _, _, next_offset, _, _ = b.open_partition("t", p, 1)
        assert next_offset == 30 * 2  # 30 batches of 1-3 records, 60 records per partition
        assert scan_reads(b, partition=p) == 1


def append_all_p(backend: PulsarBackend, partition: int, epoch: int, batches: list[bytes]) -> Any:
    appender = test_backend.Appender(backend, "t", partition)
    for data in batches:
        appender.append(epoch, data)
    results = appender.wait()
    assert results == [None] * len(batches), results
    return offsets_of(batches)


# ------------------------------------------------------------------------------------------------
# retention


def test_retention_maps_to_pulsar_and_moves_the_log_start(make_backend, pulsar_service, namespace):
    a = make_backend()
    a.create_topic("t", 1)
    epoch, *_ = a.open_partition("t", 0, 1)
    old = workload(0, 30)
    append_all(a, "t", epoch, old)
    assert a.apply_retention("t", 0, 90_000, 3 * 1024 * 1024 + 1) == 0  # nothing deleted yet
    path = pulsar_service.topic_path(f"persistent://public/{namespace}/t")
    # Pulsar's granularity is minutes and MB: rounded up
    policy = {"retentionTimeInMinutes": 2, "retentionSizeInMB": 4}
    assert pulsar_service.admin("GET", path + "/retention") == policy

    # The old batches in one ledger, the new ones in the next (an unload rolls the ledger).
    a.close_partition("t", 0)
    part = partition_topic(namespace, "t")
    pulsar_service.unload(part)
    epoch2, _, start, _, _ = a.open_partition("t", 0, 1)
    new = workload(30, 20, first_offset=start)
    append_all(a, "t", epoch2, new)
    a.close_partition("t", 0)  # its checkpoint's entries start in the first ledger
    first_ledger = pulsar_service.admin("GET", pulsar_service.topic_path(part) + "/internalStats")[
        "ledgers"
    ][0]["ledgerId"]

    # Pulsar deletes the first ledger: no retention (set behind kop's back) and a trim.
    nothing = {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}
    pulsar_service.admin("POST", path + "/retention", nothing)
    deadline = time.monotonic() + 30
    while True:
        pulsar_service.admin("POST", pulsar_service.topic_path(part) + "/trim")
        stats = pulsar_service.admin("GET", pulsar_service.topic_path(part) + "/internalStats")
        if stats["ledgers"][0]["ledgerId"] != first_ledger:
            break
        assert time.monotonic() < deadline, "Pulsar did not trim the first ledger"
        time.sleep(0.5)

    b = make_backend()  # a takeover from the checkpoint: the log starts at the new batches
    _, log_start, next_offset, headers, tail = b.open_partition("t", 0, 1)
    end = parse_batch_header(new[-1]).last_offset + 1
    assert (log_start, next_offset, tail) == (start, end, new[-1:])
    assert scan_reads(b) == 1
    assert headers == expected_headers(old + new)  # producer state outlives the data
    assert b.apply_retention("t", 0, 90_000, 3 * 1024 * 1024 + 1) == start
    assert pulsar_service.admin("GET", path + "/retention") == policy  # kop's again
    check_reads(b, new)
    assert b.read("t", 0, 0, 1, 1 << 62) == new[:1]  # below the log start: the first one kept

    # The partition a instance already had open learns it from apply_retention.
    c = make_backend()
    assert c.apply_retention("t", 0, -1, -1) == start
    infinite = {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1}
    assert pulsar_service.admin("GET", path + "/retention") == infinite
    forget_checkpoint(c)
    assert make_backend().open_partition("t", 0, 1)[1] == start  # a full scan agrees
