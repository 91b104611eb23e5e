"""Log compaction as clients see it, against kop and Apache Kafka 4.4 alike: a key-heavy
workload with tombstones on a compacted topic ends up, read from the beginning, as exactly the
latest value of every live key at the offset it was written at, and no deleted key once
delete.retention.ms has passed since its tombstone was first cleaned. librdkafka and
kafka-python read across the gaps compaction leaves; an aborted transaction's records are
cleaned away as on Kafka. (Pulsar compaction is designed, not built: docs/compaction.md.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from conftest import TARGETS
from helpers import ck, java
from helpers.servers import ServerHandle, start_server

# Every test here is about the server process or the local log itself (conftest.py, KOP_CLI_TESTS).
pytestmark = pytest.mark.kop_process

# Small, fast settings on both systems: segments roll on the first append after 100 ms,
# any dirty data makes a log cleanable, tombstones live 2 s after their first clean.
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "2000",
    "min.compaction.lag.ms": "0",
}
KEYS = 500
ROUNDS = 12
DELETED = set(range(0, KEYS, 5))


@pytest.fixture(scope="module", params=[t for t in TARGETS if t != "kop-pulsar"])
def cserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    target = request.param
    if target == "kafka":
        java.fetch()
    srv = start_server(
        target, tmp_path_factory.mktemp(f"{target}-compact"), log_cleaner_backoff_ms=200
    )
    yield srv
    srv.stop()


def _produce(p: Any, topic: str, records: list[tuple[bytes, bytes | None]]) -> list[int]:
    """Offsets the records got, in order."""
    offsets = [-1] * len(records)

    def cb(i: int) -> Any:
        def done(err: Any, msg: Any) -> None:
            assert err is None, err
            offsets[i] = msg.offset()

        return done

    for i, (key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=0, on_delivery=cb(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(30) == 0
    return offsets


def _workload(records: list[Any]) -> list[tuple[bytes, bytes | None, int]]:
    return [(r.key, r.value, r.offset) for r in records if not r.key.startswith(b"filler")]


def test_latest_value_per_key_and_deleted_keys_gone(cserver: ServerHandle) -> None:
    bs = cserver.bootstrap
    topic = ck.create_topic(bs, ck.unique("compact"), 1, TOPIC_CONFIG)
    p = ck.producer(bs, **{"linger.ms": 5})
    expected: dict[bytes, tuple[bytes, int]] = {}
    for r in range(ROUNDS):
        batch = [(b"key-%d" % k, b"%d:%d" % (k, r)) for k in range(KEYS)]
        for (key, value), offset in zip(batch, _produce(p, topic, batch), strict=True):
            expected[key] = (value, offset)
        time.sleep(0.12)  # the next round starts a new segment
    tombstones: list[tuple[bytes, bytes | None]] = [(b"key-%d" % k, None) for k in DELETED]
    _produce(p, topic, tombstones)
    for k in DELETED:
        del expected[b"key-%d" % k]

    # Filler on ten keys keeps rolling segments, so the cleaner runs again and again: first it
    # removes old values and marks the tombstones, 2 s later it removes them.
    deadline = time.monotonic() + 45
    filler = 0
    while True:
        time.sleep(0.3)
        _produce(p, topic, [(b"filler-%d" % (filler % 10), b"x")])
        filler += 1
        got = _workload(ck.consume_all(bs, topic, (0,), timeout=30)[0])
        seen = {key: (value, offset) for key, value, offset in got}
        if len(got) == len(expected) and seen == expected:
            break
        if time.monotonic() > deadline:
            deleted_seen = sum(1 for k in seen if int(k.split(b"-")[1]) in DELETED)
            raise AssertionError(
                f"not compacted after 45 s: {len(got)} workload records read for "
                f"{len(expected)} live keys, {deleted_seen} deleted keys still seen"
            )

    # Another client reads the same records across the gaps (kafka-python).
    c = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    records = []
    try:
        while c.position(tp) < end:
            for batch in c.poll(timeout_ms=2000).values():
                records.extend(batch)
    finally:
        c.close()
    py_seen = {r.key: (r.value, r.offset) for r in records if not r.key.startswith(b"filler")}
    assert py_seen == expected


def test_aborted_transactions_are_cleaned_away(cserver: ServerHandle) -> None:
    """Kafka's cleaner removes an aborted transaction's records once its ABORT marker is below
    the cleaned range: read_uncommitted then no longer sees them; committed transactional
    records are compacted like any others."""
    bs = cserver.bootstrap
    topic = ck.create_topic(bs, ck.unique("compact-txn"), 1, TOPIC_CONFIG)
    tp = ck.producer(bs, **{"transactional.id": ck.unique("compact-txn"), "linger.ms": 5})
    tp.init_transactions(30)
    tp.begin_transaction()
    for k in range(50):
        tp.produce(topic, key=b"txn-%d" % k, value=b"aborted", partition=0)
    tp.abort_transaction(30)
    tp.begin_transaction()
    for k in range(0, 50, 2):
        tp.produce(topic, key=b"txn-%d" % k, value=b"old", partition=0)
        tp.produce(topic, key=b"txn-%d" % k, value=b"committed", partition=0)
    tp.commit_transaction(30)
    expected = {b"txn-%d" % k: b"committed" for k in range(0, 50, 2)}

    p = ck.producer(bs, **{"linger.ms": 5})
    deadline = time.monotonic() + 45
    filler = 0
    while True:
        time.sleep(0.3)
        _produce(p, topic, [(b"filler-%d" % (filler % 10), b"x")])
        filler += 1
        got = ck.consume_all(bs, topic, (0,), timeout=30, isolation_level="read_uncommitted")[0]
        txn = [(r.key, r.value) for r in got if r.key.startswith(b"txn-")]
        if sorted(txn) == sorted(expected.items()):
            break
        if time.monotonic() > deadline:
            aborted = sum(1 for _, v in txn if v == b"aborted")
            raise AssertionError(
                f"not cleaned after 45 s: {aborted} aborted and {len(txn)} transactional "
                f"records seen by read_uncommitted, {len(expected)} expected"
            )
    committed = ck.consume_all(bs, topic, (0,), timeout=30, isolation_level="read_committed")[0]
    assert {r.key: r.value for r in committed if r.key.startswith(b"txn-")} == expected
