"""kop.Server: the Python face of the native server (kop._native.NativeServer)."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType, TracebackType

from kop.config import Config, check_token_validation
from kop.lifecycle import StartCancelled, StopSignals
from kop.logs import flush_native_logging, start_native_logging

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any

    from kop._native import NativeServer
    from kop.hooks import AuthorizerAdapter
    from kop.pulsar.backend import PulsarBackend

__all__ = ["Server"]

log = logging.getLogger(__name__)

# How often blocking waits wake up to let Python run signal handlers / see cancellation.
_POLL_SECS = 0.2


def _load_native() -> ModuleType:
    # Imported on first start, not at `import kop`, so config, CLI help and errors work
    # before the Rust extension is built.
    return importlib.import_module("kop._native")


def _on_pulsar(config: Config) -> bool:
    return config.storage.startswith(("pulsar://", "pulsar+ssl://"))


def _open_pulsar_backend(
    config: Config, cancelled: Callable[[], bool], namespace: str | None = None
) -> PulsarBackend:
    """The started Pulsar bridge for ``pulsar://`` storage (on ``namespace``, ``TENANT/NS``, if
    given: one of the ``tenants``). Raises PulsarStorageError (naming the URL) if Pulsar
    cannot be reached."""
    from kop.pulsar.backend import PulsarBackend  # needs the optional pulsar-client

    tenant, ns = (
        namespace.split("/", 1) if namespace else (config.pulsar_tenant, config.pulsar_namespace)
    )
    backend = PulsarBackend(
        config.storage,
        _admin_url(config),
        tenant=tenant,
        namespace=ns,
        token=config.pulsar_token,
        standby=config.pulsar_standby,
        node_id=config.node_id,
        cancelled=cancelled,
        entry_format=config.pulsar_entry_format,
    )
    if config.pulsar_standby:
        log.info(
            "standing by for Pulsar namespace %s/%s", config.pulsar_tenant, config.pulsar_namespace
        )
    backend.start()
    return backend


def _admin_url(config: Config) -> str:
    return config.pulsar_admin_url or pulsar_admin_url_for(config.storage)


def pulsar_admin_url_for(service_url: str) -> str:
    """Pulsar's default admin URL on the service URL's host: ``http(s)://HOST:8080|8443``."""
    scheme, _, rest = service_url.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0] or "127.0.0.1"
    return f"https://{host}:8443" if scheme == "pulsar+ssl" else f"http://{host}:8080"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _adapter(adapter: Any, hook: Any) -> Any:
    return adapter(hook) if hook is not None else None


def _hook_spec(config: Config, name: str) -> str | None:
    """The ``module:callable`` a config names for hook ``name``, if any (the authorizer's
    other values are built-in authorizers; ``python`` means a hook given in code)."""
    spec: str | None = getattr(config, name)
    if spec is None or spec == "python" or (name == "authorizer" and ":" not in spec):
        return None
    return spec


class Server:
    """A kop server in this process.

    ``start()``/``stop()``, a blocking ``serve()`` that returns on Ctrl-C or SIGTERM,
    ``await serve_async()``, or ``with Server(config) as server: ...``.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        authenticator: Any = None,
        authorizer: Any = None,
        scram_credentials: Any = None,
        oauthbearer_validator: Any = None,
    ) -> None:
        config = config if config is not None else Config()
        # Hooks given here win; else `module:callable` from the config (CLI, env, TOML).
        given = {
            "authorizer": authorizer,
            "authenticator": authenticator,
            "scram_credentials": scram_credentials,
            "oauthbearer_validator": oauthbearer_validator,
        }
        self._authorizer: AuthorizerAdapter | None = None
        self._authenticator: Any = None
        self._scram_credentials: Any = None
        self._oauthbearer_validator: Any = None
        if any(h is not None or _hook_spec(config, n) for n, h in given.items()):
            # Imported only for a server with hooks: kop.hooks pulls in asyncio, which costs
            # `kop serve` without hooks ~15-40 ms of start-up.
            from kop import hooks

            for name, hook in given.items():
                spec = _hook_spec(config, name)
                if hook is None and spec is not None:
                    given[name] = hooks.load_hook(spec)
            self._authorizer = _adapter(hooks.AuthorizerAdapter, given["authorizer"])
            self._authenticator = _adapter(hooks.AuthenticatorAdapter, given["authenticator"])
            self._scram_credentials = _adapter(
                hooks.ScramCredentialsAdapter, given["scram_credentials"]
            )
            self._oauthbearer_validator = _adapter(
                hooks.OAuthBearerValidatorAdapter, given["oauthbearer_validator"]
            )
        if given["authorizer"] is None and config.authorizer == "pulsar":
            from kop import hooks
            from kop.pulsar.permissions import pulsar_authorizer

            given["authorizer"] = pulsar_authorizer(config, _admin_url(config))
            self._authorizer = hooks.AuthorizerAdapter(given["authorizer"])
        check_token_validation(config, given["oauthbearer_validator"] is not None)
        native_overrides: dict[str, Any] = {
            name: "python" for name, hook in given.items() if hook is not None
        }
        self._native_config = dataclasses.replace(config, **native_overrides)
        self._config = config
        self._lock = threading.Lock()  # guards _native across start/stop from any thread
        self._native: NativeServer | None = None
        self._storage_backend: PulsarBackend | None = None
        self._tenant_backends: list[PulsarBackend] = []
        self._cancel_start = threading.Event()  # set by stop(): a start-up in progress gives up

    @property
    def config(self) -> Config:
        return self._config

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open storage and bind every listener. OSError if a listener cannot be bound, or
        if Pulsar storage is not ready within ``pulsar_startup_timeout_ms``; StartCancelled
        if ``stop()`` was called meanwhile."""
        self._start()

    def _start(self, stop_requested: threading.Event | None = None) -> NativeServer:
        self._cancel_start.clear()  # a stop() before this start does not cancel it

        def cancelled() -> bool:
            return self._cancel_start.is_set() or (
                stop_requested is not None and stop_requested.is_set()
            )

        with self._lock:
            if self._native is not None and self._native.is_running():
                raise RuntimeError("kop server is already running")
            if cancelled():  # e.g. SIGTERM while the CLI was still loading the config
                raise StartCancelled("asked to stop before storage was opened")
            native_mod = _load_native()
            start_native_logging(native_mod, self._config.log_level)
            if _on_pulsar(self._config):
                from kop.pulsar.startup import wait_for_pulsar

                native, (backend, self._tenant_backends) = wait_for_pulsar(
                    lambda: self._start_on_pulsar(native_mod, cancelled),
                    where=f"{self._config.storage} (admin {_admin_url(self._config)})",
                    timeout_ms=self._config.pulsar_startup_timeout_ms,
                    cancelled=cancelled,
                )
            else:
                native, backend = self._start_native(native_mod, None), None
            self._native = native
            self._storage_backend = backend
            addresses = native.bound_addresses()
        flush_native_logging()  # Rust's "storage opened" before "kop listening on"
        for name, host, port in addresses:
            log.info("kop listening on %s://%s", name, _host_port(host, port))
        return native

    def _start_on_pulsar(
        self, native_mod: ModuleType, cancelled: Callable[[], bool]
    ) -> tuple[NativeServer, tuple[PulsarBackend, list[PulsarBackend]]]:
        """One attempt: the bridge (and one per other namespace of ``tenants``), then the
        native server over them (which opens the group shards and partitions it leads); what
        was opened is closed again if it fails."""
        own = f"{self._config.pulsar_tenant}/{self._config.pulsar_namespace}"
        opened: list[PulsarBackend] = []
        try:
            backend = _open_pulsar_backend(self._config, cancelled)
            opened.append(backend)
            tenants: dict[str, PulsarBackend] = {}
            for key in self._config.tenants:
                if key != own and key not in tenants:
                    tenants[key] = _open_pulsar_backend(self._config, cancelled, key)
                    opened.append(tenants[key])
            native = self._start_native(native_mod, backend, tenants)
            return native, (backend, list(tenants.values()))
        except BaseException:
            for b in opened:
                b.close()
            raise

    def _start_native(
        self,
        native_mod: ModuleType,
        backend: PulsarBackend | None,
        tenants: dict[str, PulsarBackend] | None = None,
    ) -> NativeServer:
        native: NativeServer = native_mod.NativeServer(
            self._native_config.to_json(),
            self._authenticator,
            self._authorizer,
            scram_credentials=self._scram_credentials,
            oauthbearer_validator=self._oauthbearer_validator,
            storage_backend=backend,
            tenant_backends=tenants or None,
        )
        native.start()
        return native

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, finish in-flight requests, flush, close. Safe from any thread and
        safe to call twice; a no-op if the server is not running. During ``start()`` it ends
        a wait for Pulsar (start raises StartCancelled), or stops once storage is open."""
        self._cancel_start.set()
        with self._lock:
            native, self._native = self._native, None
            backend, self._storage_backend = self._storage_backend, None
            tenant_backends, self._tenant_backends = self._tenant_backends, []
            if native is None:
                return
            native.stop(timeout)
            if backend is not None:
                backend.close()
            for b in tenant_backends:
                b.close()
        flush_native_logging()
        log.info("kop stopped")

    def serve(
        self, stop_timeout: float = 30.0, *, stop_requested: threading.Event | None = None
    ) -> None:
        """Start (if needed) and block until SIGINT/SIGTERM or ``stop()``; then stop.

        A signal during start-up is honoured too: a wait for Pulsar ends at once, an opening
        of storage finishes and is then closed in order (it returns without serving).
        ``stop_requested``: an event the caller also sets (e.g. from its own signal handlers
        installed earlier); SIGINT/SIGTERM set it here."""
        with StopSignals(stop_requested) as signals:
            try:
                native = self._native_or_start(signals.requested)
            except StartCancelled as err:
                log.info("kop stopped during start-up (%s)", err)
                return
            try:
                # Short waits so that Python signal handlers get to run in between.
                while not signals.requested.is_set() and not native.wait(_POLL_SECS):
                    pass
            finally:
                # Still inside StopSignals: a second signal while flushing is only logged.
                self.stop(stop_timeout)

    async def serve_async(self, stop_timeout: float = 30.0) -> None:
        """Start (if needed) and wait without blocking the event loop until the server stops.
        On cancellation the server is stopped (in a thread) and CancelledError re-raised."""
        import asyncio  # only here: it costs `kop serve` ~15-40 ms of start-up

        loop = asyncio.get_running_loop()
        for runner in self._runners():  # async hooks run on the application's loop
            runner.use_loop(loop)
        native = self._native_or_start()
        try:
            while not await loop.run_in_executor(None, native.wait, _POLL_SECS):
                pass
        except asyncio.CancelledError:
            await loop.run_in_executor(None, self.stop, stop_timeout)
            raise
        self.stop(stop_timeout)  # already stopped natively: releases our reference only

    def __enter__(self) -> Server:
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- hooks ---------------------------------------------------------------------------

    def _runners(self) -> list[Any]:
        hooks = (
            self._authorizer,
            self._authenticator,
            self._scram_credentials,
            self._oauthbearer_validator,
        )
        return [h for h in hooks if h is not None]

    def invalidate_authorization_cache(self) -> None:
        """Forget every cached hook answer: authorizer decisions and SCRAM credentials (e.g.
        after permissions or passwords changed; with ``tenants``, every tenant's)."""
        native = self._native
        if native is not None:
            native.invalidate_authorization_cache()

    @property
    def authorizer_hook_calls(self) -> int:
        """How many times the authorizer hook was asked (at most once per Kafka request;
        with ``tenants``, summed over the tenants)."""
        native = self._native
        return native.authorizer_hook_calls() if native is not None else 0

    def bridge_stats(self) -> dict[str, int]:
        """The worker pool that runs Python hooks and the Pulsar bridge for Rust: ``queued``
        (calls waiting for a worker), ``workers`` (threads started), ``busy`` (running a call)
        and ``done`` (calls finished). Zeros when not started."""
        native = self._native
        if native is None:
            return {"queued": 0, "workers": 0, "busy": 0, "done": 0}
        return dict(native.bridge_stats())

    def metrics(self) -> str:
        """Every metric in Prometheus' text exposition format, as the ``metrics_listener``
        serves it on ``/metrics`` (docs/metrics.md); empty when not started."""
        native = self._native
        return native.metrics() if native is not None else ""

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) the metrics listener is bound to (None when ``metrics_listener`` is
        not set or the server is not started)."""
        native = self._native
        return native.metrics_address() if native is not None else None

    @property
    def schema_registry_address(self) -> tuple[str, int] | None:
        """(host, port) the schema registry is bound to (None when
        ``schema_registry_listener`` is not set or the server is not started)."""
        native = self._native
        return native.schema_registry_address() if native is not None else None

    @property
    def schema_registry_url(self) -> str | None:
        """``http(s)://HOST:PORT`` of the schema registry, for Confluent's
        ``SchemaRegistryClient({"url": ...})`` (None when it is off or not started)."""
        address = self.schema_registry_address
        if address is None:
            return None
        host, port = address
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        host = f"[{host}]" if ":" in host else host
        # HTTPS when the Kafka listeners use TLS (docs/schema-registry.md).
        scheme = "https" if _uses_tls(self._config) else "http"
        return f"{scheme}://{host}:{port}"

    # -- introspection -------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        native = self._native
        return native is not None and native.is_running()

    @property
    def bound_addresses(self) -> list[tuple[str, str, int]]:
        """(listener name, host, port) actually bound, in listener order."""
        return list(self._running_native().bound_addresses())

    @property
    def port(self) -> int:
        """The first listener's bound port (useful with port 0)."""
        return self.bound_addresses[0][2]

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the first listener for a client on this machine."""
        _, host, port = self.bound_addresses[0]
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host in ("::", "[::]"):
            host = "::1"
        return _host_port(host, port)

    def _native_or_start(self, stop_requested: threading.Event | None = None) -> NativeServer:
        # Holding on to the instance (not re-reading self._native) means a stop() from another
        # thread right after starting just ends the wait loop instead of racing it.
        native = self._native
        if native is not None and native.is_running():
            return native
        return self._start(stop_requested)

    def _running_native(self) -> NativeServer:
        native = self._native
        if native is None:
            raise RuntimeError("kop server is not started")
        return native

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<kop.Server {state} listeners={list(self._config.listeners)}>"


def _uses_tls(cfg: Config) -> bool:
    """Whether a listener is SSL or SASL_SSL (then the schema registry serves HTTPS)."""
    mapped = {}
    for entry in cfg.listener_security_protocol_map:
        name, _, proto = entry.partition(":")
        mapped[name.upper()] = proto.upper()
    names = [listener.split("://", 1)[0].upper() for listener in cfg.listeners]
    return any(mapped.get(n, n) in ("SSL", "SASL_SSL") for n in names)
