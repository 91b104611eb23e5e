"""The Java side (kafka-clients and the Kafka CLI tools from Maven Central): console producer
and consumer over every codec, the idempotent VerifiableProducer, ClientCompatibilityTest."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from helpers import ck, java
from helpers.data import Mix, Rec, check_contiguous, make_records

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TOPIC_LIMIT = {"max.message.bytes": str(4 * 1024 * 1024)}


def _console_lines(n: int, seed: int) -> list[tuple[str, str | None, tuple[tuple[str, str], ...]]]:
    """(key, value, headers) rows the console producer can express: text, tabs excluded;
    value None via null.marker, some empty values, one ~1 MB value."""
    rows = []
    recs = make_records(n, Mix(big_values=0, null_header_values=False, seed=seed))
    for i, r in enumerate(recs):
        key = r.key.decode() if r.key else f"other-key-{i}"  # unique: rows are found by key
        value = None if r.value is None else r.value.decode()
        headers = tuple((k, (v or b"").decode()) for k, v in r.headers if v)
        rows.append((key, value, headers))
    rows[n // 2] = (f"big-{seed}", "B" * 1_000_000 + "end", ())
    return rows


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
def test_console_producer(server, codec):
    """kafka-console-producer (idempotent, acks=all) with keys, headers, null and empty values;
    librdkafka reads back every record, offsets contiguous, send order kept per key partition."""
    topic = ck.create_topic(server.bootstrap, ck.unique(f"jcp-{codec}"), 4, TOPIC_LIMIT)
    rows = _console_lines(3000, seed=40 + CODECS.index(codec))
    lines = []
    for key, value, headers in rows:
        h = ",".join(f"{k}:{v}" for k, v in headers) if headers else "<NULL>"
        lines.append(f"{h}\t{key}\t{'<NULL>' if value is None else value}")
    java.run_class(
        java.CONSOLE_PRODUCER,
        [
            "--bootstrap-server",
            server.bootstrap,
            "--topic",
            topic,
            "--compression-codec",
            codec,
            "--command-property",
            "enable.idempotence=true",
            "--command-property",
            "acks=all",
            "--command-property",
            "max.request.size=8388608",
            "--command-property",
            "linger.ms=5",
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "parse.headers=true",
            "--reader-property",
            "null.marker=<NULL>",
        ],
        input="\n".join(lines) + "\n",
    )
    got = ck.consume_all(server.bootstrap, topic)
    check_contiguous(got)
    assert sum(len(v) for v in got.values()) == len(rows)
    # every row once, byte-identical; per partition in the order it was sent
    sent_index = {key: i for i, (key, _, _) in enumerate(rows)}
    for p, recs in got.items():
        idx = [sent_index[g.key.decode()] for g in recs]
        assert idx == sorted(idx), f"partition {p}: records out of send order"
        for g in recs:
            key, value, headers = rows[sent_index[g.key.decode()]]
            want_v = None if value is None else value.encode()
            assert g.value == want_v, (p, g.offset, key)
            assert tuple(g.headers) == tuple((k, v.encode()) for k, v in headers), (p, g.offset)
    assert {g.key.decode() for recs in got.values() for g in recs} == set(sent_index)


def _formatted(r: Rec) -> str:
    """What ConsoleConsumer's default formatter prints for a record, with print.offset,
    print.headers and print.key on."""
    hs = ",".join(f"{k}:{'null' if v is None else v.decode()}" for k, v in r.headers)
    key = "null" if r.key is None else r.key.decode()
    value = "null" if r.value is None else r.value.decode()
    return "\t".join([hs or "NO_HEADERS", key, value])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
def test_console_consumer(server, codec):
    """kafka-console-consumer (assigned partition, no group) prints every record librdkafka
    wrote with that codec: offsets, keys, headers, values."""
    topic = ck.create_topic(server.bootstrap, ck.unique(f"jcc-{codec}"), 1)
    recs = [
        Rec(0, r.key, r.value, r.headers)
        for r in make_records(2000, Mix(partitions=1, seed=50 + CODECS.index(codec)))
    ]
    ck.produce(server.bootstrap, topic, recs, compression_type=codec).check_order(recs)
    out = java.run_class(
        java.CONSOLE_CONSUMER,
        [
            "--bootstrap-server",
            server.bootstrap,
            "--topic",
            topic,
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--max-messages",
            str(len(recs)),
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.offset=true",
            "--formatter-property",
            "print.headers=true",
            "--formatter-property",
            "print.key=true",
        ],
    )
    lines = out.stdout.splitlines()
    assert len(lines) == len(recs), out.stderr[-2000:]
    for i, (line, r) in enumerate(zip(lines, recs, strict=True)):
        assert line == f"Offset:{i}\t{_formatted(r)}", (i, line[:200])


@pytest.mark.timeout(300)
def test_verifiable_producer_idempotent(server, tmp_path):
    """The Java producer with enable.idempotence=true (the kafka-clients default) and
    acks=all: every send acknowledged, acknowledged offsets hold the values."""
    topic = ck.create_topic(server.bootstrap, ck.unique("jvp"), 4)
    cfg = tmp_path / "producer.properties"
    cfg.write_text(
        "enable.idempotence=true\nacks=all\nretries=2147483647\nlinger.ms=5\ncompression.type=lz4\n"
    )
    n = 5000
    out = java.run_class(
        java.VERIFIABLE_PRODUCER,
        [
            "--bootstrap-server",
            server.bootstrap,
            "--topic",
            topic,
            "--max-messages",
            str(n),
            "--command-config",
            str(cfg),
        ],
    )
    acked: dict[int, dict[int, str]] = defaultdict(dict)
    errors = []
    for line in out.stdout.splitlines():
        ev = json.loads(line)
        if ev.get("name") == "producer_send_success":
            acked[ev["partition"]][ev["offset"]] = ev["value"]
        elif ev.get("name") == "producer_send_error":
            errors.append(ev)
    assert not errors, errors[:3]
    assert sum(len(v) for v in acked.values()) == n
    got = ck.consume_all(server.bootstrap, topic)
    check_contiguous(got)
    for p, recs in got.items():
        assert {g.offset: g.value.decode() for g in recs} == acked.get(p, {}), p
    # VerifiableProducer sends 0..n-1 with the default partitioner; nothing lost or doubled
    assert sorted(int(v) for a in acked.values() for v in a.values()) == list(range(n))


@pytest.mark.timeout(300)
def test_client_compatibility_test(server):
    """ClientCompatibilityTest with every feature kop supports: offsetsForTimes, cluster id,
    create topics, describe configs, the idempotent producer, DescribeAcls (without an ACL
    authorizer kop, like Apache Kafka, answers SecurityDisabled, which counts as supported)."""
    acls = "true"
    java.run_class(
        java.CLIENT_COMPATIBILITY_TEST,
        [
            "--bootstrap-server",
            server.bootstrap,
            "--topic",
            ck.unique("cct"),
            "--offsets-for-times-supported",
            "true",
            "--cluster-id-supported",
            "true",
            "--expect-record-too-large-exception",
            "false",
            "--num-cluster-nodes",
            "1",
            "--create-topics-supported",
            "true",
            "--describe-acls-supported",
            acls,
            "--describe-configs-supported",
            "true",
            "--idempotent-producer-supported",
            "true",
        ],
    )
