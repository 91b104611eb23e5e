"""``authorizer = "pulsar"``: Kafka clients allowed and refused by the Pulsar permissions of their
role, granted and revoked with Pulsar's admin API while they are connected; two kop instances on
the namespace decide alike (the permissions live in Pulsar).

Clients log in KoP's way: SASL/PLAIN with password ``token:<jwt>``, the JWT's ``sub`` the role.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers.pulsar_auth import SUPER_USER, AuthPulsar

pytestmark = [pytest.mark.pulsar]

HOST = "127.0.0.1"
TTL_MS = 1000  # hook_cache_ttl_ms: a grant or revocation takes effect within this


class Cluster:
    def __init__(self, pulsar: AuthPulsar) -> None:
        import kop

        self.pulsar = pulsar
        self.namespace = f"authz-{uuid.uuid4().hex[:8]}"
        self.servers = []
        for node in (1, 2):
            cfg = kop.Config(
                listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
                sasl_enabled_mechanisms=["PLAIN"],
                plain_token_auth=True,
                oauthbearer_public_key_files=[str(pulsar.public_pem)],
                authorizer="pulsar",
                hook_cache_ttl_ms=TTL_MS,
                storage=pulsar.url,
                pulsar_admin_url=pulsar.admin_url,
                pulsar_token=pulsar.token(SUPER_USER),
                pulsar_namespace=self.namespace,
                node_id=node,
            )
            server = kop.Server(cfg)
            server.start()
            self.servers.append(server)

    def bootstrap(self, node: int = 1) -> str:
        return str(self.servers[node - 1].bootstrap_servers)

    def conf(self, role: str, node: int = 1, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap(node),
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": role,
            "sasl.password": f"token:{self.pulsar.token(role)}",
            **extra,
        }

    def ns_path(self) -> str:
        return f"/admin/v2/namespaces/public/{self.namespace}"

    def topic_path(self, topic: str) -> str:
        return f"/admin/v2/persistent/public/{self.namespace}/{topic}"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="module")
def cluster(auth_pulsar: AuthPulsar) -> Iterator[Cluster]:
    c = Cluster(auth_pulsar)
    yield c
    c.stop()


def _create_topic(cluster: Cluster) -> str:
    """As the Pulsar super user (kop reads superUserRoles from the broker)."""
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(cluster.conf(SUPER_USER))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    return topic


def _produce_error(producer: Producer, topic: str, timeout: float = 15) -> KafkaError | None:
    """Produce one record; the delivery error (None when it was written)."""
    got: list[KafkaError | None] = []
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: got.append(err))
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        producer.poll(0.1)
    assert got, "no delivery report"
    return got[0]


def _until(what: str, check: Any, timeout: float) -> float:
    """Seconds until ``check()`` held."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"timed out waiting until {what}"
        time.sleep(0.1)
    return time.monotonic() - t0


def test_produce_granted_and_revoked_while_connected(cluster: Cluster) -> None:
    topic = _create_topic(cluster)
    producer = Producer(cluster.conf("alice", **{"message.timeout.ms": 10000}))
    err = _produce_error(producer, topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    cluster.pulsar.admin("POST", cluster.ns_path() + "/permissions/alice", ["produce"])
    # The refusal was cached for TTL_MS; a new producer (librdkafka remembers the refusal).
    time.sleep(TTL_MS / 1000)
    producer = Producer(cluster.conf("alice", **{"message.timeout.ms": 10000}))
    assert _produce_error(producer, topic) is None
    # The other instance, asked directly, decides alike.
    other = Producer(cluster.conf("alice", node=2, **{"message.timeout.ms": 10000}))
    assert _produce_error(other, topic) is None

    # Revoked while the producer is connected: refused within the cache TTL.
    cluster.pulsar.admin("DELETE", cluster.ns_path() + "/permissions/alice")
    t0 = time.monotonic()
    for _ in range(100):
        err = _produce_error(producer, topic)
        if err is not None:
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert took < TTL_MS / 1000 + 3, took
    print(f"produce refused {took * 1000:.0f} ms after the revocation")
    # Consuming was never granted to alice.
    admin = AdminClient(cluster.conf("alice"))
    with pytest.raises(KafkaException) as raised:
        admin.describe_consumer_groups(["g-alice"])["g-alice"].result(timeout=15)
    assert raised.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_consume_granted_on_the_topic_and_revoked(cluster: Cluster) -> None:
    topic = _create_topic(cluster)
    writer = Producer(cluster.conf(SUPER_USER))
    for i in range(3):
        writer.produce(topic, f"v{i}".encode())
    assert writer.flush(15) == 0

    def consumer(group: str) -> Consumer:
        c = Consumer(
            cluster.conf(
                "bob",
                **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
            )
        )
        c.subscribe([topic])
        return c

    def listed() -> bool:
        return topic in AdminClient(cluster.conf("bob")).list_topics(timeout=15).topics

    assert not listed()  # Metadata hides what bob may not look up
    refused = consumer("g-bob-1")
    msg = refused.poll(10)
    assert msg is not None and msg.error() is not None, msg
    assert msg.error().code() in (
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ), msg.error()
    refused.close()

    # Granted on the topic only (not the namespace): the topic and the group are bob's.
    cluster.pulsar.admin("POST", cluster.topic_path(topic) + "/permissions/bob", ["consume"])
    time.sleep(TTL_MS / 1000)
    assert listed()
    c = consumer("g-bob-2")
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    assert got == [b"v0", b"v1", b"v2"]
    c.commit(asynchronous=False)
    # Producing is still refused: consume does not imply produce.
    err = _produce_error(Producer(cluster.conf("bob", **{"message.timeout.ms": 5000})), topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # Revoked while the consumer is in its group: its next commit is refused.
    cluster.pulsar.admin("DELETE", cluster.topic_path(topic) + "/permissions/bob")

    def commit_refused() -> bool:
        try:
            c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
        except KafkaException as err:
            code = err.args[0].code()
            return bool(
                code
                in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)
            )
        return False

    took = _until("the commit is refused", commit_refused, timeout=TTL_MS / 1000 + 5)
    print(f"commit refused {took * 1000:.0f} ms after the revocation")
    c.close()
    # What a cache miss costs: one crossing into Python, two admin GETs.
    calls = total = 0.0
    for line in cluster.servers[0].metrics().splitlines():
        if line.startswith("kop_hook_duration_seconds_") and 'hook="authorizer"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("kop_hook_duration_seconds_count"):
                calls = value
            elif line.startswith("kop_hook_duration_seconds_sum"):
                total = value
    if calls:
        print(
            f"authorizer: {calls:.0f} Pulsar permission reads, mean {total / calls * 1000:.1f} ms"
        )
