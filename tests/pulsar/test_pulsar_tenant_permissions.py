"""``tenants`` with ``authorizer = "pulsar"`` (docs/tenants.md, "Pulsar permissions per tenant"),
as KoP users run it: a token's role logs in to a tenant (SASL/PLAIN, user name = tenant,
password ``token:<jwt>``) and Pulsar's grants on that tenant's namespace decide. kop serves
two tenants of a Pulsar standalone with token authentication and authorization
on; roles granted in one tenant are refused in the other, and grants and revocations reach
connected clients within ``hook_cache_ttl_ms``.

One kop instance: two cost ~14 s more to start on the 2-core test box, and that every instance
decides alike is tested without tenants (test_pulsar_authorizer.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers.instances import wait_for
from helpers.pulsar_auth import SUPER_USER, AuthPulsar

pytestmark = [pytest.mark.pulsar]

HOST = "127.0.0.1"
TTL_MS = 1000  # hook_cache_ttl_ms: a grant or revocation takes effect within this
TOPIC = "orders"  # each tenant has its own


class Cluster:
    """kop serving tenants ``a`` and ``b`` (both on namespace ``ns``); ``carol`` is an admin
    of tenant ``b``."""

    def __init__(self, pulsar: AuthPulsar) -> None:
        import kop

        self.pulsar = pulsar
        suffix = uuid.uuid4().hex[:8]
        self.a, self.b, self.ns = f"acme-{suffix}", f"globex-{suffix}", f"kafka-{suffix}"
        clusters = pulsar.admin("GET", "/admin/v2/clusters")
        for tenant, admins in ((self.a, []), (self.b, ["carol"])):
            body = {"allowedClusters": clusters, "adminRoles": admins}
            pulsar.admin("PUT", f"/admin/v2/tenants/{tenant}", body)
        t0 = time.monotonic()
        self.server = kop.Server(
            kop.Config(
                listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
                sasl_enabled_mechanisms=["PLAIN"],
                plain_token_auth=True,
                oauthbearer_public_key_files=[str(pulsar.public_pem)],
                authorizer="pulsar",
                hook_cache_ttl_ms=TTL_MS,
                storage=pulsar.url,
                pulsar_admin_url=pulsar.admin_url,
                pulsar_token=pulsar.token(SUPER_USER),
                pulsar_tenant=self.a,  # the instance's own namespace is tenant a's
                pulsar_namespace=self.ns,
                tenants=[f"{self.a}/{self.ns}", f"{self.b}/{self.ns}"],
            )
        )
        self.server.start()
        print(f"kop with two tenants started in {time.monotonic() - t0:.1f} s")
        for which in ("a", "b"):
            admin = AdminClient(self.conf(SUPER_USER, which))
            admin.create_topics([NewTopic(TOPIC, 1)])[TOPIC].result(30)

    def tenant(self, which: str) -> str:
        return self.a if which == "a" else self.b

    def conf(self, role: str, which: str, **extra: Any) -> dict[str, Any]:
        """``role``'s token, logged in to tenant ``which`` (KoP's way: the user name is the
        tenant)."""
        return {
            "bootstrap.servers": self.server.bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": self.tenant(which),
            "sasl.password": f"token:{self.pulsar.token(role)}",
            **extra,
        }

    def grant(self, which: str, role: str, actions: list[str]) -> None:
        path = f"/admin/v2/namespaces/{self.tenant(which)}/{self.ns}/permissions/{role}"
        self.pulsar.admin("POST", path, actions)

    def revoke(self, which: str, role: str) -> None:
        path = f"/admin/v2/namespaces/{self.tenant(which)}/{self.ns}/permissions/{role}"
        self.pulsar.admin("DELETE", path)

    def stop(self) -> None:
        self.server.stop(10)


@pytest.fixture(scope="module")
def cluster(auth_pulsar: AuthPulsar) -> Iterator[Cluster]:
    c = Cluster(auth_pulsar)
    yield c
    c.stop()


def _produce_error(producer: Producer, topic: str = TOPIC, timeout: float = 15) -> Any:
    """Produce one record; the delivery error (None when it was written)."""
    got: list[KafkaError | None] = []
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: got.append(err))
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        producer.poll(0.1)
    assert got, "no delivery report"
    return got[0]


def _code(call: Any) -> Any:
    """The Kafka error code a client call raised (None when it succeeded)."""
    try:
        call()
    except KafkaException as err:
        return err.args[0].code()
    return None


def _listed(conf: dict[str, Any]) -> bool:
    return TOPIC in AdminClient(conf).list_topics(timeout=15).topics


def test_grants_in_one_tenant_allow_nothing_in_the_other(cluster: Cluster) -> None:
    """alice may produce and consume in tenant a only: in b (same topic and group names) she is
    refused as Kafka refuses; carol, an admin of tenant b, is nobody in a. Then alice's consume
    is revoked while her consumer is in its group: its next commit is refused."""
    cluster.grant("a", "alice", ["produce", "consume"])
    options = {"message.timeout.ms": 10000}
    assert _produce_error(Producer(cluster.conf("alice", "a", **options))) is None
    consumer = Consumer(
        cluster.conf("alice", "a", **{"group.id": "billing", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([TOPIC])
    msg = wait_for("alice reads tenant a's record", lambda: consumer.poll(0.5), timeout=30)
    assert msg.error() is None and msg.value() == b"v", msg.error()
    consumer.commit(asynchronous=False)

    # Tenant b: refused; its topic is not even listed to her.
    err = _produce_error(Producer(cluster.conf("alice", "b", **options)))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert _listed(cluster.conf("alice", "a"))
    assert not _listed(cluster.conf("alice", "b"))
    admin_b = AdminClient(cluster.conf("alice", "b"))
    described = admin_b.describe_consumer_groups(["billing"])["billing"]
    assert _code(lambda: described.result(15)) == KafkaError.GROUP_AUTHORIZATION_FAILED

    # Tenant admins: carol creates topics in b, not in a.
    def create(which: str) -> Any:
        name = f"carol-{uuid.uuid4().hex[:6]}"
        admin = AdminClient(cluster.conf("carol", which))
        future = admin.create_topics([NewTopic(name, 1)])[name]
        return _code(lambda: future.result(30))

    assert create("b") is None
    assert create("a") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Revoked in a while alice's consumer is connected: its next commit is refused.
    commit = [TopicPartition(TOPIC, 0, 1)]
    cluster.grant("a", "alice", ["produce"])
    t0 = time.monotonic()

    def commit_refused() -> bool:
        return _code(lambda: consumer.commit(offsets=commit, asynchronous=False)) in (
            KafkaError.GROUP_AUTHORIZATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
        )

    wait_for("alice's commit is refused", commit_refused, timeout=TTL_MS / 1000 + 5)
    took = time.monotonic() - t0
    assert took < TTL_MS / 1000 + 3, took
    print(f"commit refused {took * 1000:.0f} ms after the revocation")
    consumer.close()


def test_grant_and_revoke_in_a_tenant_reach_connected_producers(cluster: Cluster) -> None:
    """bob, with no grant anywhere, is refused in tenant b, then allowed within the TTL of the
    grant on b's namespace (his connected producer refreshes metadata often: librdkafka waits
    for a refused topic's next metadata), then refused within the TTL of its revocation. The
    grant in b allows him nothing in a."""
    options = {"message.timeout.ms": 5000}
    refreshing = Producer(
        cluster.conf("bob", "b", **options, **{"topic.metadata.refresh.interval.ms": 500})
    )
    err = _produce_error(refreshing)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    cluster.grant("b", "bob", ["produce"])
    t0 = time.monotonic()
    wait_for(
        "bob's producer writes", lambda: _produce_error(refreshing) is None, TTL_MS / 1000 + 10
    )
    print(f"produce allowed {(time.monotonic() - t0) * 1000:.0f} ms after the grant")
    err = _produce_error(Producer(cluster.conf("bob", "a", **options)))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    # Revoked while a producer is connected (librdkafka's default metadata refresh: its next
    # Produce is what kop refuses).
    steady = Producer(cluster.conf("bob", "b", **options))
    assert _produce_error(steady) is None
    cluster.revoke("b", "bob")
    t0 = time.monotonic()
    for _ in range(100):
        err = _produce_error(steady)
        if err is not None:
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert took < TTL_MS / 1000 + 3, took
    print(f"produce refused {took * 1000:.0f} ms after the revocation")
    # Tenant b decides with its own cache: its hook series carry its label (tenant a is the
    # instance's own namespace, unlabelled); Server.authorizer_hook_calls sums both.
    prefix = f'kop_hook_calls_total{{tenant="{cluster.b}/{cluster.ns}",hook="authorizer"}} '
    lines = [x for x in cluster.server.metrics().splitlines() if x.startswith(prefix)]
    assert len(lines) == 1 and float(lines[0][len(prefix) :]) > 0, lines
    total = cluster.server.authorizer_hook_calls
    assert total > float(lines[0][len(prefix) :])
    print(f"authorizer hook calls: {total}, tenant b's {lines[0][len(prefix) :]}")
