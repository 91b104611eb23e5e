"""Group configs (resource type 32), dynamic broker configs, group size limits and Kafka's
internal topics, with the Kafka 4.4 tools (`kafka-configs`), confluent-kafka, kafka-python and raw
KIP-848 heartbeats: kop answers as Apache Kafka 4.4 does (the `kafka` target is the reference)."""

from __future__ import annotations

import re
import struct
import threading
import time

import kafka
import kafka.admin as kadmin
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType
from kafka.errors import GroupMaxSizeReachedError

from helpers import ck, java, wire

API_CONSUMER_GROUP_HEARTBEAT = 68
GROUP_MAX_SIZE_REACHED = 81
# Small group limits to reach them; no first-rebalance delay, so classic groups form at once.
SERVER_OPTIONS = {
    "group_max_size": 2,
    "group_consumer_max_size": 2,
    "group_initial_rebalance_delay_ms": 0,
}


def _configs(bootstrap: str, *args: str, check: bool = True):
    return java.run_class(
        java.CONFIG_COMMAND, ["--bootstrap-server", bootstrap, *args], check=check
    )


def _node_id(bootstrap: str) -> int:
    return next(iter(ck.admin(bootstrap).list_topics(timeout=20).brokers))


def _joined_heartbeat(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """A raw joining heartbeat, retried while the coordinator is loading or moving."""
    deadline = time.monotonic() + 30
    while True:
        error, interval = _heartbeat(bootstrap, group, topic)
        if error not in (14, 15, 16) or time.monotonic() > deadline:
            return error, interval
        time.sleep(0.5)


def _heartbeat_interval(bootstrap: str, group: str, topic: str) -> int:
    """Joins `group` with a raw ConsumerGroupHeartbeat v0; the interval the coordinator gives.
    (A coordinator lookup first: Kafka creates `__consumer_offsets` then.)"""
    c = ck.consumer(bootstrap, **{"group.id": group, "group.protocol": "consumer"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.5)
    finally:
        c.close()
    error, interval = _joined_heartbeat(bootstrap, group, topic)
    assert error == 0, error
    return interval


def _heartbeat(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(error code, heartbeat interval) of one joining ConsumerGroupHeartbeat v0."""
    body = (
        wire.compact_string(group)
        + wire.compact_string("")
        + wire.i32(0)
        + wire.compact_string(None)
        + wire.compact_string(None)
        + wire.i32(30000)
        + wire.uvarint(2)
        + wire.compact_string(topic)
        + wire.compact_string(None)
        + wire.uvarint(1)
        + wire.uvarint(0)
    )
    host, port = bootstrap.rsplit(":", 1)
    with wire.connect(host, int(port)) as sock:
        sock.sendall(wire.request(API_CONSUMER_GROUP_HEARTBEAT, 0, 7, body, flexible=True))
        frame = wire.read_frame(sock)
    # correlation id, header tags, throttle, error code, error message, member id, epoch,
    # interval.
    at = 4 + 1 + 4
    (error,) = struct.unpack_from(">h", frame, at)
    at += 2
    for _ in range(2):
        n = frame[at] - 1
        at += 1 + max(n, 0)
    (_epoch, interval) = struct.unpack_from(">ii", frame, at)
    return error, interval


def test_group_configs_with_kafka_configs(server, kafka_tools):
    bs = server.bootstrap
    admin = ck.admin(bs)
    group = ck.unique("gcfg")
    topic = ck.create_topic(bs, ck.unique("gcfg"), 1)
    entity = ["--entity-type", "groups", "--entity-name", group]
    listed = _configs(bs, "--describe", *entity, "--all").stdout
    names = re.findall(r"^  (\S+?)=", listed, re.M)
    assert len(names) == 21, listed
    assert (
        "consumer.session.timeout.ms=45000 sensitive=false synonyms="
        "{DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}"
    ) in listed

    out = _configs(
        bs,
        "--alter",
        *entity,
        "--add-config",
        "consumer.heartbeat.interval.ms=6000,consumer.session.timeout.ms=50000,share.isolation.level=read_committed",
    ).stdout
    assert f"Completed updating config for group {group}." in out
    described = _configs(bs, "--describe", *entity).stdout
    assert (
        "consumer.session.timeout.ms=50000 sensitive=false synonyms={DYNAMIC_GROUP_CONFIG:"
        "consumer.session.timeout.ms=50000, DEFAULT_CONFIG:group.consumer.session.timeout.ms=45000}"
    ) in described, described
    assert "share.isolation.level=read_committed" in described

    for bad, message in [
        (
            "consumer.session.timeout.ms=5000",
            "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.",
        ),
        ("share.delivery.count.limit=1", "Value must be at least 2"),
        ("foo.bar=1", "Unknown group config name: foo.bar"),
    ]:
        refused = _configs(bs, "--alter", *entity, "--add-config", bad, check=False)
        assert refused.returncode != 0
        assert "InvalidConfigurationException" in refused.stdout + refused.stderr
        assert message in refused.stdout + refused.stderr

    # Applied: a KIP-848 member is given the group's heartbeat interval.
    assert _heartbeat_interval(bs, group, topic) == 6000

    # confluent-kafka's DescribeConfigs of the group, and the config deleted again.
    res = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)])
    entries = next(iter(res.values())).result(20)
    assert entries["consumer.heartbeat.interval.ms"].value == "6000"
    _configs(bs, "--alter", *entity, "--delete-config", "consumer.heartbeat.interval.ms")
    assert _heartbeat_interval(bs, ck.unique("gcfg-other"), topic) == 5000


def test_dynamic_broker_configs(server, kafka_tools):
    bs = server.bootstrap
    admin = ck.admin(bs)
    node = str(_node_id(bs))
    topic = ck.create_topic(bs, ck.unique("dyn"), 1)
    default = ["--entity-type", "brokers", "--entity-default"]
    mine = ["--entity-type", "brokers", "--entity-name", node]
    try:
        out = _configs(bs, "--alter", *default, "--add-config", "log.retention.ms=7200000").stdout
        assert "Completed updating default config for brokers in the cluster." in out
        out = _configs(bs, "--alter", *mine, "--add-config", "message.max.bytes=2000000").stdout
        assert f"Completed updating config for broker {node}." in out

        described = _configs(bs, "--describe", *mine).stdout
        assert (
            "message.max.bytes=2000000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"
            "message.max.bytes=2000000, DEFAULT_CONFIG:message.max.bytes=1048588}"
        ) in described, described
        defaults = _configs(bs, "--describe", *default).stdout
        assert "log.retention.ms=7200000" in defaults

        # The topic takes the new defaults.
        res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
        entries = next(iter(res.values())).result(20)
        assert entries["retention.ms"].value == "7200000"
        assert entries["max.message.bytes"].value == "2000000"

        refused = _configs(bs, "--alter", *default, "--add-config", "broker.id=5", check=False)
        assert refused.returncode != 0
        assert (
            "Cannot update these configs dynamically: [broker.id]"
            in refused.stdout + refused.stderr
        )
        refused = _configs(
            bs, "--alter", *default, "--add-config", "log.retention.ms=abc", check=False
        )
        assert (
            "Invalid value abc for configuration log.retention.ms: Not a number of type LONG"
            in (refused.stdout + refused.stderr)
        )

        listed = _configs(bs, "--describe", *mine, "--all").stdout
        for name in [
            "log.retention.ms",
            "message.max.bytes",
            "num.partitions",
            "offsets.topic.num.partitions",
        ]:
            assert f"  {name}=" in listed, name
    finally:
        _configs(bs, "--alter", *default, "--delete-config", "log.retention.ms")
        _configs(bs, "--alter", *mine, "--delete-config", "message.max.bytes")
    res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    assert next(iter(res.values())).result(20)["retention.ms"].value == "604800000"


def test_consumer_offsets_is_an_internal_topic(server):
    bs = server.bootstrap
    admin = ck.admin(bs)
    topic = ck.create_topic(bs, ck.unique("internal"), 1)
    p = ck.producer(bs)
    p.produce(topic, b"v", partition=0)
    assert p.flush(30) == 0
    c = ck.consumer(bs, **{"group.id": ck.unique("internal-g")})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert c.poll(15) is not None
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        c.close()
    # Asked by name (as a client does after FindCoordinator), also with auto-creation.
    md = admin.list_topics(topic="__consumer_offsets", timeout=20)
    t = md.topics["__consumer_offsets"]
    assert t.error is None
    assert len(t.partitions) == 50
    all_topics = admin.list_topics(timeout=20).topics
    assert "__consumer_offsets" in all_topics
    # Never created again as a data topic.
    created = admin.create_topics([NewTopic("__consumer_offsets", 4)])
    err = next(iter(created.values())).exception(20)
    assert err is not None and err.args[0].name() == "TOPIC_ALREADY_EXISTS", err
    again = admin.list_topics(topic="__consumer_offsets", timeout=20)
    assert len(again.topics["__consumer_offsets"].partitions) == 50


def _kp_consumer(bootstrap: str, group: str, topic: str) -> kafka.KafkaConsumer:
    return kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=1000,
    )


def test_group_size_limits(server):
    """group.max.size (classic JoinGroup, seen by kafka-python) and group.consumer.max.size
    (KIP-848 heartbeats): the group's own members stay, a newcomer gets GROUP_MAX_SIZE_REACHED."""
    bs = server.bootstrap
    topic = ck.create_topic(bs, ck.unique("gmax"), 2)
    group = ck.unique("gmax-classic")
    members = [_kp_consumer(bs, group, topic) for _ in range(2)]
    try:
        # Both poll at once so that each rejoins the rebalance the other starts.
        done = threading.Event()

        def poll(c: kafka.KafkaConsumer) -> None:
            while not done.is_set():
                c.poll(200)

        threads = [threading.Thread(target=poll, args=(c,), daemon=True) for c in members]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 45
        while sum(len(c.assignment()) for c in members) != 2 or any(
            not c.assignment() for c in members
        ):
            assert time.monotonic() < deadline, [c.assignment() for c in members]
            time.sleep(0.2)
        third = _kp_consumer(bs, group, topic)
        try:
            with pytest.raises(GroupMaxSizeReachedError):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    third.poll(500)
            assert not third.assignment()
        finally:
            third.close()
        # The two members were not disturbed: they keep one partition each.
        assert sorted(len(c.assignment()) for c in members) == [1, 1]
        done.set()
        for t in threads:
            t.join(10)
    finally:
        done.set()
        for c in members:
            c.close()

    group = ck.unique("gmax-consumer")
    assert _joined_heartbeat(bs, group, topic)[0] == 0
    assert _heartbeat(bs, group, topic)[0] == 0
    assert _heartbeat(bs, group, topic)[0] == GROUP_MAX_SIZE_REACHED


def test_configs_with_kafka_python(server):
    """The same config resources through kafka-python's admin client: group configs with
    IncrementalAlterConfigs and legacy AlterConfigs, the broker's static limits, and
    `__consumer_offsets` described as the internal topic it is."""
    bs = server.bootstrap
    admin = kadmin.KafkaAdminClient(bootstrap_servers=bs)
    try:
        group = ck.unique("kp-gcfg")
        res = kadmin.ConfigResource(kadmin.ConfigResourceType.GROUP, group)

        def group_configs() -> dict[str, str]:
            described = admin.describe_configs([res], config_filter="all")
            return {k: v["value"] for k, v in described["group"][group].items()}

        admin.alter_configs(
            [
                kadmin.ConfigResource(
                    kadmin.ConfigResourceType.GROUP,
                    group,
                    {"consumer.heartbeat.interval.ms": "7000"},
                )
            ]
        )
        assert group_configs()["consumer.heartbeat.interval.ms"] == "7000"
        # Legacy AlterConfigs replaces the whole set; kafka-python sends the other modified
        # keys along (read first), so both are kept.
        admin.alter_configs(
            [
                kadmin.ConfigResource(
                    kadmin.ConfigResourceType.GROUP,
                    group,
                    {"consumer.session.timeout.ms": "50000"},
                )
            ],
            incremental=False,
        )
        configs = group_configs()
        assert configs["consumer.session.timeout.ms"] == "50000"
        assert configs["consumer.heartbeat.interval.ms"] == "7000"

        node = str(next(iter(admin.describe_cluster()["brokers"]))["broker_id"])
        broker = admin.describe_configs(
            [kadmin.ConfigResource(kadmin.ConfigResourceType.BROKER, node)],
            config_filter="all",
        )["broker"][node]
        assert broker["group.max.size"]["value"] == "2"
        assert broker["group.consumer.max.size"]["value"] == "2"

        # A committed offset makes the coordinator (and so `__consumer_offsets`) exist.
        c = _kp_consumer(bs, ck.unique("kp-internal"), ck.create_topic(bs, ck.unique("kpi"), 1))
        try:
            c.poll(1000)
            c.commit({tp: kafka.OffsetAndMetadata(0, "", -1) for tp in c.assignment()} or None)
        finally:
            c.close()
        (internal,) = admin.describe_topics(["__consumer_offsets"])
        assert internal["error_code"] == 0, internal
        assert internal["is_internal"] is True
        assert len(internal["partitions"]) == 50
    finally:
        admin.close()
