"""Authentication and authorization hooks: the types a hook sees and the adapters the native
server calls.

An **authorizer** is a callable ``authorizer(ctx, operation, resource)`` (or an object with an
``authorize`` method of that signature), plain or ``async def``, returning ``True``/``False`` or
a :class:`Decision` (which may carry a cache TTL). kop caches decisions in Rust per
(principal, listener, client host, operation, resource) for ``hook_cache_ttl_ms`` unless the
decision says otherwise, asks at most once per Kafka request (all cache misses together), and
denies when the hook raises or takes longer than ``hook_timeout_ms``.

An **authenticator** is a callable ``authenticator(username, password, conn)`` (or an object
with an ``authenticate`` method) for SASL/PLAIN logins that are not in ``sasl_users``. It
returns ``True`` (principal ``User:<username>``), a :class:`Principal` or ``"User:name"``
string, or ``False``/``None`` to reject. Raising or timing out rejects.

Hooks run on kop's hook threads (sync) or an asyncio loop (async): never on the server's
network threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import importlib
import inspect
import logging
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
    """Who asks, and the Kafka API of the request that needs the decision."""

    principal: Principal
    connection: ConnectionInfo
    api: str


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
    """Runs hook calls off the bridge thread: sync ones on a small pool, coroutines on an
    asyncio loop (the embedding application's, for ``serve_async``, else a private one)."""

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

    def submit(
        self, context: tuple[Any, ...], actions: list[tuple[int, int, str]], reply: Any
    ) -> None:
        (ptype, pname), listener, protocol, host, port, api = context
        ctx = RequestContext(
            Principal(ptype, pname), ConnectionInfo(listener, protocol, host, port), api
        )

        def run() -> None:
            try:
                out = []
                for op, rtype, name in actions:
                    value = self._call(ctx, Operation(op), Resource(ResourceType(rtype), name))
                    out.append(_decision(value))
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
                if value is True:
                    principal: str | None = f"User:{username}"
                elif value is False or value is None:
                    principal = None
                elif isinstance(value, Principal):
                    principal = str(value)
                elif isinstance(value, str):
                    principal = str(Principal.parse(value))
                else:
                    raise TypeError(
                        "an authenticator must return bool, None, kop.Principal or 'User:name', "
                        f"got {type(value).__name__}"
                    )
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
