"""Timestamps and ListOffsets: CreateTime round-trips, LogAppendTime topics, offsets by
timestamp, earliest/latest, max timestamp — with librdkafka, kafka-python, aiokafka and the
Java GetOffsetShell."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as AioTP
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTP

from helpers import ck, java
from helpers.data import Rec, check_same

PER_PARTITION = 250
DAY = 86_400_000
MAX_AT = 100  # partition 2, the record with the largest timestamp


def _ts(t0: int, p: int, k: int) -> int:
    return t0 + (k * 4 + p) * 1000


@pytest.fixture(scope="module")
def timed_topic(server):
    """4 partitions x 250 records with explicit CreateTimes two days in the past (Kafka 4
    rejects timestamps more than an hour ahead). Partitions 0, 1, 3: increasing timestamps;
    partition 2: one record (offset 100) a day later than all others."""
    t0 = int(time.time() * 1000) - 2 * DAY
    recs = []
    for k in range(PER_PARTITION):
        for p in range(4):
            ts = t0 + DAY if (p == 2 and k == MAX_AT) else _ts(t0, p, k)
            recs.append(Rec(p, b"k%d-%d" % (p, k), b"v%d-%d" % (p, k), (), ts))
    topic = ck.create_topic(server.bootstrap, ck.unique("times"), 4)
    ck.produce(server.bootstrap, topic, recs, linger_ms=20).check_order(recs)
    return topic, t0, recs


# (query timestamp, expected offset) for the monotonic partitions
def _cases(t0: int, p: int) -> list[tuple[int, int]]:
    last = PER_PARTITION - 1
    return [
        (t0 - 10 * DAY, 0),  # before everything: the first record
        (_ts(t0, p, 0), 0),  # exactly the first
        (_ts(t0, p, 17), 17),  # exactly a record's timestamp
        (_ts(t0, p, 17) + 1, 18),  # between two: the next one
        (_ts(t0, p, last), last),  # exactly the last
        (_ts(t0, p, last) + 1, -1),  # after everything: none
    ]


def test_create_time_round_trip(server, timed_topic):
    topic, _, recs = timed_topic
    got = ck.consume_all(server.bootstrap, topic)
    check_same(recs, got, check_timestamps=True)
    assert {g.timestamp_type for rows in got.values() for g in rows} == {"create"}


def test_offsets_for_times_confluent(server, timed_topic):
    topic, t0, _ = timed_topic
    c = ck.consumer(server.bootstrap)
    try:
        for p in (0, 1, 3):
            for ts, want in _cases(t0, p):
                # one partition per request: librdkafka merges duplicate partitions
                (r,) = c.offsets_for_times([TopicPartition(topic, p, ts)], timeout=20)
                assert r.error is None, (p, ts, r.error)
                assert r.offset == want, (p, ts, r.offset, want)
        # all four partitions in one request
        res = c.offsets_for_times([TopicPartition(topic, p, _ts(t0, p, 9)) for p in (0, 1, 3)])
        assert [(r.partition, r.offset) for r in res] == [(0, 9), (1, 9), (3, 9)]
    finally:
        c.close()


def test_earliest_latest_max_timestamp_admin(server, timed_topic):
    topic, t0, _ = timed_topic
    a = ck.admin(server.bootstrap)
    tps = [TopicPartition(topic, p) for p in range(4)]
    for spec, check in [
        (OffsetSpec.earliest(), lambda p, r: r.offset == 0),
        (OffsetSpec.latest(), lambda p, r: r.offset == PER_PARTITION),
        (
            OffsetSpec.max_timestamp(),
            lambda p, r: (
                (r.offset, r.timestamp)
                == (
                    (MAX_AT, t0 + DAY)
                    if p == 2
                    else (PER_PARTITION - 1, _ts(t0, p, PER_PARTITION - 1))
                )
            ),
        ),
        (OffsetSpec.for_timestamp(_ts(t0, 1, 40)), lambda p, r: p != 1 or r.offset == 40),
    ]:
        futs = a.list_offsets({tp: spec for tp in tps}, request_timeout=20)
        for tp, fut in futs.items():
            r = fut.result(timeout=30)
            assert check(tp.partition, r), (spec, tp.partition, r.offset, r.timestamp)
    assert ck.watermarks(server.bootstrap, topic, range(4)) == {
        p: (0, PER_PARTITION) for p in range(4)
    }


@pytest.mark.java
def test_get_offset_shell(server, timed_topic, kafka_tools):
    """kafka-get-offsets (GetOffsetShell): latest, earliest, max timestamp, by timestamp."""
    topic, t0, _ = timed_topic
    for time_arg, want in [
        ("-1", dict.fromkeys(range(4), PER_PARTITION)),
        ("-2", dict.fromkeys(range(4), 0)),
        ("-3", {0: PER_PARTITION - 1, 1: PER_PARTITION - 1, 2: MAX_AT, 3: PER_PARTITION - 1}),
        (str(_ts(t0, 3, 60)), {3: 60}),
    ]:
        out = java.run_class(
            java.GET_OFFSET_SHELL,
            ["--bootstrap-server", server.bootstrap, "--topic", topic, "--time", time_arg],
        ).stdout
        got = {}
        for line in out.split():
            name, part, off = line.rsplit(":", 2)
            assert name == topic
            got[int(part)] = int(off)
        if time_arg.startswith("-"):
            assert got == want, (time_arg, out)
        else:
            assert got[3] == want[3], (time_arg, out)


def test_offsets_for_times_kafka_python(server, timed_topic):
    topic, t0, _ = timed_topic
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None)
    try:
        for p in (0, 3):
            for ts, want in _cases(t0, p):
                res = c.offsets_for_times({KpTP(topic, p): ts})[KpTP(topic, p)]
                if want == -1:
                    assert res is None, (p, ts, res)
                else:
                    assert (res.offset, res.timestamp) == (want, _ts(t0, p, want)), (p, ts)
        tps = [KpTP(topic, p) for p in range(4)]
        assert c.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        assert c.end_offsets(tps) == dict.fromkeys(tps, PER_PARTITION)
    finally:
        c.close()


async def test_offsets_for_times_aiokafka(server, timed_topic):
    topic, t0, _ = timed_topic
    c = AIOKafkaConsumer(
        bootstrap_servers=server.bootstrap, group_id=None, request_timeout_ms=15000
    )
    await c.start()
    try:
        for p in (1, 3):
            for ts, want in _cases(t0, p):
                res = (await c.offsets_for_times({AioTP(topic, p): ts}))[AioTP(topic, p)]
                if want == -1:
                    assert res is None, (p, ts, res)
                else:
                    assert (res.offset, res.timestamp) == (want, _ts(t0, p, want)), (p, ts)
        tps = [AioTP(topic, p) for p in range(4)]
        assert await c.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        assert await c.end_offsets(tps) == dict.fromkeys(tps, PER_PARTITION)
    finally:
        await c.stop()


def test_log_append_time_topic(server):
    """message.timestamp.type=LogAppendTime: the broker's clock replaces the client's."""
    topic = ck.create_topic(
        server.bootstrap, ck.unique("logappend"), 1, {"message.timestamp.type": "LogAppendTime"}
    )
    old = int(time.time() * 1000) - DAY
    recs = [Rec(0, b"k%d" % i, b"v%d" % i, (), old + i) for i in range(50)]
    before = int(time.time() * 1000)
    ck.produce(server.bootstrap, topic, recs).check_order(recs)
    after = int(time.time() * 1000)
    got = ck.consume_all(server.bootstrap, topic, partitions=[0])
    check_same(recs, got)
    for g in got[0]:
        assert g.timestamp_type == "log_append", g
        assert before - 1000 <= g.timestamp <= after + 1000, (g.timestamp, before, after)


def test_fetch_offset_out_of_range(server, timed_topic):
    """Fetching past the end with auto.offset.reset=error: the client gets OFFSET_OUT_OF_RANGE
    (librdkafka reports it as _AUTO_OFFSET_RESET); with reset=earliest it lands on offset 0."""
    topic, _, _ = timed_topic
    c = ck.consumer(server.bootstrap, auto_offset_reset="error", enable_partition_eof=False)
    try:
        c.assign([TopicPartition(topic, 1, PER_PARTITION + 1000)])
        deadline = time.monotonic() + 30
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None:
                assert m.error() is not None, f"got a record at offset {m.offset()}"
                err = m.error()
        assert err is not None, "no error within 30s"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower(), err
    finally:
        c.close()
    c = ck.consumer(server.bootstrap, auto_offset_reset="earliest", enable_partition_eof=False)
    try:
        c.assign([TopicPartition(topic, 1, PER_PARTITION + 1000)])
        m = None
        deadline = time.monotonic() + 30
        while m is None and time.monotonic() < deadline:
            m = c.poll(1.0)
        assert m is not None and m.error() is None, m and m.error()
        assert (m.offset(), m.value()) == (0, b"v1-0")
    finally:
        c.close()
