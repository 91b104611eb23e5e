"""DeleteRecords (KIP-107) with Kafka 4.4's `kafka-delete-records` (exit status and output),
confluent-kafka `delete_records` and kafka-python `delete_records`: the new log start is the
low watermark answered, what ListOffsets EARLIEST returns and where consumers from the beginning
start; reads below it are out of range; it survives a restart and kill -9; on the local log the
segments wholly below it are deleted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import OffsetOutOfRangeError

from helpers import ck, java
from helpers.data import Rec

DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"


def _fill(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    recs = [Rec(p, None, b"v%d" % i) for p, n in counts.items() for i in range(n)]
    ck.produce(bootstrap, topic, recs)


def _delete_records_tool(bootstrap: str, tmp_path: Path, entries: list[tuple[str, int, int]]):
    offsets = tmp_path / f"offsets-{len(list(tmp_path.iterdir()))}.json"
    partitions = [{"topic": t, "partition": p, "offset": o} for t, p, o in entries]
    offsets.write_text(json.dumps({"version": 1, "partitions": partitions}))
    return java.run_class(
        DELETE_RECORDS,
        ["--bootstrap-server", bootstrap, "--offset-json-file", str(offsets)],
        check=False,
    )


def _first_offsets(bootstrap: str, topic: str, partitions: range) -> dict[int, int]:
    got = ck.consume_all(bootstrap, topic, partitions)
    return {p: got[p][0].offset for p in partitions if got[p]}


def test_delete_records_tool_moves_the_log_start(server, kafka_tools, tmp_path):
    bs = server.bootstrap
    topic = ck.create_topic(bs, ck.unique("delrec"), 2)
    _fill(bs, topic, {0: 10, 1: 4})

    done = _delete_records_tool(bs, tmp_path, [(topic, 0, 4), (topic, 1, -1)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Records delete operation completed:" in done.stdout
    assert f"partition: {topic}-0\tlow_watermark: 4" in done.stdout
    assert f"partition: {topic}-1\tlow_watermark: 4" in done.stdout
    assert ck.watermarks(bs, topic, range(2)) == {0: (4, 10), 1: (4, 4)}
    got = ck.consume_all(bs, topic, [0])
    assert [g.offset for g in got[0]] == list(range(4, 10))
    assert [g.value for g in got[0]] == [b"v%d" % i for i in range(4, 10)]

    # A lower offset leaves the start where it is.
    lower = _delete_records_tool(bs, tmp_path, [(topic, 0, 2)])
    assert f"partition: {topic}-0\tlow_watermark: 4" in lower.stdout

    # Past the high watermark: the tool exits 0 and prints the error on the partition's line
    # (as on Kafka).
    beyond = _delete_records_tool(bs, tmp_path, [(topic, 0, 11)])
    assert beyond.returncode == 0
    assert re.search(
        rf"partition: {re.escape(topic)}-0\terror: \S*OffsetOutOfRangeException", beyond.stdout
    ), beyond.stdout
    assert ck.watermarks(bs, topic, range(2)) == {0: (4, 10), 1: (4, 4)}

    # Appends go on at the end; a fetch below the start is out of range.
    _fill(bs, topic, {0: 2})
    c = ck.consumer(bs, auto_offset_reset="error")
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        errors = [m.error() for m in c.consume(num_messages=10, timeout=10) if m.error()]
        assert any(e.code() == KafkaError._AUTO_OFFSET_RESET for e in errors), errors
    finally:
        c.close()
    assert ck.watermarks(bs, topic, [0]) == {0: (4, 12)}


def test_confluent_and_kafka_python_delete_records(server):
    bs = server.bootstrap
    topic = ck.create_topic(bs, ck.unique("delrec-clients"), 3)
    _fill(bs, topic, {0: 6, 1: 6, 2: 6})

    a = ck.admin(bs)
    futures = a.delete_records(
        [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, OFFSET_END)], request_timeout=30
    )
    lows = {tp.partition: f.result(timeout=60).low_watermark for tp, f in futures.items()}
    assert lows == {0: 3, 1: 6}
    (beyond,) = a.delete_records([TopicPartition(topic, 2, 7)], request_timeout=30).values()
    with pytest.raises(KafkaException) as err:
        beyond.result(timeout=60)
    assert err.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE

    kp = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=30_000)
    try:
        answer = kp.delete_records({KpTopicPartition(topic, 2): 5})
        assert [p["low_watermark"] for p in answer.values()] == [5]
        with pytest.raises(OffsetOutOfRangeError):
            kp.delete_records({KpTopicPartition(topic, 2): 100})
    finally:
        kp.close()
    assert ck.watermarks(bs, topic, range(3)) == {0: (3, 6), 1: (6, 6), 2: (5, 6)}
    assert _first_offsets(bs, topic, range(3)) == {0: 3, 2: 5}


def _delete_records(bootstrap: str, topic: str, offset: int) -> int:
    """The low watermark confluent-kafka's delete_records answers for partition 0."""
    a = ck.admin(bootstrap)  # kept until the answer: a dropped client never completes it
    (future,) = a.delete_records([TopicPartition(topic, 0, offset)], request_timeout=30).values()
    return int(future.result(timeout=60).low_watermark)


def _segment_files(srv, topic: str) -> int | None:
    """The local log's segment files of partition 0 (None where kop does not keep them)."""
    if srv.target not in ("kop-cli", "kop-embedded"):
        return None
    return len(list((srv.data_dir / "logs" / f"{topic}-0").glob("*.log")))


@pytest.mark.kop_process
@pytest.mark.timeout(400)
def test_the_log_start_survives_restart_and_kill(target, server_factory):
    srv = server_factory(target)
    bs = srv.bootstrap
    # 1 MiB segments (Kafka's least) of 100 kB records: the delete below frees whole segments.
    topic = ck.create_topic(bs, ck.unique("delrec-durable"), 1, {"segment.bytes": "1048576"})
    ck.produce(bs, topic, [Rec(0, None, b"x" * 100_000) for _ in range(30)])
    before = _segment_files(srv, topic)
    assert _delete_records(bs, topic, 17) == 17
    after = _segment_files(srv, topic)
    if before is not None:
        assert after is not None and after < before, (before, after)

    srv.restart()
    ck.wait_for_partitions(srv.bootstrap, topic, 1)
    assert ck.watermarks(srv.bootstrap, topic, [0]) == {0: (17, 30)}
    assert _first_offsets(srv.bootstrap, topic, range(1)) == {0: 17}

    if not srv.can_kill:
        return
    assert _delete_records(srv.bootstrap, topic, 25) == 25
    srv.kill()
    srv.start()
    ck.wait_for_partitions(srv.bootstrap, topic, 1)
    # kop stores the log start before it answers. Kafka checkpoints it once a minute
    # (log.flush.start.offset.checkpoint.interval.ms): after kill -9 it may start earlier.
    start = 25 if srv.target != "kafka" else ck.watermarks(srv.bootstrap, topic, [0])[0][0]
    assert 17 <= start <= 25
    assert ck.watermarks(srv.bootstrap, topic, [0]) == {0: (start, 30)}
    assert _first_offsets(srv.bootstrap, topic, range(1)) == {0: start}
