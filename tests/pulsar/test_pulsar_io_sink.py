"""A real Pulsar IO sink reads Kafka records (issue #17): Kafka producers write through two kop
instances (``pulsar_entry_format = "pulsar"``, docs/pulsar-native-records.md) to a two-partition
topic, and a generic file sink (tests/pulsar/java/RecordFileSink.java, an
``org.apache.pulsar.io.core.Sink`` compiled here against ``pulsar-io-core`` from the Maven
Central jars), run by the standalone's own functions worker, writes every message it is given
to a file: each Kafka record arrives as one Pulsar message with its key, value, headers (as
properties) and timestamp (as event time). Runs on the extras standalone shared with the
Function test (tests/helpers/pulsar_extras.py)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from helpers import ck
from helpers.instances import Pair, wait_for
from helpers.pulsar_extras import ExtrasPulsar, compile_jar

pytestmark = [pytest.mark.pulsar]

SINK_SOURCE = Path(__file__).parent / "java" / "RecordFileSink.java"
BASE_TS = 1_700_000_000_000
RECORDS = 20


@pytest.fixture(scope="module")
def sink_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sink, compiled against ``pulsar-io-core`` (Sink, SinkContext) and
    ``pulsar-functions-api`` (Record) and zipped."""
    return compile_jar(
        SINK_SOURCE,
        ("pulsar-io-core-*.jar", "pulsar-functions-api-*.jar"),
        tmp_path_factory.mktemp("record-file-sink"),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # Only whole lines: the sink may be writing the next one.
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def _records(path: Path) -> list[dict[str, Any]]:
    """What the sink wrote, less kop's epoch markers (a Pulsar application skips
    ``kop.type=marker``, docs/pulsar-native-records.md)."""
    return [r for r in _lines(path) if r["properties"].get("kop.type") != "marker"]


def test_a_pulsar_io_sink_reads_each_kafka_record_as_one_message(
    extras_pulsar: ExtrasPulsar, sink_jar: Path, tmp_path: Path, pulsar_timings: Any
) -> None:
    pair = Pair(tmp_path, partitions=2, pulsar_entry_format="pulsar", service=extras_pulsar)
    ns = pair.one.namespace
    name = ck.unique("file-sink")
    created = False
    try:
        # Both partitions, one led by each instance.
        topic = pair.topic("sink-in")
        producer = Producer({"bootstrap.servers": pair.bootstrap, "linger.ms": 20})
        sent = {}
        for i in range(RECORDS):
            key, value = f"key-{i}", f"value {i} \u00e9".encode()
            headers = {"n": str(i), "quote": 'a "b" \\c', "source": "kafka"}
            producer.produce(
                topic,
                value,
                key.encode(),
                partition=i % 2,
                headers=list(headers.items()),
                timestamp=BASE_TS + i,
            )
            sent[key] = (value, headers, BASE_TS + i, i % 2)
        assert producer.flush(30) == 0
        del producer  # closed now, not retrying the stopped instances after the test

        out = tmp_path / "sink-out.jsonl"
        t0 = time.monotonic()
        extras_pulsar.create_sink(
            {
                "tenant": "public",
                "namespace": ns,
                "name": name,
                "className": "RecordFileSink",
                "inputs": [f"persistent://public/{ns}/{topic}"],
                "configs": {"path": str(out)},
                "sourceSubscriptionPosition": "Earliest",
                "processingGuarantees": "ATLEAST_ONCE",
                "parallelism": 1,
            },
            sink_jar,
        )
        created = True
        wait_for(
            "the sink wrote every record",
            lambda: len(_records(out)) >= RECORDS,
            timeout=120,
        )
        pulsar_timings("IO sink: sinks create to last record written [s]", time.monotonic() - t0)
        status = extras_pulsar.sink_status("public", ns, name)
        assert status["numRunning"] == 1, status
        instance = status["instances"][0]["status"]
        assert instance["numSystemExceptions"] == 0, instance
        assert instance["numSinkExceptions"] == 0, instance

        got = _records(out)
        # Each record exactly once (at-least-once, but nothing failed), as one message.
        assert sorted(r["key"] for r in got) == sorted(sent), got
        for r in got:
            value, headers, ts, partition = sent[r["key"]]
            assert r["topic"] == f"persistent://public/{ns}/{topic}-partition-{partition}"
            assert base64.b64decode(r["value"]) == value, r
            assert r["event_time"] == ts, r
            # The headers are the properties; kop's own are kop.* (set aside as a Pulsar
            # application does).
            props = {k: v for k, v in r["properties"].items() if not k.startswith("kop.")}
            assert props == headers, r
        # Per partition, in the order produced.
        for p in (0, 1):
            order = [int(r["key"].split("-")[1]) for r in got if r["topic"].endswith(f"-{p}")]
            assert order == sorted(order) and len(order) == RECORDS // 2, order
    finally:
        if created:
            extras_pulsar.delete_sink("public", ns, name)
        pair.stop()
