"""Authentication and authorization hooks: the types a hook sees and the adapters the native
server calls.

An **authorizer** is a callable ``authorizer(ctx, operation, resource)`` (or an object with an
``authorize`` method of that signature), plain or ``async def``, returning ``True``/``False`` or
a :class:`Decision` (which may carry a cache TTL). kop caches decisions in Rust per
(principal, listener, client host, operation, resource) for ``hook_cache_ttl_ms`` unless the
decision says otherwise, asks at most once per Kafka request (all cache misses together), and
denies when the hook raises or takes longer than ``hook_timeout_ms``. An object may instead
offer ``authorize_batch(ctx, [(operation, resource), ...])`` returning one answer per action: it
is then called once per request with all of them (``authorizer = "pulsar"`` does, to read the
permissions once).

An **authenticator** is a callable ``authenticator(username, password, conn)`` (or an object
with an ``authenticate`` method) for SASL/PLAIN logins that are not in ``sasl_users``. It
returns ``True`` (principal ``User:<username>``), a :class:`Principal` or ``"User:name"``
string, or ``False``/``None`` to reject. Raising or timing out rejects.

A **SCRAM credential source** is a callable ``scram_credentials(username, mechanism, conn)``
(or an object with a ``scram_credential`` method) for SCRAM logins of users that are neither in
``sasl_users`` nor set with ``kafka-configs``. It returns a :class:`ScramCredential` (salt,
iterations, stored key, server key: what Kafka stores), the user's password as a ``str`` (kop
derives the credential with the mechanism's hash and 4096 iterations), or ``None`` when there is
no such user. Credentials are cached in Rust per (user, mechanism) for ``hook_cache_ttl_ms`` or
the credential's ``ttl_ms``; unknown users are not cached. An unknown user, an exception or a
timeout fails the login exactly like a wrong password.

An **OAUTHBEARER validator** is a callable ``oauthbearer_validator(token, conn)`` (or an object
with a ``validate`` method) that replaces the JWT key files: it returns the token's
:class:`Principal` (or ``"User:name"``), or ``None``/``False`` to reject. Raising or timing out
rejects. With ``plain_token_auth`` it also validates PLAIN ``token:<jwt>`` passwords.

Hooks run on kop's hook threads (sync) or an asyncio loop (async): never on the server's
network threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import hmac
import importlib
import inspect
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConnectionInfo",
    "Decision",
    "Operation",
    "Principal",
    "RequestContext",
    "Resource",
    "ResourceType",
    "ScramCredential",
    "load_hook",
]

log = logging.getLogger(__name__)


class Operation(enum.IntEnum):
    """Kafka's ACL operations (``AclOperation`` codes)."""

    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class ResourceType(enum.IntEnum):
    """Kafka's resource types (``ResourceType`` codes)."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


@dataclass(frozen=True)
class Principal:
    """``User:alice``: who a connection authenticated as (``User:ANONYMOUS`` if it did not)."""

    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        kind, sep, name = text.partition(":")
        if not sep or not kind:
            raise ValueError(f"principal {text!r} is not TYPE:NAME")
        return cls(kind, name)


@dataclass(frozen=True)
class ConnectionInfo:
    """The listener a client connected to and where it connected from."""

    listener: str
    security_protocol: str
    client_host: str
    client_port: int


@dataclass(frozen=True)
class RequestContext:
    """Who asks, and the Kafka API of the request that needs the decision.

    ``tenant``: with the ``tenants`` option, the Pulsar namespace (``TENANT/NS``) the
    connection was bound to after authentication; its topics, groups and transactional ids are
    the ones named. ``None`` without ``tenants``. Decisions are cached per tenant."""

    principal: Principal
    connection: ConnectionInfo
    api: str
    tenant: str | None = None


@dataclass(frozen=True)
class Resource:
    """A Kafka resource: a topic, a group, the cluster (``kafka-cluster``), ..."""

    type: ResourceType
    name: str


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer; ``ttl_ms`` overrides ``hook_cache_ttl_ms`` (0 = do not cache)."""

    allowed: bool
    ttl_ms: int | None = None


_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
#: Kafka's minimum (and kafka-configs' default) SCRAM iteration count.
SCRAM_MIN_ITERATIONS = 4096


@dataclass(frozen=True)
class ScramCredential:
    """A stored SCRAM credential (RFC 5802): what Kafka keeps for a user instead of the
    password. ``ttl_ms`` overrides ``hook_cache_ttl_ms`` (0 = do not cache)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    ttl_ms: int | None = None

    @classmethod
    def from_password(
        cls,
        mechanism: str,
        password: str,
        salt: bytes | None = None,
        iterations: int = SCRAM_MIN_ITERATIONS,
    ) -> ScramCredential:
        """The credential of ``password`` for ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` (a random
        salt unless one is given), e.g. to store credentials instead of passwords."""
        try:
            digest = _SCRAM_HASHES[mechanism]
        except KeyError:
            raise ValueError(f"not a SCRAM mechanism: {mechanism!r}") from None
        salt = os.urandom(16) if salt is None else salt
        salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", digest)
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.new(digest, client_key).digest(),
            server_key=hmac.digest(salted, b"Server Key", digest),
        )


def load_hook(spec: str) -> Any:
    """Imports ``module:callable`` (the attribute may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"hook {spec!r} is not module:callable")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class _Runner:
    """Runs hook calls off Rust's worker pool (rust/kop-py/src/blocking.rs): sync ones on a
    small thread pool, coroutines on an asyncio loop (the embedding application's, for
    ``serve_async``, else a private one)."""

    def __init__(self, fn: Callable[..., Any], workers: int = 8) -> None:
        self._fn = fn
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="kop-hook"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own_loop = False
        self._lock = threading.Lock()

    def use_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        with self._lock:
            if not self._own_loop:
                self._loop = loop

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="kop-hook-loop", daemon=True).start()
                self._loop, self._own_loop = loop, True
            return self._loop

    def _call(self, *args: Any) -> Any:
        result = self._fn(*args)
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_await(result), self._get_loop()).result()
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._own_loop and self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop, self._own_loop = None, False


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _decision(value: Any) -> tuple[bool, int | None]:
    if isinstance(value, Decision):
        return bool(value.allowed), value.ttl_ms
    if isinstance(value, bool):
        return value, None
    raise TypeError(f"an authorizer must return bool or kop.Decision, got {type(value).__name__}")


class AuthorizerAdapter(_Runner):
    """What the native server calls: ``submit(context, actions, reply)`` returns at once."""

    def __init__(self, hook: Any) -> None:
        fn = getattr(hook, "authorize", hook)
        if not callable(fn):
            raise TypeError("authorizer must be callable or have an authorize() method")
        super().__init__(fn)
        # An object may decide a request's actions together (one look-up for all of them).
        batch = getattr(hook, "authorize_batch", None)
        self._batch: Callable[..., Any] | None = batch if callable(batch) else None

    def submit(
        self, context: tuple[Any, ...], actions: list[tuple[int, int, str]], reply: Any
    ) -> None:
        (ptype, pname), listener, protocol, host, port, api, tenant = context
        ctx = RequestContext(
            Principal(ptype, pname), ConnectionInfo(listener, protocol, host, port), api, tenant
        )

        def run() -> None:
            try:
                asked = [
                    (Operation(op), Resource(ResourceType(rtype), name))
                    for op, rtype, name in actions
                ]
                if self._batch is not None:
                    out = [_decision(v) for v in self._batch(ctx, asked)]
                else:
                    out = [_decision(self._call(ctx, op, res)) for op, res in asked]
            except BaseException as err:  # fail closed, whatever the hook did
                log.warning("authorizer hook raised %s: %s; denying", type(err).__name__, err)
                reply.err(f"{type(err).__name__}: {err}")
                return
            reply.ok(out)

        self._pool.submit(run)


class AuthenticatorAdapter(_Runner):
    """What the native server calls for SASL/PLAIN logins not in ``sasl_users``."""

    def __init__(self, hook: Any) -> None:
        fn = getattr(hook, "authenticate", hook)
        if not callable(fn):
            raise TypeError("authenticator must be callable or have an authenticate() method")
        super().__init__(fn)

    def submit(
        self,
        mechanism: str,
        username: str,
        password: str,
        conn: tuple[str, str, str, int],
        reply: Any,
    ) -> None:
        info = ConnectionInfo(*conn)

        def run() -> None:
            try:
                value = self._call(username, password, info)
                principal = _principal(value, "an authenticator", username)
            except BaseException as err:
                log.warning(
                    "authenticator hook raised %s for %s login of %r: %s; rejecting",
                    type(err).__name__,
                    mechanism,
                    username,
                    err,
                )
                reply.err(f"{type(err).__name__}: {err}")
                return
            reply.ok(principal)

        self._pool.submit(run)


def _principal(value: Any, what: str, username: str | None = None) -> str | None:
    """A hook's principal answer as ``TYPE:NAME`` (None rejects)."""
    if value is True and username is not None:
        return f"User:{username}"
    if value is False or value is None:
        return None
    if isinstance(value, Principal):
        return str(value)
    if isinstance(value, str):
        return str(Principal.parse(value))
    accepted = "bool, None" if username is not None else "None, False"
    raise TypeError(
        f"{what} must return {accepted}, kop.Principal or 'User:name', got {type(value).__name__}"
    )


class ScramCredentialsAdapter(_Runner):
    """What the native server calls for SCRAM logins of users it does not know."""

    def __init__(self, hook: Any) -> None:
        fn = getattr(hook, "scram_credential", hook)
        if not callable(fn):
            raise TypeError(
                "scram_credentials must be callable or have a scram_credential() method"
            )
        super().__init__(fn)

    def submit(
        self, mechanism: str, username: str, conn: tuple[str, str, str, int], reply: Any
    ) -> None:
        info = ConnectionInfo(*conn)

        def run() -> None:
            try:
                value = self._call(username, mechanism, info)
                if value is None:
                    reply.unknown()
                elif isinstance(value, str):
                    reply.ok_password(value, None)
                elif isinstance(value, ScramCredential):
                    reply.ok(
                        bytes(value.salt),
                        int(value.iterations),
                        bytes(value.stored_key),
                        bytes(value.server_key),
                        value.ttl_ms,
                    )
                else:
                    raise TypeError(
                        "scram_credentials must return kop.ScramCredential, a password (str) "
                        f"or None, got {type(value).__name__}"
                    )
            except BaseException as err:  # fail closed, whatever the hook did
                log.warning(
                    "SCRAM credential hook raised %s for %s login of %r: %s; the login fails",
                    type(err).__name__,
                    mechanism,
                    username,
                    err,
                )
                reply.err(f"{type(err).__name__}: {err}")

        self._pool.submit(run)


class OAuthBearerValidatorAdapter(_Runner):
    """What the native server calls for OAUTHBEARER tokens (and PLAIN ``token:`` passwords)."""

    def __init__(self, hook: Any) -> None:
        fn = getattr(hook, "validate", hook)
        if not callable(fn):
            raise TypeError("oauthbearer_validator must be callable or have a validate() method")
        super().__init__(fn)

    def submit(self, token: str, conn: tuple[str, str, str, int], reply: Any) -> None:
        info = ConnectionInfo(*conn)

        def run() -> None:
            try:
                principal = _principal(self._call(token, info), "an OAUTHBEARER validator")
            except BaseException as err:
                log.warning(
                    "OAUTHBEARER validator raised %s: %s; rejecting", type(err).__name__, err
                )
                reply.err(f"{type(err).__name__}: {err}")
                return
            reply.ok(principal)

        self._pool.submit(run)
