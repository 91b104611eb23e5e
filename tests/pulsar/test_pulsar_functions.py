"""A real Pulsar Function between two Kafka topics (issue #17): Kafka producers write through
kop (``pulsar_entry_format = "pulsar"``), an uppercasing Java function run by the standalone's
own functions worker (tests/pulsar/java/UppercaseFunction.java, compiled here against
``pulsar-functions-api`` from the Maven Central jars) writes a Pulsar topic, and Kafka consumers
read that topic through kop (docs/pulsar-native-records.md), with two kop instances on the
namespace. Runs on the extras standalone (tests/helpers/pulsar_extras.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from helpers import ck
from helpers.instances import Pair, leaders, wait_for
from helpers.pulsar_extras import ExtrasPulsar, compile_jar

pytestmark = [pytest.mark.pulsar]

FUNCTION_SOURCE = Path(__file__).parent / "java" / "UppercaseFunction.java"
BASE_TS = 1_700_000_000_000
RECORDS = 12


@pytest.fixture(scope="module")
def function_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function, compiled against ``pulsar-functions-api`` and zipped."""
    return compile_jar(
        FUNCTION_SOURCE,
        ("pulsar-functions-api-*.jar", "pulsar-client-api-*.jar"),
        tmp_path_factory.mktemp("uppercase-function"),
    )


def _create(pair: Pair, name: str) -> str:
    """The one-partition Kafka topic ``name`` (adopting a Pulsar topic of that name, if any),
    once both instances agree on its leader."""
    ck.create_topic(pair.one.bootstrap, name, 1)
    wait_for(
        "both instances agree on the leader",
        lambda: (
            (v := [leaders(b, name) for b in (pair.one.bootstrap, pair.two.bootstrap)])
            and v[0] == v[1]
            and -1 not in v[0].values()
        ),
    )
    return name


def test_a_pulsar_function_between_two_kafka_topics(
    extras_pulsar: ExtrasPulsar, function_jar: Path, tmp_path: Path
) -> None:
    pair = Pair(tmp_path, partitions=1, pulsar_entry_format="pulsar", service=extras_pulsar)
    try:
        ns = pair.one.namespace
        source = _create(pair, ck.unique("fn-in"))
        producer = Producer({"bootstrap.servers": pair.bootstrap, "linger.ms": 20})
        sent = []
        for i in range(RECORDS):
            headers = [("n", str(i).encode()), ("source", b"kafka")]
            key, value = f"key-{i}".encode(), f"value {i}".encode()
            producer.produce(
                source, value, key, partition=0, headers=headers, timestamp=BASE_TS + i
            )
            sent.append((key, value, headers, BASE_TS + i))
        assert producer.flush(30) == 0

        # The function's output: a partitioned Pulsar topic the Kafka topic adopts later.
        sink = ck.unique("fn-out")
        extras_pulsar.admin("PUT", f"/admin/v2/persistent/public/{ns}/{sink}/partitions", 1)
        t0 = time.monotonic()
        extras_pulsar.create_function(
            {
                "tenant": "public",
                "namespace": ns,
                "name": "uppercase",
                "className": "UppercaseFunction",
                "runtime": "JAVA",
                "inputs": [f"persistent://public/{ns}/{source}"],
                "output": f"persistent://public/{ns}/{sink}",
                "subscriptionPosition": "Earliest",
                "processingGuarantees": "ATLEAST_ONCE",
                "parallelism": 1,
            },
            function_jar,
        )
        out_topic = f"persistent://public/{ns}/{sink}-partition-0"
        wait_for(
            "the function wrote every record",
            lambda: extras_pulsar.topic_stats(out_topic)["msgInCounter"] >= RECORDS,
            timeout=120,
        )
        print(f"function created to last output: {time.monotonic() - t0:.1f} s")
        status = extras_pulsar.function_status("public", ns, "uppercase")
        assert status["numRunning"] == 1, status
        instance = status["instances"][0]["status"]
        # Every message of the input: the records, and kop's epoch marker (skipped).
        assert instance["numSuccessfullyProcessed"] >= RECORDS, instance
        assert instance["numUserExceptions"] == 0, instance

        # Kafka consumers read the function's output through both instances.
        _create(pair, sink)
        got = ck.consume_all(pair.bootstrap, sink, partitions=[0], timeout=60)[0]
        assert [g.offset for g in got] == list(range(RECORDS))
        assert [(g.key, g.value, list(g.headers), g.timestamp) for g in got] == [
            (key, value.upper(), headers, ts) for key, value, headers, ts in sent
        ]
    finally:
        pair.stop()
