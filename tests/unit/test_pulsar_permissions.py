"""authorizer = "pulsar": Kafka actions against Pulsar's namespace policies (no Pulsar needed)."""

from __future__ import annotations

from typing import Any

from kop.hooks import ConnectionInfo, Operation, Principal, RequestContext, Resource, ResourceType
from kop.pulsar.permissions import PulsarAuthorizer, decide, parse_policies, parse_super_users

PREFIX = "persistent://acme/kafka/"
TENANT = {"adminRoles": ["ops"], "allowedClusters": ["standalone"]}
POLICIES = {
    "auth_policies": {
        "namespace_auth": {"writer": ["produce"]},
        "destination_auth": {
            PREFIX + "orders": {"reader": ["consume"]},
            PREFIX + "audit-partition-1": {"auditor": ["consume", "produce"]},
            "persistent://acme/other/orders": {"stranger": ["consume"]},
        },
        "subscription_auth_roles": {"locked-group": ["someone-else"]},
    }
}
PERMS = parse_policies(TENANT, POLICIES, PREFIX)


def ok(role: str, op: Operation, rtype: ResourceType, name: str) -> bool:
    return decide(PERMS, frozenset({"root"}), role, op, Resource(rtype, name))


def test_topic_actions_follow_produce_and_consume() -> None:
    t = ResourceType.TOPIC
    assert ok("writer", Operation.WRITE, t, "anything")  # namespace grant
    assert not ok("writer", Operation.READ, t, "anything")
    assert ok("reader", Operation.READ, t, "orders")
    assert ok("reader", Operation.DESCRIBE, t, "orders")
    assert not ok("reader", Operation.READ, t, "payments")
    assert not ok("reader", Operation.WRITE, t, "orders")
    assert ok("auditor", Operation.WRITE, t, "audit")  # a partition's grant counts for the topic
    assert not ok("stranger", Operation.READ, t, "orders")  # another namespace's grant
    for admin_op in (Operation.CREATE, Operation.DELETE, Operation.ALTER_CONFIGS):
        assert not ok("writer", admin_op, t, "orders")
        assert ok("ops", admin_op, t, "orders")  # tenant admin
        assert ok("root", admin_op, t, "orders")  # super user


def test_groups_transactions_and_cluster() -> None:
    assert ok("reader", Operation.READ, ResourceType.GROUP, "g")
    assert not ok("writer", Operation.READ, ResourceType.GROUP, "g")
    assert not ok("reader", Operation.READ, ResourceType.GROUP, "locked-group")
    assert not ok("reader", Operation.DELETE, ResourceType.GROUP, "g")
    assert ok("writer", Operation.WRITE, ResourceType.TRANSACTIONAL_ID, "tx")
    assert not ok("reader", Operation.WRITE, ResourceType.TRANSACTIONAL_ID, "tx")
    assert ok("writer", Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, "kafka-cluster")
    assert not ok("writer", Operation.DESCRIBE, ResourceType.CLUSTER, "kafka-cluster")
    assert ok("ops", Operation.ALTER, ResourceType.CLUSTER, "kafka-cluster")


def test_super_users_from_the_runtime_configuration() -> None:
    assert parse_super_users({"superUserRoles": "[admin, kop]"}) == {"admin", "kop"}
    assert parse_super_users({"superUserRoles": "admin,kop"}) == {"admin", "kop"}
    assert parse_super_users({"superUserRoles": "[]"}) == frozenset()
    assert parse_super_users(None) == frozenset()


class _Admin:
    """The two admin GETs (and the runtime configuration) of two tenants, counted."""

    def __init__(self) -> None:
        self.gets: list[str] = []
        self.tenants = {"acme": {"adminRoles": ["acme-ops"]}, "globex": {"adminRoles": []}}
        self.policies = {
            "acme/kafka": {"auth_policies": {"namespace_auth": {"alice": ["produce", "consume"]}}},
            "globex/kafka": {"auth_policies": {"namespace_auth": {"bob": ["produce"]}}},
            "public/default": {"auth_policies": {"namespace_auth": {"carol": ["consume"]}}},
        }

    def runtime_configuration(self) -> tuple[int, Any]:
        return 200, {"superUserRoles": "root"}

    def tenant_info(self, tenant: str) -> Any:
        self.gets.append(tenant)
        return self.tenants.get(tenant, {})

    def namespace_policies(self, tenant: str, namespace: str) -> Any:
        self.gets.append(f"{tenant}/{namespace}")
        return self.policies[f"{tenant}/{namespace}"]


def _ctx(role: str, tenant: str | None) -> RequestContext:
    conn = ConnectionInfo("SASL_PLAINTEXT", "SASL_PLAINTEXT", "127.0.0.1", 1)
    return RequestContext(Principal("User", role), conn, "Produce", tenant)


def test_with_tenants_the_connections_namespace_decides() -> None:
    admin = _Admin()
    authz = PulsarAuthorizer(admin, "public", "default")  # type: ignore[arg-type]
    write = (Operation.WRITE, Resource(ResourceType.TOPIC, "orders"))
    read = (Operation.READ, Resource(ResourceType.TOPIC, "orders"))
    create = (Operation.CREATE, Resource(ResourceType.TOPIC, "orders"))
    # alice's grants are in acme/kafka: they count there and nowhere else.
    assert authz.authorize_batch(_ctx("alice", "acme/kafka"), [write, read]) == [True, True]
    assert admin.gets == ["acme", "acme/kafka"]  # one read of that namespace for the batch
    assert authz.authorize_batch(_ctx("alice", "globex/kafka"), [write, read]) == [False, False]
    assert admin.gets[2:] == ["globex", "globex/kafka"]
    assert authz.authorize_batch(_ctx("bob", "globex/kafka"), [write, read]) == [True, False]
    # A tenant admin of acme is nobody in globex.
    assert authz.authorize(_ctx("acme-ops", "acme/kafka"), *create)
    assert not authz.authorize(_ctx("acme-ops", "globex/kafka"), *create)
    # Without tenants: the instance's own namespace.
    assert authz.authorize(_ctx("carol", None), *read)
    assert not authz.authorize(_ctx("alice", None), *read)
    # Pulsar's super users everywhere, without reading a namespace.
    before = len(admin.gets)
    assert authz.authorize(_ctx("root", "globex/kafka"), *create)
    assert len(admin.gets) == before
