"""confluent-kafka (librdkafka): 100k records per codec over 4 partitions, read back
byte-identical, in order, offsets contiguous; idempotent producer; ~1 MiB values."""

from __future__ import annotations

import random
import time

import pytest

from helpers import ck
from helpers.data import Mix, Rec, by_partition, check_same, make_records

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 100_000
BIG_TOPIC_LIMIT = str(4 * 1024 * 1024)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
def test_100k_records_round_trip(server, codec):
    topic = ck.create_topic(
        server.bootstrap, ck.unique(f"ck-{codec}"), 4, {"max.message.bytes": BIG_TOPIC_LIMIT}
    )
    recs = make_records(N, Mix(big_values=4, seed=CODECS.index(codec)))
    acks = ck.produce(
        server.bootstrap, topic, recs, compression_type=codec, enable_idempotence=True
    )
    acks.check_order(recs)

    got = ck.consume_all(server.bootstrap, topic)
    check_same(recs, got)

    # each delivery report named exactly the offset the record was read back at
    per = by_partition(recs)
    seen: dict[int, int] = {p: 0 for p in per}
    for i, r in enumerate(recs):
        assert acks.offsets[i] == (r.partition, seen[r.partition]), (i, acks.offsets[i])
        seen[r.partition] += 1
    marks = ck.watermarks(server.bootstrap, topic, range(4))
    assert marks == {p: (0, len(per[p])) for p in range(4)}


@pytest.mark.timeout(300)
def test_non_idempotent_acks_1_and_0(server):
    """acks=1 and acks=0 producers (no idempotence) also land every record."""
    topic = ck.create_topic(server.bootstrap, ck.unique("ck-acks"), 4)
    recs = make_records(4000, Mix(seed=7))
    first, second = recs[:2000], recs[2000:]
    acks = ck.produce(server.bootstrap, topic, first, acks="1", enable_idempotence=False)
    acks.check_order(first)
    # acks=0: the client gets no offsets back, so only the read-back proves delivery
    p = ck.producer(server.bootstrap, acks="0", enable_idempotence=False, linger_ms=0)
    for r in second:
        p.produce(topic, partition=r.partition, key=r.key, value=r.value, headers=list(r.headers))
        p.poll(0)
    assert p.flush(60) == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        marks = ck.watermarks(server.bootstrap, topic, range(4))
        if sum(h for _, h in marks.values()) >= len(recs):
            break
        time.sleep(0.1)
    got = ck.consume_all(server.bootstrap, topic)
    check_same(recs, got)


@pytest.mark.timeout(180)
def test_fetch_response_stays_within_fetch_max_bytes(server):
    """A fetch response is bounded by fetch.max.bytes; only the first partition with data may
    go over it, by one batch (KIP-74). librdkafka refuses a response larger than
    receive.message.max.bytes (here fetch.max.bytes + 512, its minimum) and reconnects, so a
    server that lets every partition add a batch leaves this consumer stuck."""
    topic = ck.create_topic(server.bootstrap, ck.unique("ck-fetch-max"), 3)
    rng = random.Random(9)
    recs = [Rec(p, b"k%d" % i, rng.randbytes(600_000)) for i in range(3) for p in range(3)]
    ck.produce(server.bootstrap, topic, recs, linger_ms=0, compression_type="none")
    got = ck.consume_all(
        server.bootstrap,
        topic,
        (0, 1, 2),
        timeout=60,
        fetch_max_bytes=1_000_000,
        receive_message_max_bytes=1_000_512,
    )
    check_same(recs, got)
