"""Pulsar applications and Kafka clients on the same topics (docs/pulsar-native-records.md), with
two kop instances on the namespace. The Pulsar side is the Python ``pulsar-client`` (the same
C++ client library the Java client's wire protocol talks to; a Java client from Maven Central
would add a JVM start per test)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition

from helpers import ck
from helpers.data import Got
from helpers.instances import Pair, leaders, wait_for
from helpers.pulsar import PulsarService
from kop.pulsar import native
from kop.pulsar.admin import PulsarAdmin
from kop.pulsar.client import PulsarIO
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import parse_batch_header
from kop.pulsar.native import NativePartition
from kop.pulsar.native_index import BrokerIndex

pytestmark = [pytest.mark.pulsar]

PARTITIONS = 2
JAVA_READER = Path(__file__).parent / "java" / "PulsarRecords.java"
PULSAR_SH = Path(__file__).resolve().parents[2] / "scripts" / "pulsar.sh"
BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # Entry format "pulsar" for what Kafka producers write; what Pulsar producers write is
    # detected per partition whatever the option says.
    p = Pair(tmp_path_factory.mktemp("native"), partitions=PARTITIONS, pulsar_entry_format="pulsar")
    try:
        yield p
    finally:
        p.stop()


def _create(pair: Pair, name: str, partitions: int) -> str:
    """Create the Kafka topic (adopting a partitioned Pulsar topic of that name, if any) and
    wait until both instances know its leaders."""
    ck.create_topic(pair.one.bootstrap, name, partitions)
    wait_for(
        "both instances agree on the leaders",
        lambda: (
            (v := [leaders(b, name) for b in (pair.one.bootstrap, pair.two.bootstrap)])
            and v[0] == v[1]
            and len(v[0]) == partitions
            and -1 not in v[0].values()
        ),
    )
    wait_for(
        "both answer ListOffsets", lambda: ck.watermarks(pair.bootstrap, name, range(partitions))
    )
    return name


def _pulsar_write(service: PulsarService, namespace: str, name: str) -> dict[int, list[dict]]:
    """Pulsar producers (batching on, as by default) write both partitions of a partitioned
    topic ``name``; what each partition holds, in order."""
    service.admin("PUT", f"/admin/v2/persistent/public/{namespace}/{name}/partitions", PARTITIONS)
    client = pulsar.Client(service.url, operation_timeout_seconds=10)
    written: dict[int, list[dict]] = {p: [] for p in range(PARTITIONS)}
    try:
        for p, count in ((0, 30), (1, 12)):
            producer = client.create_producer(
                f"persistent://public/{namespace}/{name}-partition-{p}",
                batching_enabled=True,
                batching_max_publish_delay_ms=5,
            )
            for i in range(count):
                msg = {
                    "key": f"k{p}-{i}" if i % 3 else None,
                    "ordering": f"o{i}" if i % 3 == 0 else None,
                    "value": f"v{p}-{i}".encode(),
                    "props": {"source": "pulsar", "n": str(i)},
                    "ts": BASE_TS + i * 1000,
                }
                kwargs = {"properties": msg["props"], "event_timestamp": msg["ts"]}
                if msg["key"] is not None:
                    kwargs["partition_key"] = msg["key"]
                if msg["ordering"] is not None:
                    kwargs["ordering_key"] = msg["ordering"]
                producer.send_async(msg["value"], None, **kwargs)
                written[p].append(msg)
            producer.flush()
            producer.close()
    finally:
        client.close()
    return written


def test_kafka_consumers_read_a_topic_pulsar_producers_wrote(
    pulsar_service: PulsarService, pair: Pair
) -> None:
    name = ck.unique("from-pulsar")
    written = _pulsar_write(pulsar_service, pair.one.namespace, name)
    # The Kafka topic adopts the partitioned Pulsar topic (same partition count).
    _create(pair, name, PARTITIONS)

    # From earliest, through both instances (each leads or scans its partitions).
    got = ck.consume_all(pair.bootstrap, name, partitions=range(PARTITIONS), timeout=60)
    for p, msgs in written.items():
        assert [g.offset for g in got[p]] == list(range(len(msgs)))
        for g, msg in zip(got[p], msgs, strict=True):
            key = msg["key"] if msg["key"] is not None else msg["ordering"]
            assert g.key == key.encode()
            assert g.value == msg["value"]
            assert dict(g.headers) == {k: v.encode() for k, v in msg["props"].items()}
            assert g.timestamp == msg["ts"]

    # By timestamp (ListOffsets), on each instance.
    for bootstrap in (pair.one.bootstrap, pair.two.bootstrap):
        c = ck.consumer(bootstrap)
        try:
            found = c.offsets_for_times(
                [
                    TopicPartition(name, 0, BASE_TS + 10_500),
                    TopicPartition(name, 1, BASE_TS + 99_000_000),
                ],
                timeout=20,
            )
        finally:
            c.close()
        assert [tp.offset for tp in found] == [11, -1]

    # Through a consumer group, committing; the committed offsets are the ends.
    group = ck.unique("native-group")
    c = ck.consumer(
        pair.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_partition_eof=False,
        enable_auto_offset_store=True,
    )
    try:
        c.subscribe([name])
        seen = 0
        deadline = time.monotonic() + 40
        while seen < 42 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=1.0):
                assert m.error() is None, m.error()
                seen += 1
        assert seen == 42
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(name, p) for p in range(PARTITIONS)], timeout=20)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 30), (1, 12)]
    finally:
        c.close()

    # A Kafka producer is refused at once (the partition is the Pulsar applications'): a
    # non-retriable INVALID_TOPIC_EXCEPTION, not retried until the delivery timeout (30 s).
    for idempotent in (False, True):
        errors: list[KafkaError] = []
        producer = Producer(
            {
                "bootstrap.servers": pair.bootstrap,
                "delivery.timeout.ms": 30_000,
                "enable.idempotence": idempotent,
            }
        )
        started = time.monotonic()
        producer.produce(
            name,
            b"from kafka",
            partition=0,
            on_delivery=lambda err, _m, errors=errors: errors.append(err),
        )
        producer.flush(20)
        elapsed = time.monotonic() - started
        assert len(errors) == 1 and errors[0] is not None, errors
        assert errors[0].code() == KafkaError.TOPIC_EXCEPTION, errors[0]
        assert not errors[0].retriable()
        assert elapsed < 5, f"refused after {elapsed:.1f} s"
    logs = pair.one.log_text() + pair.two.log_text()
    assert "Kafka produce refused" in logs


def _pulsar_read(service: PulsarService, topic: str, count: int) -> list[pulsar.Message]:
    """The first ``count`` record messages of ``topic`` (kop's markers, empty messages with
    ``kop.type=marker``, skipped), as a plain Pulsar reader sees them."""
    client = pulsar.Client(service.url, operation_timeout_seconds=10)
    out: list[pulsar.Message] = []
    try:
        reader = client.create_reader(topic, pulsar.MessageId.earliest)
        while len(out) < count:
            msg = reader.read_next(timeout_millis=10_000)
            if msg.properties().get("kop.type") != "marker":
                out.append(msg)
    finally:
        client.close()
    return out


def _java_read(service: PulsarService, topic: str, count: int) -> list[dict]:
    """What Pulsar's Java client (a Consumer) reads: the first ``count`` record messages."""
    lib = subprocess.run(
        [str(PULSAR_SH), "lib"], check=True, capture_output=True, text=True, timeout=600
    ).stdout.strip()
    proc = subprocess.run(
        ["java", "-cp", f"{lib}/*", str(JAVA_READER), service.url, topic, str(count)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _kafka_produce(bootstrap: str, topic: str, partition: int, count: int) -> list[dict]:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    sent = []
    for i in range(count):
        msg = {
            "key": f"key-{i}".encode(),
            "value": f"value {i}".encode(),
            "headers": [("h-a", f"a{i}".encode()), ("h-b", b"\xff\x00")] if i % 2 else [],
            "ts": BASE_TS + i,
        }
        p.produce(
            topic,
            msg["value"],
            msg["key"],
            partition=partition,
            headers=msg["headers"],
            timestamp=msg["ts"],
        )
        sent.append(msg)
    assert p.flush(30) == 0
    return sent


def _same(got: list[Got], sent: list[dict]) -> None:
    assert [g.offset for g in got] == list(range(len(sent)))
    for g, msg in zip(got, sent, strict=True):
        assert (g.key, g.value, list(g.headers), g.timestamp) == (
            msg["key"],
            msg["value"],
            msg["headers"],
            msg["ts"],
        )


def test_pulsar_consumers_read_kafka_records_one_per_message(
    pulsar_service: PulsarService, pair: Pair
) -> None:
    name = _create(pair, ck.unique("to-pulsar"), PARTITIONS)
    sent = {p: _kafka_produce(pair.bootstrap, name, p, 9) for p in range(PARTITIONS)}
    for p in range(PARTITIONS):
        topic = f"persistent://public/{pair.one.namespace}/{name}-partition-{p}"
        msgs = _pulsar_read(pulsar_service, topic, len(sent[p]))
        for m, msg in zip(msgs, sent[p], strict=True):
            assert m.partition_key() == msg["key"].decode()
            assert m.data() == msg["value"]
            assert m.event_timestamp() == msg["ts"]
            props = m.properties()
            if msg["headers"]:
                assert props["h-a"] == msg["headers"][0][1].decode()  # UTF-8 headers as is
    # Pulsar's Java client sees the same.
    java = _java_read(
        pulsar_service, f"persistent://public/{pair.one.namespace}/{name}-partition-0", 9
    )
    assert [(j["key"], j["value"], j["eventTime"]) for j in java] == [
        (m["key"].decode(), m["value"].decode(), m["ts"]) for m in sent[0]
    ]
    assert java[1]["properties"]["h-a"] == "a1"
    # Kafka consumers read the same records back, byte for byte (check.crcs on).
    got = ck.consume_all(pair.bootstrap, name, partitions=range(PARTITIONS), timeout=60)
    for p in range(PARTITIONS):
        _same(got[p], sent[p])


# A real Pulsar Function between two Kafka topics (run by Pulsar's functions worker):
# tests/pulsar/test_pulsar_functions.py.


def _partition_producer(service: PulsarService, namespace: str, name: str) -> tuple[Any, Any]:
    """A Pulsar client and a producer (batching on) of partition 0 of the new one-partition
    Pulsar topic ``name``."""
    service.admin("PUT", f"/admin/v2/persistent/public/{namespace}/{name}/partitions", 1)
    client = pulsar.Client(service.url, operation_timeout_seconds=10)
    producer = client.create_producer(
        f"persistent://public/{namespace}/{name}-partition-0",
        batching_enabled=True,
        batching_max_publish_delay_ms=5,
    )
    return client, producer


def _next_record(c: Any, within: float) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for m in c.consume(num_messages=1, timeout=0.05):
            assert m.error() is None, m.error()
            return m
    return None


def test_a_consumer_at_the_end_receives_what_pulsar_producers_write_next(
    pulsar_service: PulsarService, pair: Pair
) -> None:
    """The live tail: messages Pulsar producers write after kop opened the partition wake a
    long-polling Fetch (fetch.wait.max.ms 5 s) and get the next offsets."""
    name = ck.unique("tail")
    client, producer = _partition_producer(pulsar_service, pair.one.namespace, name)
    try:
        for i in range(3):
            producer.send(f"before {i}".encode())
        _create(pair, name, 1)
        assert ck.watermarks(pair.bootstrap, name, [0])[0] == (0, 3)
        c = ck.consumer(pair.bootstrap, fetch_wait_max_ms=5000, enable_partition_eof=False)
        try:
            c.assign([TopicPartition(name, 0, 3)])
            assert _next_record(c, 1.0) is None  # parked in a waiting fetch at the end
            latencies = []
            for i in range(5):
                sent = time.monotonic()
                producer.send(f"live {i}".encode(), partition_key=f"k{i}")
                m = _next_record(c, 10.0)
                latencies.append(time.monotonic() - sent)
                assert m is not None, f"live message {i} never arrived"
                assert (m.offset(), m.key(), m.value()) == (3 + i, f"k{i}".encode(), m.value())
                assert m.value() == f"live {i}".encode()
            print(f"live-tail latencies (s): {[round(x, 3) for x in latencies]}")
            assert max(latencies) < 2.0, latencies
        finally:
            c.close()
    finally:
        client.close()


BIG = 20_000


def _served(bootstrap: str, name: str) -> float:
    """Check what kop answers for the big partition (first, middle and last offsets, by
    timestamp); the seconds it took."""
    started = time.monotonic()
    assert ck.watermarks(bootstrap, name, [0])[0] == (0, BIG)
    # Small fetches: a 1 MiB fetch would encode ~14,000 records (the cost of any read).
    for offset in (0, BIG // 2, BIG - 1):
        c = ck.consumer(bootstrap, enable_partition_eof=False, max_partition_fetch_bytes=2048)
        try:
            c.assign([TopicPartition(name, 0, offset)])
            m = _next_record(c, 20.0)
            assert m is not None, f"nothing at offset {offset}"
            assert (m.offset(), m.value(), m.timestamp()[1]) == (
                offset,
                b"v%d" % offset,
                BASE_TS + offset,
            )
            if offset == 0:
                found = c.offsets_for_times([TopicPartition(name, 0, BASE_TS + 12_345)], timeout=20)
                assert [tp.offset for tp in found] == [12_345]
        finally:
            c.close()
    return time.monotonic() - started


def _opened_reading(log: str, name: str) -> list[int]:
    """Messages each open of the partition read, from kop's log line."""
    return [
        int(n)
        for n in re.findall(
            rf"/{name}-partition-0: Pulsar-format partition .*?, read (\d+) messages "
            r"\(positions from the broker entry index\)",
            log,
        )
    ]


def test_a_new_owner_serves_a_large_pulsar_format_partition_without_reading_it(
    pulsar_service: PulsarService, pair: Pair
) -> None:
    """20,000 messages in Pulsar batches: the instance that opens the partition, then the one
    that takes it over, serve first, middle and last offsets and a time look-up from the
    broker entry index, reading no message to open it (kop's log says how many it read)."""
    name = ck.unique("big")
    client, first = _partition_producer(pulsar_service, pair.one.namespace, name)
    try:
        first.close()
        producer = client.create_producer(
            f"persistent://public/{pair.one.namespace}/{name}-partition-0",
            batching_enabled=True,
            batching_max_publish_delay_ms=10,
            block_if_queue_full=True,  # else send_async drops what overflows the queue
        )
        for i in range(BIG):
            producer.send_async(b"v%d" % i, None, event_timestamp=BASE_TS + i)
        producer.flush()
    finally:
        client.close()
    _create(pair, name, 1)
    leader = leaders(pair.one.bootstrap, name)[0]
    leading, other = (pair.one, pair.two) if leader == 1 else (pair.two, pair.one)
    took = _served(leading.bootstrap, name)
    opened = _opened_reading(leading.log_text(), name)
    assert opened and set(opened) == {0}, opened

    # A takeover: the leader leaves, the other instance opens the partition.
    leading.stop()
    try:
        wait_for(
            "the other instance leads the partition",
            lambda: leaders(other.bootstrap, name).get(0) == (2 if leader == 1 else 1),
        )
        wait_for(
            "it serves the partition",
            lambda: ck.watermarks(other.bootstrap, name, [0])[0] == (0, BIG),
            timeout=30,
        )
        took_over = _served(other.bootstrap, name)
        opened = _opened_reading(other.log_text(), name)
        assert opened and set(opened) == {0}, opened
    finally:
        leading.start()  # the pair serves the next test
    print(f"served in {took:.2f} s by the first owner, {took_over:.2f} s after the takeover")
    assert max(took, took_over) < 15, (took, took_over)


def _drop_first_ledger(service: PulsarService, namespace: str, name: str) -> None:
    """Close the partition's current ledger (an unload) and let Pulsar's retention delete
    everything before the next one (retention 0 on the topic, then a trim)."""
    path = f"/admin/v2/persistent/public/{namespace}/{name}"
    topic = f"{path}-partition-0"
    first = service.admin("GET", topic + "/internalStats")["ledgers"][0]["ledgerId"]
    service.admin("PUT", topic + "/unload")
    service.admin(
        "POST", path + "/retention", {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}
    )

    def gone() -> bool:
        service.admin("POST", topic + "/trim")
        ledgers = service.admin("GET", topic + "/internalStats")["ledgers"]
        return all(ledger["ledgerId"] != first for ledger in ledgers)

    wait_for("Pulsar deletes the first ledger", gone, timeout=30)


class _ScanOnly(BrokerIndex):
    """The broker index as a topic without it looks at open: kop scans (offsets still anchored
    on the earliest entry's index, so both ways give the same offsets)."""

    def earliest(self) -> Any:
        return None


def test_opening_through_the_broker_index_answers_what_the_scan_answers(
    pulsar_service: PulsarService, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kop's partition code directly (no kop instance): a partition of batch entries of several
    sizes and single messages, whose first ledger retention deleted, answers every read, time
    look-up and its log start and end the same when opened through the broker index (reading
    nothing) as when scanned (what kop did before, and does for topics without the index)."""
    # Every read far from a cached position asks the broker; time look-ups probe to the end.
    monkeypatch.setattr(native, "NEAR_MESSAGES", 0)
    monkeypatch.setattr(native, "LINEAR_MESSAGES", 1)
    ns = pair.one.namespace
    name = ck.unique("alike")
    client, first = _partition_producer(pulsar_service, ns, name)
    topic = f"persistent://public/{ns}/{name}-partition-0"
    try:
        first.close()
        single = client.create_producer(topic, batching_enabled=False)
        batcher = client.create_producer(
            topic, batching_enabled=True, batching_max_messages=7, batching_max_publish_delay_ms=50
        )
        n = 0

        def burst(count: int) -> None:
            nonlocal n
            for _ in range(count):
                batcher.send_async(b"v%d" % n, None, event_timestamp=BASE_TS + n)
                n += 1
            batcher.flush()

        burst(40)
        _drop_first_ledger(pulsar_service, ns, name)  # offsets 0..39 go
        burst(100)
        for _ in range(3):  # single (non-batched) messages
            single.send(b"v%d" % n, event_timestamp=BASE_TS + n)
            n += 1
        burst(60)
    finally:
        client.close()

    io = PulsarIO(pulsar_service.url, None, 10.0, 10_000, None)
    admin = PulsarAdmin(pulsar_service.admin_url)
    try:
        short = f"{name}-partition-0"
        indexed = NativePartition(io, topic, BrokerIndex(admin, "public", ns, short))
        scanned = NativePartition(io, topic, _ScanOnly(admin, "public", ns, short))
        assert indexed.open().indexed and indexed.scan_reads == 0
        assert not scanned.open().indexed and scanned.scan_reads == n - 40
        ends = (40, n)
        assert (indexed.log_start, indexed.next_offset) == (scanned.log_start, scanned.next_offset)
        assert (indexed.log_start, indexed.next_offset) == ends
        for offset in [*range(40, n, 11), 46, 47, 139, 140, 141, 142, 143, n - 1]:
            got = indexed.read(offset, 1, n)
            assert got == scanned.read(offset, 1, n), offset
            assert [parse_batch_header(b).base_offset for b in got] == [offset]
        assert indexed.read(40, 1 << 20, n) == scanned.read(40, 1 << 20, n)
        for ts in (0, BASE_TS + 40, BASE_TS + 77, BASE_TS + 141, BASE_TS + n - 1, BASE_TS + n):
            assert indexed.batch_at_timestamp(ts) == scanned.batch_at_timestamp(ts), ts
        assert indexed.batch_with_max_timestamp() == scanned.batch_with_max_timestamp()
        assert indexed.trim_to_stored() == scanned.trim_to_stored() == 40
        with pytest.raises(PulsarStorageError, match="deleted by Pulsar retention"):
            indexed.read(39, 1, n)
    finally:
        io.close()


def test_a_group_continues_on_the_other_instance_after_a_takeover(
    pulsar_service: PulsarService, pair: Pair
) -> None:
    """A consumer group reads through the partition's leader and commits; Pulsar's retention
    deletes the first ledger; the leader stops, the other instance takes the partition over (a
    fresh scan, offsets from the broker entry index), and the group continues there with the
    same offsets, also over what Pulsar producers wrote after the takeover. Last in this file:
    it stops one instance of the pair."""
    name = ck.unique("tail-group")
    ns = pair.one.namespace
    client, producer = _partition_producer(pulsar_service, ns, name)
    group = ck.unique("tail-group")
    try:
        for i in range(10):
            producer.send(f"m{i}".encode())
        _create(pair, name, 1)
        leader = leaders(pair.one.bootstrap, name)[0]
        leading, other = (pair.one, pair.two) if leader == 1 else (pair.two, pair.one)
        other_id = 2 if leader == 1 else 1

        def group_consumer(bootstrap: str) -> Any:
            c = ck.consumer(
                bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_partition_eof=False,
                enable_auto_offset_store=True,
            )
            c.subscribe([name])
            return c

        def read(c: Any, count: int) -> list[tuple[int, bytes]]:
            got: list[tuple[int, bytes]] = []
            deadline = time.monotonic() + 40
            while len(got) < count and time.monotonic() < deadline:
                for m in c.consume(num_messages=100, timeout=0.5):
                    assert m.error() is None, m.error()
                    got.append((m.offset(), m.value()))
            return got

        c = group_consumer(pair.bootstrap)
        try:
            assert read(c, 10) == [(i, f"m{i}".encode()) for i in range(10)]
            # Written while the first leader follows the partition.
            for i in range(10, 13):
                producer.send(f"m{i}".encode())
            assert read(c, 3) == [(i, f"m{i}".encode()) for i in range(10, 13)]
            c.commit(asynchronous=False)
        finally:
            c.close()
        # m0..m12 go with the first ledger; m13.. are in the next one.
        _drop_first_ledger(pulsar_service, ns, name)
        for i in range(13, 16):
            producer.send(f"m{i}".encode())

        leading.stop()  # a clean stop: the leave is announced at once
        wait_for(
            "the other instance leads the partition",
            lambda: leaders(other.bootstrap, name).get(0) == other_id,
        )
        # Offsets survived the retention: the log starts at m13's offset, not at 0.
        wait_for(
            "it serves the partition from offset 13",
            lambda: ck.watermarks(other.bootstrap, name, [0])[0] == (13, 16),
            timeout=30,
        )
        c = group_consumer(other.bootstrap)
        try:
            assert read(c, 3) == [(i, f"m{i}".encode()) for i in range(13, 16)]
            for i in range(16, 19):  # after the takeover
                producer.send(f"m{i}".encode())
            assert read(c, 3) == [(i, f"m{i}".encode()) for i in range(16, 19)]
        finally:
            c.close()
    finally:
        client.close()
