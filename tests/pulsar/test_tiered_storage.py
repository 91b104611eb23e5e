"""Data Pulsar offloaded to tiered storage (the filesystem offloader from Maven Central) is
still served to Kafka consumers: from the earliest offset, by timestamp (offsetsForTimes), and
after takeovers by the other kop instance, both without an index checkpoint (a full scan of the
offloaded ledgers) and with one (docs/pulsar-storage.md, "Tiered storage"). Runs on the extras
standalone (tests/helpers/pulsar_extras.py): small ledgers, offloaded ledgers deleted from the
bookie at once, no broker entry cache; kop with no tail cache, so reads go to Pulsar."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pulsar
import pytest
from confluent_kafka import Producer, TopicPartition

from helpers import ck
from helpers.instances import Pair, leaders, wait_for
from helpers.pulsar_extras import ENTRIES_PER_LEDGER, ExtrasPulsar

pytestmark = [pytest.mark.pulsar]

BASE_TS = 1_700_000_000_000
BATCHES = 3 * ENTRIES_PER_LEDGER + 10  # three full ledgers offloaded, the rest in the current one


def _leader(pair: Pair, topic: str) -> int:
    return int(
        wait_for(
            "both instances agree on the leader",
            lambda: (
                (v := [leaders(b, topic).get(0) for b in (pair.one.bootstrap, pair.two.bootstrap)])
                and v[0] == v[1]
                and v[0] not in (None, -1)
                and v[0]
            ),
        )
    )


def _produce(bootstrap: str, topic: str, sent: list[tuple[bytes, bytes, int]], n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(len(sent), len(sent) + n):
        key, value = f"k{i}".encode(), f"record {i}".encode()
        producer.produce(topic, value, key, partition=0, timestamp=BASE_TS + i * 1000)
        assert producer.flush(10) == 0
        sent.append((key, value, BASE_TS + i * 1000))


def _check_reads(bootstrap: str, topic: str, sent: list[tuple[bytes, bytes, int]]) -> None:
    """From the earliest offset, and by timestamp, through ``bootstrap`` (once it has taken
    the partition over)."""
    wait_for("the leader serves the partition", lambda: ck.watermarks(bootstrap, topic, [0]))
    got = ck.consume_all(bootstrap, topic, partitions=[0], timeout=60)[0]
    assert [g.offset for g in got] == list(range(len(sent)))
    assert [(g.key, g.value, g.timestamp) for g in got] == sent
    c = ck.consumer(bootstrap)
    try:
        found = c.offsets_for_times(
            [TopicPartition(topic, 0, BASE_TS + 7_500)], timeout=20
        ) + c.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 45_000)], timeout=20)
    finally:
        c.close()
    # Offset 8 is in the first (offloaded) ledger, 45 in the third.
    assert [tp.offset for tp in found] == [8, 45]


def _checkpoint(service: ExtrasPulsar, ns: str, partition_topic: str) -> dict | None:
    """The latest index checkpoint of ``partition_topic`` on ``__kop_index`` (its ``entries``
    and ``resume`` rows: docs/pulsar-storage.md, "Index checkpoints"), None when none."""
    client = pulsar.Client(service.url, operation_timeout_seconds=10)
    latest = None
    try:
        reader = client.create_reader(
            f"persistent://public/{ns}/__kop_index", pulsar.MessageId.earliest
        )
        while reader.has_message_available():
            msg = reader.read_next(timeout_millis=10_000)
            if msg.partition_key() == partition_topic and msg.data():
                latest = json.loads(zlib.decompress(msg.data()))
    finally:
        client.close()
    return latest


def test_offloaded_ledgers_are_served_to_kafka_consumers(
    extras_pulsar: ExtrasPulsar, tmp_path: Path
) -> None:
    pair = Pair(tmp_path, partitions=1, service=extras_pulsar, tail_cache_bytes=0)
    try:
        topic = pair.topic_led_by(1, "offload")
        ns = pair.one.namespace
        partition_topic = f"persistent://public/{ns}/{topic}-partition-0"

        # One batch per record, one Pulsar entry per batch: BATCHES entries fill three ledgers.
        sent: list[tuple[bytes, bytes, int]] = []
        _produce(pair.one.bootstrap, topic, sent, BATCHES)

        offloaded = extras_pulsar.offload(partition_topic)
        assert len(offloaded) >= 3, extras_pulsar.internal_info(partition_topic)
        stored = list(extras_pulsar.offload_dir.rglob("index"))
        assert len(stored) >= len(offloaded), stored  # one MapFile per offloaded ledger
        # Pulsar's storage size (what DescribeLogDirs reports) counts offloaded ledgers too.
        stats = extras_pulsar.topic_stats(partition_topic)
        assert 0 < stats["offloadedStorageSize"] <= stats["storageSize"], stats

        # The owner (instance 1) reads them back: its index points into offloaded ledgers.
        _check_reads(pair.one.bootstrap, topic, sent)

        # kill -9: instance 2 takes the partition over with no checkpoint (instance 1 wrote
        # none: fewer than 1000 batches, no clean close), so its takeover scans the offloaded
        # ledgers from the first message.
        assert _checkpoint(extras_pulsar, ns, partition_topic) is None
        pair.one.kill()
        wait_for(
            "instance 2 leads the partition", lambda: leaders(pair.two.bootstrap, topic)[0] == 2
        )
        _check_reads(pair.two.bootstrap, topic, sent)
        _produce(pair.two.bootstrap, topic, sent, 5)  # so that closing it writes a checkpoint

        # Instance 1 back: instance 2 closes the partition cleanly (writing an index checkpoint
        # whose entries point into offloaded ledgers) and instance 1 takes over from it.
        pair.one.start()
        assert _leader(pair, topic) == 1
        _check_reads(pair.one.bootstrap, topic, sent)
        checkpoint = _checkpoint(extras_pulsar, ns, partition_topic)
        assert checkpoint is not None
        entries, resume = checkpoint["entries"], checkpoint["resume"]
        # The checkpoint's sample names batches in offloaded ledgers (offload keeps ledger
        # ids), its resume point the ledger being written; instance 1 used it.
        assert {row[6] for row in entries} & set(offloaded), (entries, offloaded)
        assert resume[6] not in offloaded
        assert f"{partition_topic}: index checkpoint not used" not in (pair.one.log_text() or "")
    finally:
        pair.stop()
