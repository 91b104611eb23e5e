"""kop.pulsar.PulsarBackend against a real Pulsar (the contract in docs/pulsar-storage.md).

Every test works in a namespace of its own, so documents and group records do not mix. Kafka
batches are built with tests/helpers/wire.record_batch, their base offset patched as Rust does.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pulsar = pytest.importorskip("pulsar")

from helpers.wire import record_batch  # noqa: E402
from kop.pulsar import PulsarBackend, PulsarStorageError, Record  # noqa: E402
from kop.pulsar.format import (  # noqa: E402
    BATCH_HEADER_SIZE,
    PROP_SNAPSHOT,
    PROP_TYPE,
    TYPE_GROUP_RECORD,
    TYPE_SNAPSHOT_BEGIN,
    parse_batch_header,
    with_base_offset,
)

pytestmark = pytest.mark.pulsar

RECEIPT_TIMEOUT_S = 30.0


# ------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def namespace(pulsar_service: Any) -> str:
    ns = f"kop-{uuid.uuid4().hex[:10]}"
    pulsar_service.admin("PUT", f"/admin/v2/namespaces/public/{ns}")
    return ns


@pytest.fixture
def make_backend(
    pulsar_service: Any, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., PulsarBackend]]:
    """Factory for started backends (one per simulated kop instance), closed at the end."""
    backends: list[PulsarBackend] = []

    def make(**overrides: Any) -> PulsarBackend:
        kwargs: dict[str, Any] = {
            "service_url": pulsar_service.url,
            "admin_url": pulsar_service.admin_url,
            "tenant": "public",
            "namespace": namespace,
            "operation_timeout_s": 10.0,
            "send_timeout_ms": 10_000,
            "log_path": str(tmp_path / "pulsar-client.log"),
        }
        kwargs.update(overrides)
        backend = PulsarBackend(**kwargs)
        backend.start()
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        with contextlib.suppress(Exception):
            backend.close()


@pytest.fixture
def raw_client(pulsar_service: Any, tmp_path: Path) -> Iterator[Any]:
    client = pulsar.Client(
        pulsar_service.url,
        operation_timeout_seconds=10,
        logger=pulsar.FileLogger(pulsar.LoggerLevel.Info, str(tmp_path / "raw-client.log")),
    )
    yield client
    with contextlib.suppress(Exception):
        client.close()


def batch(
    base_offset: int,
    count: int = 3,
    ts: int = 1_000,
    size: int = 8,
    producer_id: int = -1,
    sequence: int = 0,
) -> bytes:
    """A Kafka batch of ``count`` records at ``base_offset`` (bytes 0-7 patched, as Rust does);
    idempotent (producer epoch 0, base sequence ``sequence``) when ``producer_id`` >= 0."""
    records = [
        (f"k{base_offset + i:03d}".encode(), bytes([65 + i % 26]) * size) for i in range(count)
    ]
    idempotent = producer_id >= 0
    data = record_batch(
        records,
        base_timestamp=ts,
        producer_id=producer_id,
        producer_epoch=0 if idempotent else -1,
        base_sequence=sequence if idempotent else -1,
    )
    return with_base_offset(data, base_offset)


class Appender:
    """Appends through the backend the way Rust does, and collects the done() results."""

    def __init__(self, backend: PulsarBackend, topic: str, partition: int = 0) -> None:
        self.backend = backend
        self.topic = topic
        self.partition = partition
        self.results: list[str | None] = []
        self.too_large: list[bool] = []  # per result: done(..., too_large=True)
        self._pending = 0
        self._cv = threading.Condition()

    def append(self, epoch: int, data: bytes) -> None:
        header = parse_batch_header(data)

        def done(error: str | None, too_large: bool = False) -> None:
            with self._cv:
                self.results.append(error)
                self.too_large.append(too_large)
                self._pending -= 1
                self._cv.notify_all()

        with self._cv:
            self._pending += 1
        self.backend.append(
            self.topic,
            self.partition,
            epoch,
            header.base_offset,
            header.record_count,
            header.max_timestamp,
            data,
            done,
        )

    def wait(self) -> list[str | None]:
        with self._cv:
            assert self._cv.wait_for(lambda: self._pending == 0, RECEIPT_TIMEOUT_S), "no receipts"
            return list(self.results)


def append_all(backend: PulsarBackend, topic: str, epoch: int, batches: list[bytes]) -> None:
    appender = Appender(backend, topic)
    for data in batches:
        appender.append(epoch, data)
    assert appender.wait() == [None] * len(batches)


def raw_messages(client: Any, topic: str) -> list[Any]:
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    try:
        out = []
        while reader.has_message_available():
            out.append(reader.read_next(timeout_millis=10_000))
        return out
    finally:
        reader.close()


def partition_topic(namespace: str, topic: str, partition: int = 0) -> str:
    return f"persistent://public/{namespace}/{topic}-partition-{partition}"


def offsets_of(batches: list[bytes]) -> list[int]:
    return [parse_batch_header(b).base_offset for b in batches]


# ------------------------------------------------------------------------------------------------
# documents and topics


def test_documents_survive_a_new_backend(make_backend):
    first = make_backend()
    assert first.load_doc("cluster-id") is None
    first.save_doc("cluster-id", b"abc")
    first.save_doc("topics/orders", b"{}")
    first.save_doc("topics/orders/configs", b"retention")
    first.save_doc("security/acls", b"x")
    first.save_doc("security/acls", b"y")
    first.save_doc("gone", b"soon")
    first.save_doc("gone", None)
    first.save_doc("never-there", None)
    assert first.load_doc("security/acls") == b"y"
    assert first.load_doc("gone") is None

    second = make_backend()
    assert second.load_doc("cluster-id") == b"abc"
    assert second.load_doc("security/acls") == b"y"
    assert second.load_doc("gone") is None
    assert second.doc_names("topics/") == ["topics/orders", "topics/orders/configs"]
    assert second.doc_names("") == [
        "cluster-id",
        "security/acls",
        "topics/orders",
        "topics/orders/configs",
    ]
    second.save_doc("cluster-id", b"")  # empty is a value, not a deletion
    assert make_backend().load_doc("cluster-id") == b""


def test_create_grow_and_delete_topic(make_backend, pulsar_service, namespace):
    backend = make_backend()
    path = f"/admin/v2/persistent/public/{namespace}/orders/partitions"

    def count() -> int:
        return int(pulsar_service.admin("GET", path)["partitions"])

    backend.create_topic("orders", 2)
    assert count() == 2
    backend.create_topic("orders", 2)  # idempotent
    backend.create_topic("orders", 5)  # grows
    assert count() == 5
    backend.create_topic("orders", 3)  # never shrinks
    assert count() == 5

    opened = backend.open_partition("orders", 4, 1 << 20)
    assert opened[:3] == (1, 0, 0)
    backend.delete_topic("orders")
    with pytest.raises(Exception, match="404"):
        pulsar_service.admin("GET", path)
    backend.delete_topic("orders")  # missing is fine
    appender = Appender(backend, "orders", 4)
    appender.append(1, batch(0))
    assert appender.wait()[0] is not None  # its producer was closed with the topic


def test_namespace_policies_are_set_at_start(make_backend, pulsar_service, namespace):
    make_backend()
    ns = f"/admin/v2/namespaces/public/{namespace}"
    assert pulsar_service.admin("GET", ns + "/retention") == {
        "retentionTimeInMinutes": -1,
        "retentionSizeInMB": -1,
    }
    assert (
        pulsar_service.admin("GET", ns + "/inactiveTopicPolicies")["deleteWhileInactive"] is False
    )


# ------------------------------------------------------------------------------------------------
# takeover and appends


def test_open_an_empty_partition(make_backend):
    backend = make_backend()
    backend.create_topic("empty", 1)
    assert backend.open_partition("empty", 0, 1 << 20) == (1, 0, 0, [], [])


def test_takeover_returns_the_log_and_fences_the_old_owner(make_backend, raw_client, namespace):
    a = make_backend()
    a.create_topic("t", 1)
    epoch_a, *_ = a.open_partition("t", 0, 1 << 20)
    batches = [batch(0, 3, producer_id=7), batch(3, 2, producer_id=7, sequence=3), batch(5, 4)]
    append_all(a, "t", epoch_a, batches)

    b = make_backend()
    tail_bytes = len(batches[1]) + len(batches[2])
    epoch_b, log_start, next_offset, headers, tail = b.open_partition("t", 0, tail_bytes)
    assert epoch_b == epoch_a + 1
    assert (log_start, next_offset) == (0, 9)
    # producer state: the last batches of every producer id (batch 5 has none)
    assert headers == [data[:BATCH_HEADER_SIZE] for data in batches[:2]]
    assert tail == batches[1:]
    # At least the newest batch, even when it alone is larger than tail_bytes.
    assert make_backend().open_partition("t", 0, 1)[4] == batches[-1:]

    # The old owner learns it lost the partition on its next send; nothing it sends lands after
    # the new owner's marker.
    late = Appender(a, "t")
    late.append(epoch_a, batch(9, 1))
    late.append(epoch_a, batch(10, 1))
    results = late.wait()
    assert all(r is not None for r in results), results
    assert "not writable" in (results[0] or "")

    c = make_backend()
    epoch_c, _, next_c, _, _ = c.open_partition("t", 0, 1 << 20)
    assert next_c == 9
    append_all(c, "t", epoch_c, [batch(9, 2)])
    assert offsets_of(c.read("t", 0, 0, 1 << 20, 1 << 62)) == [0, 3, 5, 9]

    msgs = raw_messages(raw_client, partition_topic(namespace, "t"))
    kinds = [(m.properties()["kop.type"], int(m.properties()["kop.epoch"])) for m in msgs]
    last_marker = max(i for i, (kind, _) in enumerate(kinds) if kind == "marker")
    assert kinds[last_marker] == ("marker", epoch_c)
    assert kinds[last_marker + 1 :] == [("batch", epoch_c)]
    assert all(epoch < epoch_c for _, epoch in kinds[:last_marker])
    # b's marker came after a's batches, a's late sends appear nowhere
    assert [k for k in kinds if k == ("batch", epoch_a)] == [("batch", epoch_a)] * 3


def test_takeover_while_the_old_owner_keeps_appending(make_backend):
    """The old owner has sends in flight when the new one takes over: whatever it was told was
    stored is in the new owner's log, the log has no gap or overlap, and the new owner's next
    offset follows it."""
    a = make_backend()
    a.create_topic("t", 1)
    epoch_a, *_ = a.open_partition("t", 0, 1 << 20)
    results: dict[int, str | None] = {}
    cv = threading.Condition()
    stop = threading.Event()

    def writer() -> None:
        for offset in range(5000):
            with cv:
                cv.wait_for(lambda sent=offset: sent - len(results) < 16, 10)
                failures = sum(1 for r in results.values() if r is not None)
            if failures >= 20 or stop.is_set():
                return

            def done(error: str | None, at: int = offset) -> None:
                with cv:
                    results[at] = error
                    cv.notify_all()

            data = batch(offset, 1, producer_id=offset)  # one producer id each: every header
            a.append("t", 0, epoch_a, offset, 1, 1000 + offset, data, done)

    thread = threading.Thread(target=writer)
    thread.start()
    with cv:
        assert cv.wait_for(lambda: len(results) >= 100, 30)
    b = make_backend()
    epoch_b, _, next_offset, headers, _ = b.open_partition("t", 0, 1 << 20)
    thread.join(60)
    stop.set()
    assert not thread.is_alive()

    acked = sorted(o for o, r in results.items() if r is None)
    assert acked == list(range(len(acked))), "acknowledged appends are a prefix"
    assert len(acked) >= 100
    assert next_offset >= len(acked)
    assert [parse_batch_header(h).base_offset for h in headers] == list(range(next_offset))
    assert offsets_of(b.read("t", 0, 0, 1 << 30, 1 << 62)) == list(range(next_offset))
    append_all(b, "t", epoch_b, [batch(next_offset, 1)])
    assert offsets_of(make_backend().read("t", 0, 0, 1 << 30, 1 << 62)) == list(
        range(next_offset + 1)
    )


def test_reopening_on_the_same_instance_continues(make_backend):
    backend = make_backend()
    backend.create_topic("t", 1)
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    append_all(backend, "t", epoch, [batch(0, 2, producer_id=1)])
    epoch2, log_start, next_offset, headers, tail = backend.open_partition("t", 0, 1 << 20)
    assert (epoch2, log_start, next_offset, len(headers), len(tail)) == (epoch + 1, 0, 2, 1, 1)
    stale = Appender(backend, "t")
    stale.append(epoch, batch(2, 1))  # Rust's old epoch: refused
    assert stale.wait()[0] is not None
    append_all(backend, "t", epoch2, [batch(2, 1)])
    backend.close_partition("t", 0)
    closed = Appender(backend, "t")
    closed.append(epoch2, batch(3, 1))
    assert closed.wait()[0] is not None
    assert offsets_of(backend.read("t", 0, 0, 1 << 20, 1 << 62)) == [0, 2]


def test_append_to_a_partition_not_opened_fails_at_once(make_backend):
    backend = make_backend()
    backend.create_topic("t", 1)
    appender = Appender(backend, "t")
    appender.append(1, batch(0))
    assert appender.results and appender.results[0] is not None  # reported inside append()
    assert "t" in appender.results[0]


def test_max_batch_bytes_is_read_from_the_broker(make_backend, pulsar_service):
    backend = make_backend()
    runtime = pulsar_service.admin("GET", "/admin/v2/brokers/configuration/runtime")
    assert backend.max_batch_bytes() == int(runtime["maxMessageSize"]) - 1024


def test_prefix_rule_after_a_failed_send(make_backend):
    """A send Pulsar refuses (too big) fails; every later completion of the partition fails too,
    although Pulsar would store those sends, until the partition is opened again."""
    backend = make_backend()
    backend.create_topic("t", 1)
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    appender = Appender(backend, "t")
    appender.append(epoch, batch(0, 2, producer_id=1))
    # over Pulsar's 5 MB message limit
    appender.append(epoch, batch(2, 1, size=6 << 20, producer_id=1, sequence=2))
    for i in range(3, 8):
        appender.append(epoch, batch(i, 1))
    results = appender.wait()
    assert results[0] is None
    assert all(r is not None for r in results[1:]), results
    # Only the refused batch is "too large" (MESSAGE_TOO_LARGE for its producer); the others
    # are ordinary failures (NOT_LEADER_OR_FOLLOWER, retried after the re-sync).
    assert appender.too_large == [False, True] + [False] * 5, results
    assert "maxMessageSize" in (results[1] or ""), results

    epoch2, _, next_offset, headers, _ = backend.open_partition("t", 0, 1 << 20)
    assert epoch2 > epoch
    assert next_offset == 2
    assert len(headers) == 1
    append_all(backend, "t", epoch2, [batch(2, 1)])


# ------------------------------------------------------------------------------------------------
# reads


def test_read_by_offset_honours_max_bytes_and_upper(make_backend):
    backend = make_backend()
    backend.create_topic("t", 1)
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    batches = [batch(i * 5, 5, size=100) for i in range(10)]  # offsets 0..49, ~600 bytes each
    append_all(backend, "t", epoch, batches)
    size = len(batches[0])

    def read(offset: int, max_bytes: int = 1 << 20, upper: int = 1 << 62, b: Any = backend):
        return b.read("t", 0, offset, max_bytes, upper)

    assert read(0) == batches
    assert read(12) == batches[2:]  # the batch containing offset 12 first
    assert read(14, max_bytes=2 * size) == batches[2:4]
    assert read(14, max_bytes=2 * size + size // 2) == batches[2:4]
    assert read(14, max_bytes=1) == batches[2:3]  # at least one batch
    assert read(14, upper=25) == batches[2:5]  # never a batch with base offset >= upper
    assert read(14, upper=10) == []
    assert read(49) == batches[9:]
    assert read(50) == []
    # sequential reads continue with the cached reader; jumping back repositions
    assert read(0, max_bytes=size) == batches[:1]
    assert read(5, max_bytes=size) == batches[1:2]
    assert read(10, max_bytes=size) == batches[2:3]
    assert read(3, max_bytes=size) == batches[:1]

    # Two readers of the same partition at once get the same answers.
    answers: list[list[bytes]] = []
    threads = [threading.Thread(target=lambda: answers.append(read(0))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [batches] * 3

    # After a restart: by a new owner, and by an instance that only reads (started before the
    # owner: the newest instance holds the namespace).
    reader_only = make_backend()
    owner = make_backend()
    owner.open_partition("t", 0, 1 << 20)
    assert read(27, max_bytes=2 * size, b=owner) == batches[5:7]
    assert read(27, max_bytes=2 * size, b=reader_only) == batches[5:7]
    append_all(owner, "t", owner.open_partition("t", 0, 0)[0], [batch(50, 1)])
    assert offsets_of(read(50, b=reader_only)) == [50]  # rescans when asked past its end


def test_read_ahead_is_bounded_in_bytes(make_backend, pulsar_service, namespace):
    """A reader positioned for a read has Pulsar push about READ_AHEAD_BYTES of messages
    ahead, not a fixed count: with 256 KiB batches, 15 (4 MiB), not all 48 stored."""
    from kop.pulsar.partition import READ_AHEAD_BYTES

    backend = make_backend()
    backend.create_topic("big", 1)
    epoch, *_ = backend.open_partition("big", 0, 0)
    batches = [batch(i * 4, 4, size=64 << 10) for i in range(48)]  # ~256 KiB each, 12 MiB
    append_all(backend, "big", epoch, batches)
    assert backend.read("big", 0, 0, 1, 1 << 62) == batches[:1]

    stats_path = f"/admin/v2/persistent/public/{namespace}/big-partition-0/stats"
    ahead = READ_AHEAD_BYTES // len(batches[0])
    dispatched = 0
    deadline = time.monotonic() + 10
    while dispatched < ahead and time.monotonic() < deadline:
        subs = pulsar_service.admin("GET", stats_path)["subscriptions"].values()
        dispatched = sum(c["msgOutCounter"] for s in subs for c in s["consumers"])
        time.sleep(0.1)
    time.sleep(0.5)  # would more follow?
    subs = pulsar_service.admin("GET", stats_path)["subscriptions"].values()
    dispatched = sum(c["msgOutCounter"] for s in subs for c in s["consumers"])
    assert ahead <= dispatched <= ahead + 1, (dispatched, ahead)


def test_reads_skip_markers_and_stale_batches(make_backend):
    a = make_backend()
    a.create_topic("t", 1)
    e1, *_ = a.open_partition("t", 0, 1 << 20)
    append_all(a, "t", e1, [batch(0, 1)])
    b = make_backend()
    e2, *_ = b.open_partition("t", 0, 1 << 20)
    append_all(b, "t", e2, [batch(1, 1)])
    e3, *_ = b.open_partition("t", 0, 1 << 20)
    append_all(b, "t", e3, [batch(2, 1), batch(3, 1)])
    assert offsets_of(b.read("t", 0, 0, 1 << 20, 1 << 62)) == [0, 1, 2, 3]
    assert offsets_of(b.read("t", 0, 2, 1 << 20, 1 << 62)) == [2, 3]


def test_timestamp_lookups(make_backend):
    backend = make_backend()
    backend.create_topic("t", 1)
    assert backend.batch_at_timestamp("t", 0, 0) is None
    assert backend.batch_with_max_timestamp("t", 0) is None
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    timestamps = [100, 300, 200, 300, 50]
    batches = [batch(i * 2, 2, ts=ts) for i, ts in enumerate(timestamps)]
    append_all(backend, "t", epoch, batches)

    for b in (backend, make_backend()):  # from receipts, and from a scan after a restart
        assert b.batch_at_timestamp("t", 0, 0) == batches[0]
        assert b.batch_at_timestamp("t", 0, 100) == batches[0]
        assert b.batch_at_timestamp("t", 0, 150) == batches[1]
        assert b.batch_at_timestamp("t", 0, 300) == batches[1]
        assert b.batch_at_timestamp("t", 0, 301) is None
        assert b.batch_with_max_timestamp("t", 0) == batches[1]


# ------------------------------------------------------------------------------------------------
# group records


def test_group_records_append_rewrite_and_reload(make_backend):
    first = make_backend()
    assert first.load_group_records(0) == []
    first.append_group_records(0, [b"a", b"b"])
    first.append_group_records(0, [])
    assert first.load_group_records(0) == [b"a", b"b"]
    first.rewrite_group_records(0, [b"c", b"d"])
    first.append_group_records(0, [b"e"])
    assert first.load_group_records(0) == [b"c", b"d", b"e"]
    first.rewrite_group_records(0, [])
    first.append_group_records(0, [b"f"])
    first.close()

    second = make_backend()
    assert second.load_group_records(0) == [b"f"]


def test_group_records_ignore_an_incomplete_snapshot(make_backend, raw_client, namespace):
    first = make_backend()
    assert first.load_group_records(0) == []
    first.append_group_records(0, [b"a"])
    first.rewrite_group_records(0, [b"b", b"c"])
    first.append_group_records(0, [b"d"])
    first.close()

    # A writer that died in the middle of a rewrite: begin and some records, no end.
    producer = raw_client.create_producer(
        f"persistent://public/{namespace}/__kop_groups-partition-0", batching_enabled=False
    )
    crashed = {PROP_SNAPSHOT: "crashed"}
    producer.send(b"", properties={PROP_TYPE: TYPE_SNAPSHOT_BEGIN, **crashed})
    producer.send(b"x", properties={PROP_TYPE: TYPE_GROUP_RECORD, **crashed})
    producer.close()

    second = make_backend()
    assert second.load_group_records(0) == [b"b", b"c", b"d"]
    second.append_group_records(0, [b"e"])
    assert make_backend().load_group_records(0) == [b"b", b"c", b"d", b"e"]


def test_group_records_have_one_writer(make_backend):
    first = make_backend()
    with pytest.raises(PulsarStorageError, match="not the group-records writer"):
        first.append_group_records(0, [b"before loading"])
    assert first.load_group_records(0) == []  # the coordinator takes the records over
    first.append_group_records(0, [b"a"])
    second = make_backend(node_id=2)
    assert second.load_group_records(0) == [b"a"]  # takes the group-records topic over
    with pytest.raises(PulsarStorageError, match="__kop_groups"):
        first.append_group_records(0, [b"lost"])
    with pytest.raises(PulsarStorageError, match="not the group-records writer"):
        first.append_group_records(0, [b"lost"])
    second.append_group_records(0, [b"b"])
    assert second.load_group_records(0) == [b"a", b"b"]
    second.release_group_records(0)  # another instance coordinates the groups now
    with pytest.raises(PulsarStorageError, match="released to another kop instance"):
        second.append_group_records(0, [b"lost"])
    assert first.load_group_records(0) == [b"a", b"b"]
    # Shards are separate topics with separate writers.
    assert second.load_group_records(7) == []
    second.append_group_records(7, [b"shard 7"])
    assert first.load_group_records(0) == [b"a", b"b"]
    assert first.load_group_records(7) == [b"shard 7"]


def test_instances_with_other_node_ids_see_each_others_documents(make_backend):
    """Documents are shared by every instance on the namespace: saves show up on the others,
    and a conditional save has exactly one winner however the saves race."""
    first, second = make_backend(node_id=1), make_backend(node_id=2)
    version = second.cluster_state()[1]
    first.save_doc("topic/orders", b"v1")
    deadline = time.monotonic() + 10
    while second.load_doc("topic/orders") != b"v1":
        assert time.monotonic() < deadline, "a document saved on one instance never showed up"
        time.sleep(0.05)
    assert second.cluster_state()[1] > version
    # Create-if-absent from both at once: one wins, both agree on the content.
    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def claim(backend: PulsarBackend, who: str) -> None:
        barrier.wait()
        results[who] = backend.save_doc_if("topic/race", who.encode(), None)

    threads = [
        threading.Thread(target=claim, args=(b, w)) for b, w in ((first, "a"), (second, "b"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True], results
    winner = next(w for w, won in results.items() if won)
    deadline = time.monotonic() + 10
    while first.load_doc("topic/race") != second.load_doc("topic/race"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert first.load_doc("topic/race") == winner.encode()
    # Compare-and-set on the content: a stale expectation loses, the current one wins.
    assert not first.save_doc_if("topic/race", b"stale", b"not what is stored")
    assert first.save_doc_if("topic/race", b"next", winner.encode())
    assert first.save_doc_if("topic/race", None, b"next")  # a conditional delete
    assert first.load_doc("topic/race") is None


def test_members_see_each_other_and_a_leave(make_backend):
    first, second = make_backend(node_id=1), make_backend(node_id=2)
    one = '{"node_id": 1, "endpoints": []}'
    two = '{"node_id": 2, "endpoints": [{"listener": "PLAINTEXT", "host": "h", "port": 2}]}'
    assert first.join(one) == [one]
    assert sorted(second.join(two)) == sorted([one, two])  # the recent heartbeats are read first
    deadline = time.monotonic() + 10
    while sorted(first.cluster_state()[0]) != sorted([one, two]):
        assert time.monotonic() < deadline, first.cluster_state()
        time.sleep(0.1)
    second.close()  # a clean stop announces the leave: no session timeout to wait for
    deadline = time.monotonic() + 3
    while first.cluster_state()[0] != [one]:
        assert time.monotonic() < deadline, first.cluster_state()
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# errors


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_admin_url_is_named(pulsar_service, namespace):
    admin_url = f"http://127.0.0.1:{_closed_port()}"
    backend = PulsarBackend(pulsar_service.url, admin_url, namespace=namespace)
    t0 = time.monotonic()
    with pytest.raises(PulsarStorageError, match=admin_url):
        backend.start()
    assert time.monotonic() - t0 < 30


def test_unreachable_service_url_is_named(pulsar_service, namespace, tmp_path):
    url = f"pulsar://127.0.0.1:{_closed_port()}"
    backend = PulsarBackend(
        url,
        pulsar_service.admin_url,
        namespace=namespace,
        operation_timeout_s=5,
        log_path=str(tmp_path / "client.log"),
    )
    t0 = time.monotonic()
    with pytest.raises(PulsarStorageError, match=url) as err:
        backend.start()
    assert isinstance(err.value, OSError)
    assert time.monotonic() - t0 < 30
    backend.close()


# ------------------------------------------------------------------------------------------------
# decoding for plain Pulsar consumers


def test_message_records_hands_data_batches_to_the_decoder(
    make_backend, raw_client, namespace, monkeypatch
):
    """The Python half of decoding, with a stand-in for the Rust decoder."""
    from kop.pulsar import is_marker, message_records

    seen: list[bytes] = []

    def decode_batch(data: bytes) -> list[tuple[int, int, bytes | None, bytes | None, list[Any]]]:
        seen.append(data)
        header = parse_batch_header(data)
        return [(header.base_offset, header.max_timestamp, b"k", None, [("h", b"v")])]

    monkeypatch.setitem(
        sys.modules, "kop._native", types.SimpleNamespace(decode_batch=decode_batch)
    )
    backend = make_backend()
    backend.create_topic("t", 1)
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    batches = [batch(0, 2, ts=1234), batch(2, 1, ts=1235)]
    append_all(backend, "t", epoch, batches)
    msgs = raw_messages(raw_client, partition_topic(namespace, "t"))
    assert [is_marker(m) for m in msgs] == [True, False, False]
    records = [r for m in msgs for r in message_records(m)]
    assert seen == batches
    assert records == [
        Record(0, 1234, b"k", None, [("h", b"v")]),
        Record(2, 1235, b"k", None, [("h", b"v")]),
    ]
    assert msgs[1].event_timestamp() == 1234


def test_decode_records_of_a_stored_batch(make_backend, raw_client, namespace):
    try:
        native = importlib.import_module("kop._native")
    except ImportError as err:
        if os.environ.get("KOP_ALLOW_MISSING") == "1":
            pytest.skip(f"kop's Rust extension is not built ({err}; KOP_ALLOW_MISSING=1)")
        raise
    assert hasattr(native, "decode_batch")
    from kop.pulsar import is_marker, message_records

    backend = make_backend()
    backend.create_topic("t", 1)
    epoch, *_ = backend.open_partition("t", 0, 1 << 20)
    append_all(backend, "t", epoch, [batch(0, 2, ts=1234), batch(2, 1, ts=1235)])
    msgs = raw_messages(raw_client, partition_topic(namespace, "t"))
    assert [is_marker(m) for m in msgs] == [True, False, False]
    records = [r for m in msgs for r in message_records(m)]
    assert [(r.offset, r.timestamp, r.key) for r in records] == [
        (0, 1234, b"k000"),
        (1, 1234, b"k001"),
        (2, 1235, b"k002"),
    ]
    assert records[0].value == b"A" * 8
    assert records[0].headers == []
