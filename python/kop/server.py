"""kop.Server: the Python face of the native server (kop._native.NativeServer)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import signal
import threading
from types import FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from kop.config import Config, check_token_validation
from kop.hooks import (
    AuthenticatorAdapter,
    AuthorizerAdapter,
    OAuthBearerValidatorAdapter,
    ScramCredentialsAdapter,
    load_hook,
)

if TYPE_CHECKING:
    from kop._native import NativeServer
    from kop.pulsar.backend import PulsarBackend

__all__ = ["Server"]

log = logging.getLogger(__name__)

# How often blocking waits wake up to let Python run signal handlers / see cancellation.
_POLL_SECS = 0.2


def _load_native() -> ModuleType:
    # Imported on first start, not at `import kop`, so config, CLI help and errors work
    # before the Rust extension is built.
    return importlib.import_module("kop._native")


def _open_storage_backend(config: Config) -> PulsarBackend | None:
    """The started Pulsar bridge for ``pulsar://`` storage, else None. Raises (naming the URL)
    if Pulsar cannot be reached, so a misconfigured server never starts."""
    if not config.storage.startswith(("pulsar://", "pulsar+ssl://")):
        return None
    from kop.pulsar.backend import PulsarBackend  # needs the optional pulsar-client

    admin_url = config.pulsar_admin_url or pulsar_admin_url_for(config.storage)
    backend = PulsarBackend(
        config.storage,
        admin_url,
        tenant=config.pulsar_tenant,
        namespace=config.pulsar_namespace,
        token=config.pulsar_token,
        standby=config.pulsar_standby,
        node_id=config.node_id,
    )
    if config.pulsar_standby:
        log.info(
            "standing by for Pulsar namespace %s/%s", config.pulsar_tenant, config.pulsar_namespace
        )
    backend.start()
    return backend


def pulsar_admin_url_for(service_url: str) -> str:
    """Pulsar's default admin URL on the service URL's host: ``http(s)://HOST:8080|8443``."""
    scheme, _, rest = service_url.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0] or "127.0.0.1"
    return f"https://{host}:8443" if scheme == "pulsar+ssl" else f"http://{host}:8080"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _adapter(adapter: Any, hook: Any) -> Any:
    return adapter(hook) if hook is not None else None


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
        if authorizer is None and ":" in config.authorizer:
            authorizer = load_hook(config.authorizer)
        given = {
            "authenticator": authenticator,
            "scram_credentials": scram_credentials,
            "oauthbearer_validator": oauthbearer_validator,
        }
        for name, hook in given.items():
            spec = getattr(config, name)
            if hook is None and spec not in (None, "python"):
                given[name] = load_hook(spec)
        check_token_validation(config, given["oauthbearer_validator"] is not None)
        native_overrides: dict[str, Any] = {
            name: "python" for name, hook in given.items() if hook is not None
        }
        if authorizer is not None:
            native_overrides["authorizer"] = "python"
        self._native_config = dataclasses.replace(config, **native_overrides)
        self._authorizer = AuthorizerAdapter(authorizer) if authorizer is not None else None
        self._authenticator = _adapter(AuthenticatorAdapter, given["authenticator"])
        self._scram_credentials = _adapter(ScramCredentialsAdapter, given["scram_credentials"])
        self._oauthbearer_validator = _adapter(
            OAuthBearerValidatorAdapter, given["oauthbearer_validator"]
        )
        self._config = config
        self._lock = threading.Lock()  # guards _native across start/stop from any thread
        self._native: NativeServer | None = None
        self._storage_backend: PulsarBackend | None = None

    @property
    def config(self) -> Config:
        return self._config

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open storage and bind every listener. OSError if a listener cannot be bound."""
        self._start()

    def _start(self) -> NativeServer:
        with self._lock:
            if self._native is not None and self._native.is_running():
                raise RuntimeError("kop server is already running")
            native_mod = _load_native()
            native_mod.init_logging(self._config.log_level)
            backend = _open_storage_backend(self._config)
            try:
                native: NativeServer = native_mod.NativeServer(
                    self._native_config.to_json(),
                    self._authenticator,
                    self._authorizer,
                    scram_credentials=self._scram_credentials,
                    oauthbearer_validator=self._oauthbearer_validator,
                    storage_backend=backend,
                )
                native.start()
            except BaseException:
                if backend is not None:
                    backend.close()
                raise
            self._native = native
            self._storage_backend = backend
            addresses = native.bound_addresses()
        for name, host, port in addresses:
            log.info("kop listening on %s://%s", name, _host_port(host, port))
        return native

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, finish in-flight requests, flush, close. Safe from any thread and
        safe to call twice; a no-op if the server is not running."""
        with self._lock:
            native, self._native = self._native, None
            backend, self._storage_backend = self._storage_backend, None
            if native is None:
                return
            native.stop(timeout)
            if backend is not None:
                backend.close()
        log.info("kop stopped")

    def serve(self, stop_timeout: float = 30.0) -> None:
        """Start (if needed) and block until SIGINT/SIGTERM or ``stop()``; then stop."""
        native = self._native_or_start()
        requested = threading.Event()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            # The handler only sets a flag: it runs between bytecodes of this thread, which
            # might be inside stop()'s lock; the loop below does the actual stopping.
            def on_signal(signum: int, frame: FrameType | None) -> None:
                log.info("received %s, stopping", signal.Signals(signum).name)
                requested.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            # Short waits so that Python signal handlers get to run in between.
            while not requested.is_set() and not native.wait(_POLL_SECS):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop(stop_timeout)

    async def serve_async(self, stop_timeout: float = 30.0) -> None:
        """Start (if needed) and wait without blocking the event loop until the server stops.
        On cancellation the server is stopped (in a thread) and CancelledError re-raised."""
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
        after permissions or passwords changed)."""
        native = self._native
        if native is not None:
            native.invalidate_authorization_cache()

    @property
    def authorizer_hook_calls(self) -> int:
        """How many times the authorizer hook was asked (at most once per Kafka request)."""
        native = self._native
        return native.authorizer_hook_calls() if native is not None else 0

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

    def _native_or_start(self) -> NativeServer:
        # Holding on to the instance (not re-reading self._native) means a stop() from another
        # thread right after starting just ends the wait loop instead of racing it.
        native = self._native
        return native if native is not None and native.is_running() else self._start()

    def _running_native(self) -> NativeServer:
        native = self._native
        if native is None:
            raise RuntimeError("kop server is not started")
        return native

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<kop.Server {state} listeners={list(self._config.listeners)}>"
