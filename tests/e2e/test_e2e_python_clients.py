"""kafka-python and aiokafka: every codec they support, keys, headers, null/empty values and
~1 MiB values, read back byte-identical (with both the same client and librdkafka)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from helpers import ck
from helpers.data import Got, Mix, check_same, make_records

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
N = 6000
BIG = 8 * 1024 * 1024
TOPIC_LIMIT = {"max.message.bytes": str(4 * 1024 * 1024)}


def _mix(seed: int) -> Mix:
    # kafka-python / aiokafka headers must be bytes, so no null header values
    return Mix(big_values=2, null_header_values=False, seed=seed)


# ---- kafka-python ------------------------------------------------------------------------


def kp_consume_all(bootstrap: str, topic: str, partitions=range(4), timeout: float = 120):
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=BIG,
        request_timeout_ms=30000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: dict[int, list[Got]] = {p: [] for p in partitions}
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, f"timed out; still reading {todo}"
            for tp, msgs in c.poll(timeout_ms=1000, max_records=2000).items():
                for m in msgs:
                    out[tp.partition].append(
                        Got(
                            tp.partition,
                            m.offset,
                            m.key,
                            m.value,
                            tuple(m.headers or ()),
                            m.timestamp,
                            "create" if m.timestamp_type == 0 else "log_append",
                        )
                    )
                    if m.offset >= ends[tp] - 1:
                        todo.discard(tp)
        return out
    finally:
        c.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_kafka_python_round_trip(server, codec):
    topic = ck.create_topic(server.bootstrap, ck.unique(f"kp-{codec}"), 4, TOPIC_LIMIT)
    recs = make_records(N, _mix(10 + CODECS.index(codec)))
    p = KafkaProducer(
        bootstrap_servers=server.bootstrap,
        compression_type=codec,
        acks="all",
        linger_ms=5,
        max_request_size=BIG,
        retries=5,
        max_in_flight_requests_per_connection=1,
    )
    try:
        futs = [
            p.send(topic, key=r.key, value=r.value, partition=r.partition, headers=list(r.headers))
            for r in recs
        ]
        p.flush(120)
        metas = [f.get(timeout=60) for f in futs]
    finally:
        p.close(10)
    per: dict[int, int] = {}
    for r, md in zip(recs, metas, strict=True):
        assert md.partition == r.partition
        assert md.offset == per.get(r.partition, 0), (md, r.partition)
        per[r.partition] = md.offset + 1

    check_same(recs, kp_consume_all(server.bootstrap, topic))
    check_same(recs, ck.consume_all(server.bootstrap, topic))


def test_kafka_python_reads_librdkafka_batches(server):
    """kafka-python decodes what librdkafka wrote (zstd, with headers)."""
    topic = ck.create_topic(server.bootstrap, ck.unique("kp-read"), 4, TOPIC_LIMIT)
    recs = make_records(3000, _mix(31))
    ck.produce(server.bootstrap, topic, recs, compression_type="zstd").check_order(recs)
    check_same(recs, kp_consume_all(server.bootstrap, topic))


# ---- aiokafka ------------------------------------------------------------------------------


async def aio_consume_all(bootstrap: str, topic: str, partitions=range(4), timeout: float = 120):
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=BIG,
        request_timeout_ms=15000,
    )
    await c.start()
    try:
        tps = [AioTP(topic, p) for p in partitions]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        out: dict[int, list[Got]] = {p: [] for p in partitions}
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, f"timed out; still reading {todo}"
            batch = await c.getmany(timeout_ms=1000, max_records=2000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out[tp.partition].append(
                        Got(
                            tp.partition,
                            m.offset,
                            m.key,
                            m.value,
                            tuple(m.headers or ()),
                            m.timestamp,
                            "create" if m.timestamp_type == 0 else "log_append",
                        )
                    )
                    if m.offset >= ends[tp] - 1:
                        todo.discard(tp)
        return out
    finally:
        await c.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
async def test_aiokafka_round_trip(server, codec):
    topic = ck.create_topic(server.bootstrap, ck.unique(f"aio-{codec}"), 4, TOPIC_LIMIT)
    recs = make_records(N, _mix(20 + CODECS.index(codec)))
    p = AIOKafkaProducer(
        bootstrap_servers=server.bootstrap,
        compression_type=codec,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=BIG,
    )
    await p.start()
    try:
        futs = [
            await p.send(
                topic, key=r.key, value=r.value, partition=r.partition, headers=list(r.headers)
            )
            for r in recs
        ]
        metas = await asyncio.wait_for(asyncio.gather(*futs), 120)
    finally:
        await p.stop()
    per: dict[int, int] = {}
    for r, md in zip(recs, metas, strict=True):
        assert md.partition == r.partition
        assert md.offset == per.get(r.partition, 0), (md, r.partition)
        per[r.partition] = md.offset + 1

    check_same(recs, await aio_consume_all(server.bootstrap, topic))
    check_same(recs, await asyncio.to_thread(ck.consume_all, server.bootstrap, topic))
