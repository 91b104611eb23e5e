"""The ``tenants`` option (docs/tenants.md): two Pulsar tenants served by two kop instances,
each login landing in its own tenant's namespace. Both tenants have a topic ``orders``; topics,
groups, offsets, configs, SCRAM credentials, transactions and schema registry subjects are each
tenant's own, and a login that names no served tenant fails."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from helpers.instances import wait_for
from helpers.pulsar import PulsarService
from helpers.quotas import ThrottleStats

pytestmark = [pytest.mark.pulsar]

HOST = "127.0.0.1"
PARTITIONS = 4


class Cluster:
    """Two kop instances (node ids 1, 2) serving tenants ``a`` and ``b`` (namespace ``ns``)."""

    def __init__(self, service: PulsarService) -> None:
        import kop

        suffix = uuid.uuid4().hex[:8]
        self.a, self.b, self.ns = f"acme-{suffix}", f"globex-{suffix}", f"kop-tenants-{suffix}"
        clusters = service.admin("GET", "/admin/v2/clusters")
        for tenant in (self.a, self.b):
            service.admin("PUT", f"/admin/v2/tenants/{tenant}", {"allowedClusters": clusters})
        self.servers: list[Any] = []
        for node in (1, 2):
            cfg = kop.Config(
                listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
                sasl_enabled_mechanisms=["PLAIN", "SCRAM-SHA-256"],
                sasl_users=["kop:kop-pw", f"{self.a}:a-pw", f"{self.b}:b-pw", "nobody:n-pw"],
                inter_instance_sasl_user="kop",
                inter_instance_sasl_password="kop-pw",
                storage=service.url,
                pulsar_admin_url=service.admin_url,
                pulsar_namespace=self.ns,
                tenants=[f"{self.a}/{self.ns}", f"{self.b}/{self.ns}"],
                tenant_roles=[f"alice={self.a}/{self.ns}"],
                schema_registry_listener=f"{HOST}:0",
                node_id=node,
                num_partitions=PARTITIONS,
            )
            server = kop.Server(cfg)
            server.start()
            self.servers.append(server)
        self.bootstrap = ",".join(s.bootstrap_servers for s in self.servers)

    def login(self, user: str, password: str, mechanism: str = "PLAIN") -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        }

    def tenant(self, which: str) -> dict[str, Any]:
        user = self.a if which == "a" else self.b
        return self.login(user, f"{which}-pw")

    def stop(self) -> None:
        for s in self.servers:
            s.stop(10)


@pytest.fixture(scope="module")
def cluster(pulsar_service: PulsarService) -> Iterator[Cluster]:
    c = Cluster(pulsar_service)
    yield c
    c.stop()


def _produce(conf: dict[str, Any], topic: str, values: list[str], **extra: Any) -> None:
    p = Producer({**conf, **extra})
    for i, v in enumerate(values):
        p.produce(topic, v.encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0


def _consume(conf: dict[str, Any], topic: str, group: str, n: int, **extra: Any) -> list[str]:
    c = Consumer(
        {**conf, "group.id": group, "auto.offset.reset": "earliest", **extra},
    )
    c.subscribe([topic])
    got: list[str] = []
    try:
        wait_for(
            f"{n} records of {topic}",
            lambda: (
                (m := c.poll(1)) is not None
                and (m.error() or got.append(m.value().decode()) or len(got) >= n)
            ),
        )
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_same_topic_name_in_two_tenants_is_two_topics(cluster: Cluster) -> None:
    """Each tenant creates ``orders``, produces its own records and reads only those; Metadata,
    ListGroups, DescribeConfigs and committed offsets are the tenant's own."""
    for which in ("a", "b"):
        admin = AdminClient(cluster.tenant(which))
        admin.create_topics([NewTopic("orders", PARTITIONS)])["orders"].result(30)
    _produce(cluster.tenant("a"), "orders", [f"a-{i}" for i in range(8)])
    _produce(cluster.tenant("b"), "orders", [f"b-{i}" for i in range(3)])
    assert sorted(_consume(cluster.tenant("a"), "orders", "billing", 8)) == sorted(
        f"a-{i}" for i in range(8)
    )
    assert sorted(_consume(cluster.tenant("b"), "orders", "shipping", 3)) == sorted(
        f"b-{i}" for i in range(3)
    )

    admin_a, admin_b = AdminClient(cluster.tenant("a")), AdminClient(cluster.tenant("b"))
    _produce(cluster.tenant("a"), "a-only", ["x"])
    # Created on the instance the producer asked; the other learns it by its cluster sync.
    wait_for("a-only listed", lambda: "a-only" in admin_a.list_topics(timeout=10).topics, 30)
    assert "a-only" not in admin_b.list_topics(timeout=10).topics

    def groups(admin: AdminClient) -> set[str]:
        listed = admin.list_consumer_groups().result(10)
        return {g.group_id for g in listed.valid}

    assert "billing" in groups(admin_a) and "billing" not in groups(admin_b)
    assert "shipping" in groups(admin_b) and "shipping" not in groups(admin_a)

    # The offsets tenant A's group committed are not tenant B's: B's group of that name is new.
    tps = [TopicPartition("orders", q) for q in range(PARTITIONS)]

    def committed(which: str) -> list[int]:
        c = Consumer({**cluster.tenant(which), "group.id": "billing"})
        try:
            return [tp.offset for tp in c.committed(tps, 10)]
        finally:
            c.close()

    assert sum(committed("a")) == 8
    assert all(o < 0 for o in committed("b"))

    resource = ConfigResource(
        ResourceType.TOPIC,
        "orders",
        incremental_configs=[
            ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin_a.incremental_alter_configs([resource])[resource].result(10)

    def retention(admin: AdminClient) -> str:
        r = ConfigResource(ResourceType.TOPIC, "orders")
        return str(admin.describe_configs([r])[r].result(10)["retention.ms"].value)

    assert retention(admin_a) == "123456"
    assert retention(admin_b) != "123456"

    # Each tenant's series carry its label (docs/metrics.md).
    scrape = cluster.servers[0].metrics()
    for tenant in (cluster.a, cluster.b):
        assert f'kop_topics{{tenant="{tenant}/{cluster.ns}"}}' in scrape
        assert (
            f'kop_topic_bytes_in_total{{tenant="{tenant}/{cluster.ns}",topic="orders"}}' in scrape
        )


def test_a_login_naming_no_served_tenant_fails(cluster: Cluster) -> None:
    """``nobody`` is a valid user, but ``nobody/NS`` is not served: authentication fails with
    the reason."""
    errors: list[KafkaError] = []
    p = Producer({**cluster.login("nobody", "n-pw"), "error_cb": errors.append})
    wait_for("an authentication error", lambda: p.poll(0.2) is not None and errors, timeout=20)
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert "is not served here" in errors[0].str(), errors


def test_scram_credentials_and_roles_are_per_tenant(cluster: Cluster) -> None:
    """A SCRAM user created in tenant A is mapped there by ``tenant_roles`` and sees A's
    topics; tenant B does not list the credential."""
    admin_a, admin_b = AdminClient(cluster.tenant("a")), AdminClient(cluster.tenant("b"))
    upsert = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-pw"
    )
    admin_a.alter_user_scram_credentials([upsert])["alice"].result(10)
    assert "alice" in admin_a.describe_user_scram_credentials().result(10)
    assert "alice" not in admin_b.describe_user_scram_credentials().result(10)
    _produce(cluster.tenant("a"), "alice-sees", ["hello"])
    alice = AdminClient(cluster.login("alice", "alice-pw", "SCRAM-SHA-256"))
    # Once the credential and the topic reached both instances (their cluster sync).
    wait_for("alice sees tenant A's topics", lambda: "alice-sees" in alice.list_topics().topics)


def test_schema_registry_subjects_are_per_tenant(cluster: Cluster) -> None:
    """Both tenants register subject ``orders-value`` with schemas that could not share a
    subject (incompatible under the default BACKWARD), through Confluent's
    ``SchemaRegistryClient`` with each tenant's login as basic credentials; each sees only its
    own subjects and schemas, on both instances. A SCRAM user mapped by ``tenant_roles`` lands
    in its tenant; a login naming no served tenant is refused."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    def client(node: int, user: str, password: str) -> SchemaRegistryClient:
        url = cluster.servers[node].schema_registry_url
        return SchemaRegistryClient({"url": url, "basic.auth.user.info": f"{user}:{password}"})

    def avro(name: str, fields: dict[str, str]) -> Schema:
        doc = {
            "type": "record",
            "name": name,
            "fields": [{"name": k, "type": t} for k, t in fields.items()],
        }
        return Schema(json.dumps(doc), "AVRO")

    schema_a = avro("Order", {"id": "long"})
    schema_b = avro("Order", {"sku": "string", "qty": "int"})
    id_a = client(0, cluster.a, "a-pw").register_schema("orders-value", schema_a)
    id_b = client(1, cluster.b, "b-pw").register_schema("orders-value", schema_b)
    client(0, cluster.a, "a-pw").register_schema("payments-value", avro("Payment", {"n": "int"}))

    for which, user, password, schema, schema_id in (
        ("a", cluster.a, "a-pw", schema_a, id_a),
        ("b", cluster.b, "b-pw", schema_b, id_b),
    ):
        for node in (0, 1):
            # A fresh client per read: nothing comes from a client's cache.
            latest = client(node, user, password).get_latest_version("orders-value")
            assert latest.version == 1, (which, node, latest)
            assert latest.schema_id == schema_id, (which, node, latest)
            assert json.loads(latest.schema.schema_str) == json.loads(schema.schema_str)
            by_id = client(node, user, password).get_schema(schema_id)
            assert json.loads(by_id.schema_str) == json.loads(schema.schema_str)
            assert client(node, user, password).get_versions("orders-value") == [1]
    assert sorted(client(1, cluster.a, "a-pw").get_subjects()) == ["orders-value", "payments-value"]
    assert client(0, cluster.b, "b-pw").get_subjects() == ["orders-value"]
    with pytest.raises(SchemaRegistryError) as missing:
        client(0, cluster.b, "b-pw").get_latest_version("payments-value")
    assert missing.value.error_code == 40401, missing.value

    # A SCRAM user of tenant A (tenant_roles alice=A) reads A's registry.
    upsert = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-pw"
    )
    admin_a = AdminClient(cluster.tenant("a"))
    admin_a.alter_user_scram_credentials([upsert])["alice"].result(10)
    for node in (0, 1):
        # Once the credential reached this instance (cluster sync).
        got = wait_for(
            f"alice reads tenant A's subjects on instance {node + 1}",
            lambda n=node: client(n, "alice", "alice-pw").get_subjects(),
            timeout=30,
        )
        assert sorted(got) == ["orders-value", "payments-value"]

    # A valid user whose name is no served tenant, and no role: 401 with the reason.
    with pytest.raises(SchemaRegistryError) as refused:
        client(0, "nobody", "n-pw").get_subjects()
    assert refused.value.http_status_code == 401, refused.value
    assert "is not served here" in refused.value.error_message, refused.value


def test_a_transaction_in_a_tenant_spans_both_instances(cluster: Cluster) -> None:
    """Markers on partitions led by the other instance reach this tenant's partitions (the
    instances call each other with the tenant in the client id)."""
    conf = cluster.tenant("b")
    admin = AdminClient(conf)
    admin.create_topics([NewTopic("txn-orders", PARTITIONS)])["txn-orders"].result(30)

    def leaders() -> set[int]:
        md = admin.list_topics("txn-orders", timeout=10).topics["txn-orders"]
        return {p.leader for p in md.partitions.values()}

    # Leaders follow the name; this one's partitions land on both instances.
    assert wait_for("both instances lead partitions of txn-orders", lambda: leaders() == {1, 2})
    p = Producer({**conf, "transactional.id": f"tx-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(30)
    for commit in (True, False, True):
        p.begin_transaction()
        for q in range(PARTITIONS):
            p.produce("txn-orders", f"{commit}-{q}".encode(), partition=q)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    got = _consume(
        conf, "txn-orders", "txn-reader", 2 * PARTITIONS, **{"isolation.level": "read_committed"}
    )
    assert sorted(got) == sorted([f"True-{q}" for q in range(PARTITIONS)] * 2)


@pytest.mark.java
@pytest.mark.usefixtures("kafka_tools")
def test_a_quota_default_is_per_tenant(cluster: Cluster, tmp_path: Path) -> None:
    """A user-quota default set in tenant A is A's (issue #21's per-tenant defaults): tenant B
    describes none."""
    from helpers import java

    def configs(which: str, *args: str) -> str:
        props = tmp_path / f"{which}.properties"
        user, password = (cluster.a, "a-pw") if which == "a" else (cluster.b, "b-pw")
        props.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{password}";\n'
        )
        command = ["--bootstrap-server", cluster.bootstrap, "--command-config", str(props)]
        return str(java.run_class(java.CONFIG_COMMAND, [*command, *args]).stdout)

    configs(
        "a",
        *("--alter", "--add-config", "producer_byte_rate=1024"),
        *("--entity-type", "users", "--entity-default"),
    )
    assert "producer_byte_rate=1024" in configs("a", "--describe", "--entity-type", "users")
    assert "producer_byte_rate" not in configs("b", "--describe", "--entity-type", "users")

    # ... and enforced for A's producers only: 32 KiB at once is far over 1 KiB/s, so A's
    # produce responses carry a throttle time (KIP-219: answered at once, then muted); B's
    # identical producer is not throttled.
    def max_throttle(which: str) -> int:
        stats = ThrottleStats()
        p = Producer(
            {**cluster.tenant(which), "linger.ms": 50, "statistics.interval.ms": 100}
            | {"stats_cb": stats}
        )
        for _ in range(32):
            p.produce("quota-probe", b"x" * 1024, partition=0)
        assert p.flush(30) == 0
        p.poll(0.3)  # statistics intervals after the answer
        return stats.max_throttle

    wait_for("tenant A's producer throttled", lambda: max_throttle("a") > 0, timeout=30)
    assert max_throttle("b") == 0
