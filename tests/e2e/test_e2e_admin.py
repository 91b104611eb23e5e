"""Admin: CreateTopics (configs, validate_only, errors), DescribeTopics, DeleteTopics,
CreatePartitions, DescribeConfigs (topic and broker, values and sources), Metadata
auto-create, kafka-topics (TopicCommand); message-too-large; authorized operations without an
authorizer; DescribeClientQuotas (none, and Kafka's filter errors)."""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, NewPartitions, NewTopic

from helpers import ck, java, wire
from helpers.data import Rec, check_same

TOPIC_CONFIGS = {
    "retention.ms": "123456789",
    "cleanup.policy": "compact",
    "max.message.bytes": "200000",
    "segment.bytes": "10485760",
}
# topic configs the tests never set, with their Kafka (and kop) defaults
DEFAULTS = {"retention.bytes": "-1", "min.compaction.lag.ms": "0"}


def _error_code(exc: BaseException) -> int:
    assert isinstance(exc, KafkaException), repr(exc)
    return int(exc.args[0].code())


def _topic_names(bootstrap: str) -> set[str]:
    return set(ck.admin(bootstrap).list_topics(timeout=20).topics)


def _wait_gone(bootstrap: str, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while name in _topic_names(bootstrap):
        assert time.monotonic() < deadline, f"{name} still listed {timeout}s after deletion"
        time.sleep(0.2)


def _describe_topic_configs(bootstrap: str, name: str) -> dict:
    res = ConfigResource("topic", name)
    a = ck.admin(bootstrap)  # keep the client alive until the result is in
    return a.describe_configs([res], request_timeout=20)[res].result(timeout=30)


def test_create_with_configs_describe_delete(server):
    bs = server.bootstrap
    a = ck.admin(bs)
    name = ck.unique("adm")
    ck.create_topic(bs, name, 3, TOPIC_CONFIGS)

    desc = a.describe_topics(TopicCollection([name]), request_timeout=20)[name].result(timeout=30)
    assert desc.name == name
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    assert all(p.leader is not None and p.leader.id >= 0 for p in desc.partitions)
    assert desc.topic_id is not None and str(desc.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"

    configs = _describe_topic_configs(bs, name)
    for key, value in TOPIC_CONFIGS.items():
        entry = configs[key]
        assert (entry.value, entry.source) == (value, ConfigSource.DYNAMIC_TOPIC_CONFIG.value), (
            key,
            entry.value,
            entry.source,
        )
    for key, value in DEFAULTS.items():
        entry = configs[key]
        assert (entry.value, entry.source) == (value, ConfigSource.DEFAULT_CONFIG.value), (
            key,
            entry.value,
            entry.source,
        )
        assert entry.is_default

    a.delete_topics([name], operation_timeout=30)[name].result(timeout=60)
    _wait_gone(bs, name)
    # the name is free again, with fresh defaults
    ck.create_topic(bs, name, 2)
    assert _describe_topic_configs(bs, name)["retention.ms"].source == (
        ConfigSource.DEFAULT_CONFIG.value
    )


def test_create_topic_errors_and_validate_only(server):
    bs = server.bootstrap
    a = ck.admin(bs)
    name = ck.unique("adm-v")

    # validate_only: accepted, nothing created
    a.create_topics([NewTopic(name, 2, 1)], validate_only=True)[name].result(timeout=30)
    time.sleep(0.5)
    assert name not in _topic_names(bs)

    ck.create_topic(bs, name, 2)
    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic(name, 2, 1)])[name].result(timeout=30)
    assert _error_code(exc.value) == KafkaError.TOPIC_ALREADY_EXISTS

    bad = ck.unique("adm-bad")
    with pytest.raises(KafkaException) as exc:
        a.create_topics([NewTopic(bad, 1, 1, config={"cleanup.policy": "bogus"})])[bad].result(
            timeout=30
        )
    assert _error_code(exc.value) == KafkaError.INVALID_CONFIG
    assert bad not in _topic_names(bs)

    with pytest.raises(KafkaException) as exc:
        a.delete_topics([bad], operation_timeout=20)[bad].result(timeout=30)
    assert _error_code(exc.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions(server):
    bs = server.bootstrap
    a = ck.admin(bs)
    name = ck.create_topic(bs, ck.unique("adm-p"), 2)
    a.create_partitions([NewPartitions(name, 5)])[name].result(timeout=30)
    ck.wait_for_partitions(bs, name, 5)
    recs = [Rec(p, b"k%d" % p, b"v%d" % p) for p in range(5)]
    ck.produce(bs, name, recs).check_order(recs)
    check_same(recs, ck.consume_all(bs, name, partitions=range(5)))

    with pytest.raises(KafkaException) as exc:
        a.create_partitions([NewPartitions(name, 3)])[name].result(timeout=30)
    assert _error_code(exc.value) == KafkaError.INVALID_PARTITIONS


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_legacy_alter_configs_replaces_all(server):
    """AlterConfigs (the API before IncrementalAlterConfigs; kafkajs' and confluent-kafka's
    alter_configs): the given configs replace all of the topic's overrides."""
    bs = server.bootstrap
    a = ck.admin(bs)
    name = ck.create_topic(
        bs, ck.unique("adm-legacy"), 1, {"retention.ms": "123456789", "cleanup.policy": "compact"}
    )

    def alter(configs: dict[str, str], **kwargs: object) -> None:
        res = ConfigResource("topic", name, set_config=configs)
        a.alter_configs([res], request_timeout=20, **kwargs)[res].result(timeout=30)

    alter({"retention.ms": "1000000"}, validate_only=True)
    assert _describe_topic_configs(bs, name)["retention.ms"].value == "123456789"

    alter({"retention.ms": "1000000", "max.message.bytes": "300000"})
    configs = _describe_topic_configs(bs, name)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "1000000",
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
    )
    assert configs["max.message.bytes"].value == "300000"
    # not given: back to the default
    assert (configs["cleanup.policy"].value, configs["cleanup.policy"].source) == (
        "delete",
        ConfigSource.DEFAULT_CONFIG.value,
    )

    with pytest.raises(KafkaException) as exc:
        alter({"cleanup.policy": "bogus"})
    assert _error_code(exc.value) == KafkaError.INVALID_CONFIG
    assert _describe_topic_configs(bs, name)["retention.ms"].value == "1000000"


def test_broker_configs_describable(server):
    res = ConfigResource("broker", "1")
    a = ck.admin(server.bootstrap)
    configs = a.describe_configs([res])[res].result(timeout=30)
    assert configs["message.max.bytes"].value == "1048588"
    assert configs["num.partitions"].value == "4"
    assert configs["auto.create.topics.enable"].value == "true"


def test_metadata_auto_create_default_partitions(server):
    bs = server.bootstrap
    name = ck.unique("auto")
    p = ck.producer(bs)
    errors = []
    p.produce(name, b"v", key=b"k", on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0
    assert not errors, errors
    ck.wait_for_partitions(bs, name, 4)


def test_message_too_large(server):
    """A batch above the topic's max.message.bytes is refused with MESSAGE_TOO_LARGE; the
    topic keeps working for smaller records."""
    bs = server.bootstrap
    name = ck.create_topic(bs, ck.unique("toolarge"), 1, {"max.message.bytes": "10000"})
    p = ck.producer(bs, linger_ms=0)
    results: list = []
    p.produce(name, b"x" * 20000, partition=0, on_delivery=lambda e, m: results.append(e))
    assert p.flush(60) == 0
    assert len(results) == 1 and results[0] is not None
    assert results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[0]

    # the same over the raw protocol: error code 10 in the partition response
    batch = wire.record_batch([(b"k", b"y" * 20000)])
    r = wire.produce(server.host, server.port, name, 0, batch)
    assert r.error_code == wire.ERR_MESSAGE_TOO_LARGE, r

    recs = [Rec(0, b"k", b"z" * 5000)]
    ck.produce(bs, name, recs).check_order(recs)
    check_same(recs, ck.consume_all(bs, name, partitions=[0]))


@pytest.mark.java
def test_kafka_topics_tool(server, kafka_tools):
    bs = server.bootstrap
    name = ck.unique("ktool")

    def topics(*args: str) -> str:
        return java.run_class(java.TOPIC_COMMAND, ["--bootstrap-server", bs, *args]).stdout

    out = topics(
        "--create", "--topic", name, "--partitions", "3", "--replication-factor", "1",
        "--config", "retention.ms=3600000", "--config", "cleanup.policy=compact",
    )  # fmt: skip
    assert f"Created topic {name}." in out

    desc = topics("--describe", "--topic", name)
    head = desc.splitlines()[0]
    assert re.search(r"PartitionCount:\s*3\b", head), desc
    assert re.search(r"ReplicationFactor:\s*1\b", head), desc
    configs = re.search(r"Configs:\s*(\S*)", head)
    assert configs and set(configs.group(1).split(",")) >= {
        "retention.ms=3600000",
        "cleanup.policy=compact",
    }, desc
    parts = re.findall(r"Partition:\s*(\d+)\s+Leader:\s*(\d+)", desc)
    assert [int(p) for p, _ in parts] == [0, 1, 2], desc
    assert all(int(leader) >= 0 for _, leader in parts)

    topics("--alter", "--topic", name, "--partitions", "5")
    assert re.search(r"PartitionCount:\s*5\b", topics("--describe", "--topic", name))

    assert name in topics("--list").split()
    topics("--delete", "--topic", name)
    deadline = time.monotonic() + 30
    while name in topics("--list").split():
        assert time.monotonic() < deadline, f"{name} still listed after --delete"
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_unknown_topic_with_auto_create_off(target, server_factory):
    """auto-create off: Produce and Metadata for a missing topic answer
    UNKNOWN_TOPIC_OR_PARTITION and create nothing."""
    srv = server_factory(target, auto_create_topics=False)
    name = ck.unique("missing")
    batch = wire.record_batch([(b"k", b"v")])
    r = wire.produce(srv.host, srv.port, name, 0, batch)
    assert r.error_code == wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, r

    md = ck.admin(srv.bootstrap).list_topics(topic=name, timeout=20)
    t = md.topics[name]
    assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, t.error

    p = ck.producer(srv.bootstrap, topic_metadata_propagation_max_ms=2000, message_timeout_ms=15000)
    errs: list = []
    p.produce(name, b"v", on_delivery=lambda e, m: errs.append(e))
    assert p.flush(60) == 0
    assert errs and errs[0] is not None
    assert errs[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errs
    assert name not in _topic_names(srv.bootstrap)

    # explicit creation still works
    ck.create_topic(srv.bootstrap, name, 2)
    recs = [Rec(1, b"k", b"v")]
    ck.produce(srv.bootstrap, name, recs).check_order(recs)


API_DESCRIBE_CLIENT_QUOTAS = 48


def _describe_client_quotas(
    server, components: list[tuple[str, int, str | None]]
) -> tuple[int, str | None, int]:
    """DescribeClientQuotas v0: (error code, message, entry count or -1 for null)."""
    body = wire.i32(len(components))
    for entity_type, match_type, match in components:
        body += wire.string(entity_type) + wire.i8(match_type) + wire.string(match)
    body += wire.i8(0)  # strict = false
    with wire.connect(server.host, server.port) as sock:
        wire.send_all(sock, wire.request(API_DESCRIBE_CLIENT_QUOTAS, 0, 7, body))
        r = wire._Reader(wire.read_frame(sock))
        assert r.i32() == 7
        r.i32()  # throttle
        return r.i16(), r.string(), r.i32()


def test_describe_client_quotas_none_and_filter_errors(server):
    # no quotas set: no entries, whatever the filter
    for components in ([], [("user", 0, "alice")], [("user", 2, None), ("client-id", 1, None)]):
        assert _describe_client_quotas(server, components)[::2] == (0, 0), components
    errors = {
        ("user", 0, None): 42,  # MATCH_TYPE_EXACT without a name
        ("user", 1, "x"): 42,  # MATCH_TYPE_DEFAULT with a name
        ("user", 9, None): 42,  # unknown match type
        ("", 2, None): 42,
        ("group", 2, None): 35,  # not a quota entity type
    }
    for component, code in errors.items():
        err, msg, entries = _describe_client_quotas(server, [component])
        assert (err, entries) == (code, -1) and msg, component
    err, msg, _ = _describe_client_quotas(server, [("ip", 2, None), ("user", 2, None)])
    assert err == 42 and msg and "IP filter component" in msg


def test_authorized_operations_without_an_authorizer_are_all_supported(server):
    admin = ck.admin(server.bootstrap)
    topic = ck.unique("ops")
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)
    topic_ops = {op.name for op in described[topic].result(30).authorized_operations}
    assert topic_ops == {
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
    }
    group = ck.unique("ops-g")
    consumer = Consumer(
        {"bootstrap.servers": server.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    described_group = admin.describe_consumer_groups([group], include_authorized_operations=True)
    group_ops = {op.name for op in described_group[group].result(30).authorized_operations}
    assert group_ops == {"READ", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
    cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert {op.name for op in cluster.authorized_operations} == {
        "CREATE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }
