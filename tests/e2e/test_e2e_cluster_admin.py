"""The Kafka 4.4 tools' cluster and replica APIs: DescribeTopicPartitions (paged
`kafka-topics --describe`), DescribeLogDirs (`kafka-log-dirs`), ElectLeaders
(`kafka-leader-election`), List/AlterPartitionReassignments (`kafka-reassign-partitions`),
feature levels in ApiVersions (`kafka-features describe`) and OffsetForLeaderEpoch (raw
requests). kop answers as a Kafka cluster whose partitions each have one replica."""

from __future__ import annotations

import json
import re

from helpers import ck, java, wire

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
FEATURES = "org.apache.kafka.tools.FeatureCommand"


def _tool(cls: str, bootstrap: str, *args: str, check: bool = True):
    return java.run_class(cls, ["--bootstrap-server", bootstrap, *args], check=check)


def _node_id(bootstrap: str) -> int:
    return next(iter(ck.admin(bootstrap).list_topics(timeout=20).brokers))


def test_topics_describe_pages_through_all_partitions(server, kafka_tools):
    bs = server.bootstrap
    prefix = ck.unique("dtp")
    ck.create_topic(bs, f"{prefix}-a", 5)
    ck.create_topic(bs, f"{prefix}-b", 3)
    # Two partitions per answer: the tool follows the cursor across both topics.
    out = _tool(
        java.TOPIC_COMMAND,
        bs,
        "--describe",
        "--topic",
        f"{prefix}-.*",
        "--partition-size-limit-per-response",
        "2",
    ).stdout
    rows = re.findall(
        r"Topic: (\S+)\tPartition: (\d+)\tLeader: (\d+)\tReplicas: (\d+)\tIsr: (\d+)"
        r"\tElr: \tLastKnownElr: ",
        out,
    )
    listed = sorted((t, int(p)) for t, p, *_ in rows)
    assert listed == [(f"{prefix}-a", p) for p in range(5)] + [
        (f"{prefix}-b", p) for p in range(3)
    ], out
    for _, _, leader, replicas, isr in rows:
        assert leader == replicas == isr
    assert re.search(
        rf"Topic: {prefix}-a\tTopicId: \S+\tPartitionCount: 5\tReplicationFactor: 1", out
    )

    missing = _tool(java.TOPIC_COMMAND, bs, "--describe", "--topic", f"{prefix}-none", check=False)
    assert missing.returncode != 0
    assert "does not exist" in missing.stdout + missing.stderr


def test_log_dirs_report_partitions_and_sizes(server, kafka_tools):
    bs = server.bootstrap
    name = ck.create_topic(bs, ck.unique("logdirs"), 2)
    p = ck.producer(bs)
    for _ in range(20):
        p.produce(name, b"v" * 1000, partition=0)
    assert p.flush(30) == 0

    def sizes() -> dict[str, int]:
        out = _tool(LOG_DIRS, bs, "--describe", "--topic-list", name).stdout
        report = json.loads(out.strip().splitlines()[-1])
        (broker,) = report["brokers"]
        assert broker["broker"] == _node_id(bs)
        (log_dir,) = broker["logDirs"]
        assert log_dir["error"] is None and log_dir["logDir"]
        return {p["partition"]: p["size"] for p in log_dir["partitions"]}

    first = sizes()
    assert set(first) == {f"{name}-0", f"{name}-1"}
    if server.target == "kop-pulsar":
        # Pulsar's topic stats (storageSize), cached 10 s: the stored bytes include Pulsar's
        # framing, and a partition without records holds only kop's own small markers.
        assert first[f"{name}-0"] > 20 * 1000, first
        assert 0 <= first[f"{name}-1"] < 1000, first
    else:
        assert first[f"{name}-0"] > 20 * 1000
        assert first[f"{name}-1"] == 0


def test_preferred_leader_election_is_never_needed(server, kafka_tools):
    bs = server.bootstrap
    name = ck.create_topic(bs, ck.unique("elect"), 2)
    one = _tool(
        LEADER_ELECTION, bs, "--election-type", "preferred", "--topic", name, "--partition", "1"
    )
    assert f"Valid replica already elected for partitions {name}-1" in one.stdout

    every = _tool(LEADER_ELECTION, bs, "--election-type", "preferred", "--all-topic-partitions")
    assert "could not be elected" not in every.stdout + every.stderr

    unknown = _tool(
        LEADER_ELECTION,
        bs,
        "--election-type",
        "preferred",
        "--topic",
        name + "-x",
        "--partition",
        "0",
        check=False,
    )
    assert unknown.returncode != 0
    assert f"No such topic as {name}-x" in unknown.stdout + unknown.stderr


def test_reassignments_listed_empty_and_only_the_current_replica_accepted(
    server, kafka_tools, tmp_path
):
    bs = server.bootstrap
    name = ck.create_topic(bs, ck.unique("reassign"), 2)
    listed = _tool(REASSIGN, bs, "--list")
    assert "No partition reassignments found." in listed.stdout

    desc = ck.admin(bs).list_topics(name, timeout=20).topics[name].partitions[0]
    plan = tmp_path / "same.json"
    plan.write_text(
        json.dumps(
            {
                "version": 1,
                "partitions": [{"topic": name, "partition": 0, "replicas": [desc.leader]}],
            }
        )
    )
    same = _tool(REASSIGN, bs, "--execute", "--reassignment-json-file", str(plan))
    assert f"Successfully started partition reassignment for {name}-0" in same.stdout
    # The tool's own dry run first shows the current assignment with its log directory.
    assert f'"topic":"{name}","partition":0,"replicas":[{desc.leader}],"log_dirs":["' in same.stdout


def test_features_describe_group_version(server, kafka_tools):
    out = _tool(FEATURES, server.bootstrap, "describe").stdout
    levels = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(
            r"Feature: (\S+)\s+SupportedMinVersion: \S+\s+"
            r"SupportedMaxVersion: (\S+)\s+FinalizedVersionLevel: (\S+)",
            out,
        )
    }
    # The KIP-848 consumer protocol is served on both.
    assert levels["group.version"] == ("1", "1"), out
    # Share groups: level 1 in force, 2 supported (ShareFetch/ShareAcknowledge v2 served).
    assert levels["share.version"] == ("2", "1"), out


def _offset_for_leader_epoch(
    bootstrap: str, topic: str, asks: list[tuple[int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """OffsetForLeaderEpoch v4 for (partition, current_leader_epoch, leader_epoch) of one
    topic -> (partition, error, leader_epoch, end_offset) each."""
    host, port = bootstrap.rsplit(":", 1)
    parts = b"".join(
        wire.i32(p) + wire.i32(cur) + wire.i32(ep) + wire.uvarint(0) for p, cur, ep in asks
    )
    body = (
        wire.i32(-1)
        + wire.uvarint(2)
        + wire.compact_string(topic)
        + wire.uvarint(len(asks) + 1)
        + parts
        + wire.uvarint(0)
        + wire.uvarint(0)
    )
    with wire.connect(host, int(port), 10) as sock:
        wire.send_all(sock, wire.request(23, 4, 5, body, flexible=True))
        frame = wire.read_frame(sock, 10)
    r = wire._Reader(frame)
    assert r.i32() == 5
    r.skip_tags()
    r.i32()  # throttle
    out = []
    for _ in range(r.uvarint() - 1):
        name = r.take(r.uvarint() - 1).decode()
        assert name == topic
        for _ in range(r.uvarint() - 1):
            err, part, epoch = r.i16(), r.i32(), r.i32()
            end = r.i64()
            r.skip_tags()
            out.append((part, err, epoch, end))
        r.skip_tags()
    return out


def test_offset_for_leader_epoch(server):
    bs = server.bootstrap
    name = ck.create_topic(bs, ck.unique("ofle"), 1)
    p = ck.producer(bs)
    for i in range(7):
        p.produce(name, b"%d" % i, partition=0)
    assert p.flush(30) == 0
    # A new topic's leader is in epoch 0 on Kafka too.
    answers = _offset_for_leader_epoch(
        bs, name, [(0, -1, 0), (0, 0, 0), (0, 3, 0), (0, -1, 9), (5, -1, 0)]
    )
    assert answers == [
        (0, 0, 0, 7),  # the current epoch ends at the log end offset
        (0, 0, 0, 7),
        (0, 75, -1, -1),  # UNKNOWN_LEADER_EPOCH: the client knows a newer epoch than the leader
        (0, 0, -1, -1),  # an epoch after the latest: undefined
        (5, 3, -1, -1),  # UNKNOWN_TOPIC_OR_PARTITION
    ]
