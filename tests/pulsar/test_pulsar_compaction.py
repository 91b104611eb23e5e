"""Log compaction on Pulsar (docs/compaction.md, "Pulsar"): a key-heavy workload with
tombstones on a compacted topic, cleaned by the partition's owner into a compacted generation;
a consumer from the earliest offset then sees the latest value of every key at the offset it
was written at and, after delete.retention.ms, no deleted key; the partition topic is trimmed
below the compacted end, so what Pulsar stores for the partition shrinks. A kill -9 of the
owner hands the partition to the other instance, which serves the same view and cleans on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from helpers import ck
from helpers.data import Rec
from helpers.instances import Pair, leaders, wait_for
from helpers.pulsar import PulsarService

pytestmark = [pytest.mark.pulsar]

KEYS = 500
RECORDS = 20_000
DELETED = {f"k{i:03d}".encode() for i in range(0, KEYS, 10)}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "100",  # Kafka's active segment: the batches after the last 100 ms pause
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "2000",  # the replaced generation's deletion
}


@pytest.fixture
def pair(pulsar_service: PulsarService, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path, partitions=1, log_cleaner_backoff_ms=300)
    yield p
    p.stop()


def _produce(bootstrap: str, topic: str, recs: list[tuple[bytes, bytes | None]]) -> list[int]:
    acks = ck.produce(bootstrap, topic, [Rec(0, k, v) for k, v in recs], linger_ms=20)
    assert not acks.errors, list(acks.errors.values())[:3]
    return [acks.offsets[i][1] for i in range(len(recs))]


def _roll(bootstrap: str, topic: str, latest: dict[bytes, tuple[int, bytes | None]]) -> None:
    """A pause longer than segment.ms, then one record: everything before it is cleanable."""
    time.sleep(0.3)
    (offset,) = _produce(bootstrap, topic, [(b"roll", b"x")])
    latest[b"roll"] = (offset, b"x")


def _visible(bootstrap: str, topic: str) -> dict[bytes, tuple[int, bytes | None]]:
    """key -> (offset, value) of the last record of each key read from the earliest offset;
    fails on a record read twice or out of order."""
    got = ck.consume_all(bootstrap, topic, (0,), timeout=60)[0]
    offsets = [g.offset for g in got]
    assert offsets == sorted(set(offsets))
    return {g.key: (g.offset, g.value) for g in got if g.key is not None}


def _generations(pulsar: PulsarService, namespace: str, topic: str) -> list[str]:
    names = pulsar.admin("GET", f"/admin/v2/persistent/public/{namespace}")
    return sorted(n for n in names if f"/__kop_compacted.{topic}.0." in n)


def _stored(pulsar: PulsarService, namespace: str, topic: str) -> int:
    """Bytes Pulsar stores of the partition: its topic plus its compacted generations."""
    names = [f"persistent://public/{namespace}/{topic}-partition-0"]
    names += _generations(pulsar, namespace, topic)
    return sum(int(pulsar.topic_stats(n)["storageSize"]) for n in names)


def _settled(
    visible: dict[bytes, tuple[int, bytes | None]],
    latest: dict[bytes, tuple[int, bytes | None]],
    deleted_gone: bool,
) -> bool:
    want = {k: v for k, v in latest.items() if not (deleted_gone and v[1] is None)}
    return visible == want


def test_compaction_on_pulsar_across_a_takeover(pair: Pair, pulsar_service: PulsarService) -> None:
    namespace = pair.one.namespace
    topic = pair.topic_led_by(1, "compacted")
    admin = ck.admin(pair.one.bootstrap)
    resource = ConfigResource("topic", topic, set_config=TOPIC_CONFIG)
    admin.alter_configs([resource])[resource].result(timeout=30)

    # 20,000 records over 500 keys; every 10th key ends with a tombstone.
    recs: list[tuple[bytes, bytes | None]] = [
        (f"k{i % KEYS:03d}".encode(), f"v{i:05d}-".encode() * 8) for i in range(RECORDS)
    ]
    recs += [(k, None) for k in sorted(DELETED)]
    offsets = _produce(pair.one.bootstrap, topic, recs)
    latest = {k: (o, v) for (k, v), o in zip(recs, offsets, strict=True)}
    part = f"persistent://public/{namespace}/{topic}-partition-0"
    written = _stored(pulsar_service, namespace, topic)
    _roll(pair.one.bootstrap, topic, latest)

    # The owner cleans: offsets below the compacted end come from generation 1.
    wait_for("a compacted generation", lambda: _generations(pulsar_service, namespace, topic))
    first = _visible(pair.one.bootstrap, topic)
    # Tombstones stay for delete.retention.ms after the clean that first kept them.
    assert _settled(first, latest, deleted_gone=False), "first clean: latest of every key"
    # The partition topic's ledger closes (Pulsar rolls ledgers by size and time; a test
    # cannot wait that long): the next clean moves the subscription past it and trims it.
    pulsar_service.unload(part)
    time.sleep(1.2)  # delete.retention.ms
    more = [(f"k{i:03d}".encode(), b"again") for i in range(1, KEYS, 10)]
    for (k, v), o in zip(more, _produce(pair.one.bootstrap, topic, more), strict=True):
        latest[k] = (o, v)
    _roll(pair.one.bootstrap, topic, latest)
    wait_for(
        "tombstones gone after delete.retention.ms",
        lambda: _settled(_visible(pair.one.bootstrap, topic), latest, deleted_gone=True),
    )
    assert _stored(pulsar_service, namespace, topic) < written // 4, "trimmed"
    gens = wait_for(
        "one generation left",
        lambda: (g := _generations(pulsar_service, namespace, topic)) and len(g) == 1 and g,
        timeout=45,
    )

    # kill -9 of the owner: the other instance takes the partition over from the generation.
    pair.one.kill()
    wait_for(
        "instance 2 leads the partition",
        lambda: leaders(pair.two.bootstrap, topic).get(0) == 2,
    )
    wait_for(  # the leader moved; clients may still be told NOT_LEADER for a moment
        "instance 2 serves the compacted view",
        lambda: _settled(_visible(pair.two.bootstrap, topic), latest, deleted_gone=True),
    )
    # ... and cleans on: a newer generation replaces the one it took over.
    more = [(f"k{i:03d}".encode(), b"third") for i in range(2, KEYS, 10)]
    for (k, v), o in zip(more, _produce(pair.two.bootstrap, topic, more), strict=True):
        latest[k] = (o, v)
    _roll(pair.two.bootstrap, topic, latest)
    wait_for(
        "a generation written by instance 2",
        lambda: gens[0] not in _generations(pulsar_service, namespace, topic),
    )
    assert _settled(_visible(pair.two.bootstrap, topic), latest, deleted_gone=True)
