"""``authorizer = "pulsar"``: Kafka operations decided by the Pulsar permissions of the client's
role (docs/pulsar-storage.md, "Pulsar permissions").

The role is the name of the Kafka principal (``User:alice`` -> ``alice``), e.g. the ``sub`` of a
PLAIN ``token:<jwt>`` login. Per Kafka request kop reads, through the admin REST API with its own
token, the namespace's policies (namespace and topic grants, subscription roles) and the tenant's
admin roles: two GETs for all of the request's actions together. The namespace is the one the
connection was bound to with the ``tenants`` option (``RequestContext.tenant``; docs/tenants.md),
else the instance's ``pulsar_tenant``/``pulsar_namespace``. Decisions are cached in Rust like
every authorizer hook's (per tenant), for ``hook_cache_ttl_ms``: a grant or revocation takes
effect within that time.

Mapping (super users and tenant admins may do everything):

- topic WRITE -> ``produce`` on the topic or namespace; READ -> ``consume``; DESCRIBE and
  DESCRIBE_CONFIGS -> either (Pulsar's lookup); CREATE, DELETE, ALTER, ALTER_CONFIGS -> admin.
- group READ / DESCRIBE -> ``consume`` on the namespace or any topic in it, and the role is among
  the subscription's roles when the namespace restricts that subscription (group = subscription);
  DELETE -> admin.
- transactional id WRITE / DESCRIBE, cluster IDEMPOTENT_WRITE -> ``produce`` somewhere in the
  namespace; everything else on the cluster, users and delegation tokens -> admin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kop.config import Config
from kop.hooks import Operation, RequestContext, Resource, ResourceType
from kop.pulsar.admin import PulsarAdmin

__all__ = ["NamespacePermissions", "PulsarAuthorizer", "pulsar_authorizer"]

log = logging.getLogger(__name__)

_PRODUCE, _CONSUME = "produce", "consume"


@dataclass(frozen=True)
class NamespacePermissions:
    """What Pulsar says about one namespace at one moment."""

    tenant_admins: frozenset[str]
    namespace: dict[str, frozenset[str]]  # role -> actions granted on the whole namespace
    topics: dict[str, dict[str, frozenset[str]]]  # local topic name -> role -> actions
    subscriptions: dict[str, frozenset[str]]  # subscription -> roles allowed (when restricted)

    def on_topic(self, role: str, topic: str, action: str) -> bool:
        if action in self.namespace.get(role, ()):
            return True
        return action in self.topics.get(topic, {}).get(role, ())

    def anywhere(self, role: str, action: str) -> bool:
        if action in self.namespace.get(role, ()):
            return True
        return any(action in grants.get(role, ()) for grants in self.topics.values())


def parse_policies(tenant_info: Any, policies: Any, prefix: str) -> NamespacePermissions:
    """From ``GET /admin/v2/tenants/T`` and ``GET /admin/v2/namespaces/T/NS``; topic names in
    the policies are full (``persistent://T/NS/name``, or a ``-partition-N`` of one)."""
    admins = tenant_info.get("adminRoles") if isinstance(tenant_info, dict) else None
    auth = policies.get("auth_policies") if isinstance(policies, dict) else None
    auth = auth if isinstance(auth, dict) else {}

    def grants(raw: Any) -> dict[str, frozenset[str]]:
        if not isinstance(raw, dict):
            return {}
        return {str(role): frozenset(str(a) for a in actions) for role, actions in raw.items()}

    topics: dict[str, dict[str, frozenset[str]]] = {}
    raw_topics = auth.get("destination_auth")
    for full, raw in raw_topics.items() if isinstance(raw_topics, dict) else []:
        if not str(full).startswith(prefix):
            continue
        name = _base_topic(str(full)[len(prefix) :])
        merged = topics.setdefault(name, {})
        for role, actions in grants(raw).items():
            merged[role] = merged.get(role, frozenset()) | actions
    subs = auth.get("subscription_auth_roles")
    return NamespacePermissions(
        tenant_admins=frozenset(str(r) for r in admins)
        if isinstance(admins, list)
        else frozenset(),
        namespace=grants(auth.get("namespace_auth")),
        topics=topics,
        subscriptions={
            str(s): frozenset(str(r) for r in roles)
            for s, roles in (subs.items() if isinstance(subs, dict) else [])
            if isinstance(roles, list)
        },
    )


def _base_topic(name: str) -> str:
    stem, sep, n = name.rpartition("-partition-")
    return stem if sep and n.isdigit() else name


def decide(
    perms: NamespacePermissions,
    super_users: Iterable[str],
    role: str,
    op: Operation,
    resource: Resource,
) -> bool:
    """One Kafka action against Pulsar's permissions of ``role``."""
    if role in super_users or role in perms.tenant_admins:
        return True
    rtype, name = resource.type, resource.name
    if rtype == ResourceType.TOPIC:
        if op == Operation.WRITE:
            return perms.on_topic(role, name, _PRODUCE)
        if op == Operation.READ:
            return perms.on_topic(role, name, _CONSUME)
        if op in (Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS):
            return perms.on_topic(role, name, _PRODUCE) or perms.on_topic(role, name, _CONSUME)
        return False
    if rtype == ResourceType.GROUP:
        if op not in (Operation.READ, Operation.DESCRIBE):
            return False
        allowed = perms.subscriptions.get(name)
        if allowed is not None and role not in allowed:
            return False
        return perms.anywhere(role, _CONSUME)
    if rtype == ResourceType.TRANSACTIONAL_ID:
        return op in (Operation.WRITE, Operation.DESCRIBE) and perms.anywhere(role, _PRODUCE)
    if rtype == ResourceType.CLUSTER and op == Operation.IDEMPOTENT_WRITE:
        return perms.anywhere(role, _PRODUCE)
    return False


def parse_super_users(runtime_config: Any) -> frozenset[str]:
    """``superUserRoles`` of the broker's runtime configuration (``[a, b]`` or ``a,b``)."""
    raw = runtime_config.get("superUserRoles") if isinstance(runtime_config, dict) else None
    if isinstance(raw, list):
        return frozenset(str(r) for r in raw)
    if not isinstance(raw, str):
        return frozenset()
    return frozenset(r.strip() for r in raw.strip("[]").split(",") if r.strip())


class PulsarAuthorizer:
    """The authorizer hook behind ``authorizer = "pulsar"`` (installed by kop.Server)."""

    def __init__(self, admin: PulsarAdmin, tenant: str, namespace: str) -> None:
        self._admin = admin
        self._tenant = tenant
        self._namespace = namespace
        self._super_users: frozenset[str] | None = None
        self._lock = threading.Lock()

    def super_users(self) -> frozenset[str]:
        """Pulsar's super-user roles, read once (kop's token must be a super user to read
        them; if it is not, only kop's own ``super_users`` bypass the Pulsar permissions)."""
        with self._lock:
            if self._super_users is not None:
                return self._super_users
        status, body = self._admin.runtime_configuration()
        found = parse_super_users(body) if status == 200 else frozenset()
        if status != 200:
            log.warning(
                "cannot read Pulsar's superUserRoles (admin answered %s); "
                "only kop's super_users bypass Pulsar permissions",
                status,
            )
        with self._lock:
            self._super_users = found
        return found

    def namespace_of(self, ctx: RequestContext) -> tuple[str, str]:
        """(tenant, namespace) whose permissions decide ``ctx``'s request: the connection's
        tenant (``tenants``), else the instance's own namespace."""
        if ctx.tenant is None:
            return self._tenant, self._namespace
        tenant, sep, namespace = ctx.tenant.partition("/")
        if not sep or not tenant or not namespace or "/" in namespace:
            raise ValueError(f"tenant {ctx.tenant!r} is not TENANT/NAMESPACE")
        return tenant, namespace

    def permissions(
        self, tenant: str | None = None, namespace: str | None = None
    ) -> NamespacePermissions:
        """A namespace's permissions now (two admin GETs; default: the instance's own);
        raises when Pulsar cannot say, which denies (and nothing is cached)."""
        tenant = self._tenant if tenant is None else tenant
        namespace = self._namespace if namespace is None else namespace
        info = self._admin.tenant_info(tenant)
        policies = self._admin.namespace_policies(tenant, namespace)
        return parse_policies(info, policies, f"persistent://{tenant}/{namespace}/")

    def authorize_batch(
        self, ctx: RequestContext, actions: list[tuple[Operation, Resource]]
    ) -> list[bool]:
        """Every action of one Kafka request, against one read of the permissions of the
        connection's namespace."""
        if ctx.principal.type != "User":
            return [False] * len(actions)
        role = ctx.principal.name
        supers = self.super_users()
        if role in supers:
            return [True] * len(actions)
        perms = self.permissions(*self.namespace_of(ctx))
        return [decide(perms, supers, role, op, res) for op, res in actions]

    def authorize(self, ctx: RequestContext, op: Operation, resource: Resource) -> bool:
        return self.authorize_batch(ctx, [(op, resource)])[0]


def pulsar_authorizer(config: Config, admin_url: str) -> PulsarAuthorizer:
    """The authorizer of a server whose ``authorizer`` is ``pulsar``."""
    admin = PulsarAdmin(admin_url, config.pulsar_token)
    return PulsarAuthorizer(admin, config.pulsar_tenant, config.pulsar_namespace)
