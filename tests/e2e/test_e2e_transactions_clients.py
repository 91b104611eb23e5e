"""Transactions with the non-Java clients: confluent-kafka (librdkafka), kafka-python, aiokafka
and franz-go each run commit / abort / commit (read back by their own read_committed consumer
and by librdkafka at both isolation levels) and commit consumer offsets in a transaction
(visible only if it commits); confluent-kafka also runs a consume-transform-produce loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata as AioOffset
from aiokafka.structs import TopicPartition as AioTP
from confluent_kafka import KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTP
from kafka.structs import OffsetAndMetadata as KpOffset

from helpers import ck, txn
from helpers.data import Rec
from helpers.servers import ServerHandle

PARTITIONS, N = 2, 6  # records per transaction


def _committed_offset(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 of ``topic`` (-1001 when none)."""
    c = ck.consumer(bootstrap, group_id=group)
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=30)
        return int(tp.offset)
    finally:
        c.close()


def _wait_committed(bootstrap: str, group: str, topic: str, want: int) -> None:
    """Until the group's offset is ``want``: a transaction's offsets become visible when its
    markers are written, which may follow EndTxn's answer (Kafka completes it asynchronously)."""
    deadline = time.monotonic() + 20
    while (got := _committed_offset(bootstrap, group, topic)) != want:
        assert time.monotonic() < deadline, f"group {group}: committed offset {got}, want {want}"
        time.sleep(0.2)


# ---- confluent-kafka ------------------------------------------------------------------------


def _ck_producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
    p.init_transactions(30)
    return p


@pytest.mark.timeout(120)
def test_confluent_kafka(server: ServerHandle) -> None:
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-ck"), PARTITIONS)
    p = _ck_producer(server.bootstrap, ck.unique("tx"))
    for name in ("c1", "a", "c2"):
        p.begin_transaction()
        for i in range(N):
            p.produce(topic, f"ck-{name}-{i}".encode(), partition=i % PARTITIONS)
        if name == "a":
            p.flush(30)
            p.abort_transaction(60)
        else:
            p.commit_transaction(60)
    txn.check_scenario(server.bootstrap, topic, "ck", PARTITIONS, N)

    # offsets in a transaction: committed with it, dropped with an aborted one
    group = ck.unique("txn-ck-group")
    meta = ck.consumer(server.bootstrap, group_id=group)
    try:
        for offset, commit in ((3, True), (5, False)):
            p.begin_transaction()
            p.send_offsets_to_transaction(
                [TopicPartition(topic, 0, offset)], meta.consumer_group_metadata(), 30
            )
            (p.commit_transaction if commit else p.abort_transaction)(60)
    finally:
        meta.close()
    _wait_committed(server.bootstrap, group, topic, 3)


@pytest.mark.timeout(150)
def test_confluent_kafka_consume_transform_produce(server: ServerHandle) -> None:
    """A subscribed read_committed consumer and a transactional producer copy a topic, input
    offsets committed in each transaction: the output holds each input record once, and the
    group's offsets are the input's ends."""
    n = 200
    source = ck.create_topic(server.bootstrap, ck.unique("ck-ctp-in"), PARTITIONS)
    sink = ck.create_topic(server.bootstrap, ck.unique("ck-ctp-out"), PARTITIONS)
    recs = [Rec(i % PARTITIONS, None, f"v{i}".encode(), ()) for i in range(n)]
    ck.produce(server.bootstrap, source, recs).check_order(recs)
    group = ck.unique("ck-ctp")
    c = ck.consumer(
        server.bootstrap,
        group_id=group,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    p = _ck_producer(server.bootstrap, ck.unique("tx"))
    copied = 0
    try:
        c.subscribe([source])
        deadline = time.monotonic() + 90
        while copied < n:
            assert time.monotonic() < deadline, f"copied {copied} of {n}"
            batch = [
                m
                for m in c.consume(num_messages=50, timeout=0.5)
                if m.error() is None or m.error().code() != KafkaError._PARTITION_EOF
            ]
            if not batch:
                continue
            p.begin_transaction()
            for m in batch:
                assert m.error() is None, m.error()
                p.produce(sink, b"copied:" + m.value(), partition=m.partition())
            p.send_offsets_to_transaction(
                c.position(c.assignment()), c.consumer_group_metadata(), 30
            )
            p.commit_transaction(60)
            copied += len(batch)
    finally:
        c.close()
    want = {q: [f"copied:v{i}" for i in range(q, n, PARTITIONS)] for q in range(PARTITIONS)}
    assert txn.read_values(server.bootstrap, sink, PARTITIONS, "read_committed") == want
    _wait_committed(server.bootstrap, group, source, n // PARTITIONS)


# ---- kafka-python ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_kafka_python(server: ServerHandle) -> None:
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-kp"), PARTITIONS)
    p = KafkaProducer(
        bootstrap_servers=server.bootstrap, transactional_id=ck.unique("tx"), linger_ms=5
    )
    group = ck.unique("txn-kp-group")
    try:
        p.init_transactions()
        for name in ("c1", "a", "c2"):
            p.begin_transaction()
            for i in range(N):
                p.send(topic, f"kp-{name}-{i}".encode(), partition=i % PARTITIONS)
            if name == "a":
                p.flush()
                p.abort_transaction()
            else:
                p.commit_transaction()
        for offset, commit in ((3, True), (5, False)):
            p.begin_transaction()
            p.send_offsets_to_transaction({KpTP(topic, 0): KpOffset(offset, "", -1)}, group)
            (p.commit_transaction if commit else p.abort_transaction)()
    finally:
        p.close(timeout=10)
    committed, _ = txn.scenario_values("kp", PARTITIONS, N)
    assert _kp_read_committed(server.bootstrap, topic) == committed
    txn.check_scenario(server.bootstrap, topic, "kp", PARTITIONS, N)
    _wait_committed(server.bootstrap, group, topic, 3)


def _kp_read_committed(bootstrap: str, topic: str) -> txn.PerPartition:
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = [KpTP(topic, q) for q in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: txn.PerPartition = {q: [] for q in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"stuck before {ends}"
            for tp, msgs in c.poll(timeout_ms=500).items():
                out[tp.partition] += [m.value.decode() for m in msgs]
        return out
    finally:
        c.close()


# ---- aiokafka -------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_aiokafka(server: ServerHandle) -> None:
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-aio"), PARTITIONS)
    group = ck.unique("txn-aio-group")

    async def run() -> txn.PerPartition:
        p = AIOKafkaProducer(
            bootstrap_servers=server.bootstrap, transactional_id=ck.unique("tx"), linger_ms=5
        )
        await p.start()
        try:
            for name in ("c1", "a", "c2"):
                await p.begin_transaction()
                for i in range(N):
                    await p.send(topic, f"aio-{name}-{i}".encode(), partition=i % PARTITIONS)
                if name == "a":
                    await p.flush()
                    await p.abort_transaction()
                else:
                    await p.commit_transaction()
            for offset, commit in ((3, True), (5, False)):
                await p.begin_transaction()
                await p.send_offsets_to_transaction({AioTP(topic, 0): AioOffset(offset, "")}, group)
                await (p.commit_transaction() if commit else p.abort_transaction())
        finally:
            await p.stop()

        c = AIOKafkaConsumer(
            bootstrap_servers=server.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await c.start()
        try:
            tps = [AioTP(topic, q) for q in range(PARTITIONS)]
            c.assign(tps)
            ends = await c.end_offsets(tps)
            out: txn.PerPartition = {q: [] for q in range(PARTITIONS)}
            deadline = time.monotonic() + 60
            while any([await c.position(tp) < ends[tp] for tp in tps]):
                assert time.monotonic() < deadline, f"stuck before {ends}"
                for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                    out[tp.partition] += [m.value.decode() for m in msgs if m.value is not None]
            return out
        finally:
            await c.stop()

    committed, _ = txn.scenario_values("aio", PARTITIONS, N)
    assert asyncio.run(run()) == committed
    txn.check_scenario(server.bootstrap, topic, "aio", PARTITIONS, N)
    _wait_committed(server.bootstrap, group, topic, 3)


# ---- franz-go -------------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_franz_go(server: ServerHandle, go_check: Path) -> None:
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-go"), PARTITIONS)
    out = subprocess.run(
        [
            str(go_check),
            "--mode",
            "txn",
            "--brokers",
            server.bootstrap,
            "--topic",
            topic,
            "--partitions",
            str(PARTITIONS),
            "--records",
            str(N),
        ],
        capture_output=True,
        text=True,
        timeout=130,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    committed, _ = txn.scenario_values("go", PARTITIONS, N)
    assert txn.int_keys(got["read_committed"]) == committed
    txn.check_scenario(server.bootstrap, topic, "go", PARTITIONS, N)
