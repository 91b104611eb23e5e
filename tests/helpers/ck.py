"""confluent-kafka (librdkafka) helpers: create topics, produce with delivery reports, read
partitions back from the beginning without a consumer group protocol (assign, no commits)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from helpers.data import Acks, Got, Rec

BIG = 8 * 1024 * 1024  # client-side size limits for tests with ~1 MiB values


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 20000})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 4,
    config: Mapping[str, str] | None = None,
    *,
    wait_ready: bool = True,
) -> str:
    a = admin(bootstrap)
    fut = a.create_topics(
        [
            NewTopic(
                name, num_partitions=partitions, replication_factor=1, config=dict(config or {})
            )
        ],
        operation_timeout=30,
        request_timeout=30,
    )[name]
    fut.result(timeout=60)
    if wait_ready:
        wait_for_partitions(bootstrap, name, partitions)
    return name


def wait_for_partitions(bootstrap: str, name: str, partitions: int, timeout: float = 30) -> None:
    """Until Metadata lists the topic with that many partitions, each with a leader."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=10)
        t = md.topics.get(name)
        last = t
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == partitions
            and all(p.leader >= 0 for p in t.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


def producer(bootstrap: str, **conf: Any) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "message.max.bytes": BIG,
        "enable.idempotence": True,
        "acks": "all",
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(base)


def produce(
    bootstrap: str,
    topic: str,
    recs: Sequence[Rec],
    *,
    timeout: float = 300,
    **conf: Any,
) -> Acks:
    """Send every record to its partition; wait for all delivery reports."""
    p = producer(bootstrap, **conf)
    acks = Acks()

    def make_cb(i: int) -> Any:
        def cb(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                acks.errors[i] = f"{err.name()}: {err.str()}"
            else:
                acks.offsets[i] = (msg.partition(), msg.offset())

        return cb

    for i, r in enumerate(recs):
        kwargs: dict[str, Any] = {
            "partition": r.partition,
            "key": r.key,
            "value": r.value,
            "on_delivery": make_cb(i),
        }
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} records not delivered within {timeout}s"
    return acks


def consumer(bootstrap: str, **conf: Any) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group.id; with assign() and no commits it is never used
        # for the group protocol.
        "group.id": unique("kop-tests"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "check.crcs": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "receive.message.max.bytes": 100 * 1024 * 1024,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(base)


def watermarks(bootstrap: str, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
    c = consumer(bootstrap)
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20, cached=False)
            for p in partitions
        }
    finally:
        c.close()


def consume_all(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int] = (0, 1, 2, 3),
    *,
    start: Mapping[int, int] | None = None,
    timeout: float = 300,
    **conf: Any,
) -> dict[int, list[Got]]:
    """Everything from ``start[p]`` (default: beginning) up to the high watermark as of the
    call, per partition, in fetch order."""
    marks = watermarks(bootstrap, topic, partitions)
    c = consumer(bootstrap, **conf)
    out: dict[int, list[Got]] = {p: [] for p in partitions}
    try:
        todo = {p for p in partitions if marks[p][1] > (start or {}).get(p, marks[p][0])}
        c.assign(
            [TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out reading {topic}: "
                    + ", ".join(f"p{p}: {len(out[p])} read, high {marks[p][1]}" for p in todo)
                )
            for m in c.consume(num_messages=1000, timeout=1.0):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                p = m.partition()
                ts_type, ts = m.timestamp()
                out[p].append(
                    Got(
                        p,
                        m.offset(),
                        m.key(),
                        m.value(),
                        tuple(m.headers() or ()),
                        ts,
                        {1: "create", 2: "log_append"}.get(ts_type),
                    )
                )
                if m.offset() >= marks[p][1] - 1:
                    todo.discard(p)
    finally:
        c.close()
    return out
