"""authorizer = "pulsar": Kafka actions against Pulsar's namespace policies (no Pulsar needed)."""

from __future__ import annotations

from kop.hooks import Operation, Resource, ResourceType
from kop.pulsar.permissions import decide, parse_policies, parse_super_users

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
