"""The servers the end-to-end tests run against, behind one small interface.

Targets:
- ``kop-cli``      a ``kop serve`` subprocess on a port picked here, stderr captured to a file;
- ``kop-embedded`` ``kop.Server`` in this process (port 0, bound port read back);
- ``kop-pulsar``   ``kop serve`` with ``pulsar://`` storage on the session's Pulsar standalone
                   (tests/helpers/pulsar.py), in a namespace of its own per data directory;
- ``kafka``        the reference Apache Kafka 4.x from ``scripts/kafka.sh``.

``make_server`` is the one way tests get a server (``start_server`` = make, then start, turning
a kop that is not built into a failure or, with ``KOP_ALLOW_MISSING=1``, a skip). Config is
given with kop's option names (docs/native-api.md); for Kafka the few that tests use are
translated to broker properties. A kop's listeners are ``PLAINTEXT`` on a port of its own plus
the ``extra_listeners`` option, or exactly the ``listeners`` option when that is given;
``port`` and ``bootstrap`` are the first listener's.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import wire

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
HOST = "127.0.0.1"
KOP_TARGETS = ("kop-cli", "kop-embedded", "kop-pulsar")
ALL_TARGETS = ("kop-cli", "kop-embedded", "kop-pulsar", "kafka")
ALLOW_MISSING = os.environ.get("KOP_ALLOW_MISSING") == "1"

# kop option -> Apache Kafka broker property, for the options tests set.
_KAFKA_PROPS = {
    "auto_create_topics": "auto.create.topics.enable",
    "num_partitions": "num.partitions",
    "message_max_bytes": "message.max.bytes",
    "max_request_bytes": "socket.request.max.bytes",
    "log_retention_ms": "log.retention.ms",
    "log_segment_bytes": "log.segment.bytes",
    "log_cleaner_backoff_ms": "log.cleaner.backoff.ms",
    "max_incremental_fetch_session_cache_slots": "max.incremental.fetch.session.cache.slots",
    "group_initial_rebalance_delay_ms": "group.initial.rebalance.delay.ms",
    "group_min_session_timeout_ms": "group.min.session.timeout.ms",
    "group_max_session_timeout_ms": "group.max.session.timeout.ms",
    "group_max_size": "group.max.size",
    "group_consumer_max_size": "group.consumer.max.size",
    "group_streams_num_standby_replicas": "group.streams.num.standby.replicas",
    "group_streams_initial_rebalance_delay_ms": "group.streams.initial.rebalance.delay.ms",
    "offsets_retention_minutes": "offsets.retention.minutes",
    "transaction_max_timeout_ms": "transaction.max.timeout.ms",
    "transactional_id_expiration_ms": "transactional.id.expiration.ms",
    "group_share_record_lock_duration_ms": "group.share.record.lock.duration.ms",
    "group_share_delivery_count_limit": "group.share.delivery.count.limit",
    "quota_window_num": "quota.window.num",
    "quota_window_size_seconds": "quota.window.size.seconds",
    "controller_quota_window_num": "controller.quota.window.num",
}


class MissingKop(Exception):
    """kop (its native extension or the `kop` command) is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the test process dies (no orphaned servers when a
    run is interrupted). Elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def check_kop_importable() -> None:
    try:
        importlib.import_module("kop")
        importlib.import_module("kop._native")
    except ImportError as err:
        raise MissingKop(f"kop is not importable ({err}); build it with `maturin develop`") from err


class ServerHandle:
    target: str = ""
    can_kill: bool = False  # kill -9 and restart on the same data

    def __init__(self, data_dir: Path, config: dict[str, Any]) -> None:
        self.data_dir = data_dir
        self.config = dict(config)
        self.port = 0

    @property
    def host(self) -> str:
        return HOST

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the server process (only where ``can_kill``)."""
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str | None:
        """Everything the server logged so far, where it can be captured (else None)."""
        return None

    def address_of(self, listener: str) -> str:
        """host:port of a listener named in the ``extra_listeners``/``listeners`` options (kop
        only)."""
        for lis in self.config.get("listeners") or self.config.get("extra_listeners", []):
            name, _, hostport = lis.partition("://")
            if name == listener:
                return str(hostport)
        raise KeyError(listener)

    def __repr__(self) -> str:
        return f"<{self.target} {self.bootstrap} data={self.data_dir}>"


def _with_free_port(listener: str) -> str:
    """``NAME://host:0`` with a free port instead of 0 (the CLI must know its ports)."""
    return f"{listener.rsplit(':', 1)[0]}:{free_port()}" if listener.endswith(":0") else listener


class KopCli(ServerHandle):
    """``kop serve``: config as ``KOP_*`` environment variables; ``env`` adds variables and
    ``args`` command-line options, for tests of those."""

    target = "kop-cli"
    can_kill = True

    def __init__(
        self,
        data_dir: Path,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        super().__init__(data_dir, config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_env = dict(env or {})
        self.extra_args = list(args or [])
        if "listeners" in self.config:
            self.config["listeners"] = [_with_free_port(lis) for lis in self.config["listeners"]]
            self.port = int(self.config["listeners"][0].rsplit(":", 1)[1])
        else:
            self.port = free_port()
        self.log_path = data_dir.parent / f"{data_dir.name}-kop-stderr.log"
        self._log_fh: Any = None

    def storage_args(self) -> list[str]:
        return ["--storage", f"file://{self.data_dir}"]

    def command(self) -> list[str]:
        exe = Path(sys.executable).with_name("kop")
        base = [str(exe)] if exe.exists() else [sys.executable, "-m", "kop"]
        return [
            *base,
            "serve",
            "--listeners",
            ",".join(self.listeners()),
            *self.storage_args(),
            *self.extra_args,
        ]

    def listeners(self) -> list[str]:
        """The ``listeners`` option, else ``PLAINTEXT`` on ``self.port`` then the config's
        ``extra_listeners`` (free ports are picked for ``NAME://host:0``)."""
        if "listeners" in self.config:
            return list(self.config["listeners"])
        resolved = [_with_free_port(lis) for lis in self.config.get("extra_listeners", [])]
        self.config["extra_listeners"] = resolved
        return [f"PLAINTEXT://{HOST}:{self.port}", *resolved]

    def start(self) -> None:
        self.spawn()
        self.wait_serving(30.0)

    def spawn(self) -> None:
        """Start the process without waiting for it to serve. The calling thread must outlive
        it: the child is killed when the thread that started it ends (``_die_with_parent``)."""
        check_kop_importable()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOP_")}
        env.setdefault("RUST_BACKTRACE", "1")
        command = self.command()
        for key, value in self.config.items():
            if key not in ("extra_listeners", "listeners"):
                env["KOP_" + key.upper()] = _text(value)
        env.update(self.extra_env)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - kept open while running
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=self._log_fh,
            env=env,
            cwd=self.data_dir.parent,
            preexec_fn=_die_with_parent,
        )

    def wait_serving(self, timeout: float) -> None:
        try:
            proc = self.proc
            assert proc is not None
            wire.wait_until_serving(HOST, self.port, timeout, alive=lambda: proc.poll() is None)
        except BaseException as err:
            self._reap(signal.SIGKILL, 5)
            raise RuntimeError(f"kop serve did not come up: {err}\n{self.log_tail()}") from err

    def _reap(self, sig: int, timeout: float) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                self.proc = None
                self._close_log()
                raise RuntimeError(
                    f"kop serve ignored signal {sig} for {timeout}s; killed\n{self.log_tail()}"
                ) from None
        self.proc = None
        self._close_log()
        return proc.returncode

    def _close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def stop(self) -> None:
        rc = self._reap(signal.SIGTERM, 30)
        if rc not in (None, 0, -signal.SIGTERM):
            raise RuntimeError(f"kop serve exited with {rc} on SIGTERM\n{self.log_tail()}")

    def kill(self) -> None:
        self._reap(signal.SIGKILL, 10)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


class KopPulsar(KopCli):
    """``kop serve`` on Pulsar. The namespace is derived from the data directory, so a restart
    of the same handle (or a second handle on the same directory) sees the same data."""

    target = "kop-pulsar"

    def __init__(
        self,
        data_dir: Path,
        config: dict[str, Any],
        service: Any = None,
        namespace: str | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        super().__init__(data_dir, config, env, args)
        self.service = service  # a helpers.pulsar.PulsarService; None = the session's
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
        self.namespace = namespace or f"kop-test-{digest}"

    def storage_args(self) -> list[str]:
        from helpers.pulsar import pulsar_service

        service = self.service or pulsar_service()
        return [
            "--storage",
            service.url,
            "--pulsar-admin-url",
            service.admin_url,
            "--pulsar-namespace",
            self.namespace,
        ]


class KopEmbedded(ServerHandle):
    """``kop.Server`` in this process; ``hooks`` are its Python hooks (``authorizer=``,
    ``authenticator=``, ...). ``server`` is the running ``kop.Server``."""

    target = "kop-embedded"

    def __init__(
        self, data_dir: Path, config: dict[str, Any], hooks: dict[str, Any] | None = None
    ) -> None:
        super().__init__(data_dir, config)
        self.hooks = dict(hooks or {})
        self.server: Any = None
        self.bound: dict[str, str] = {}

    def start(self) -> None:
        check_kop_importable()
        import kop

        options = dict(self.config)
        extra = options.pop("extra_listeners", [])
        listeners = options.pop("listeners", None) or [f"PLAINTEXT://{HOST}:0", *extra]
        cfg = kop.Config(listeners=listeners, storage=f"file://{self.data_dir}", **options)
        self.server = kop.Server(cfg, **self.hooks)
        self.server.start()
        self.port = int(self.server.port)
        self.bound = {name: f"{HOST}:{port}" for name, _, port in self.server.bound_addresses}
        assert self.server.bootstrap_servers == f"{HOST}:{self.port}", self.server.bootstrap_servers
        wire.wait_until_serving(HOST, self.port, 30.0)

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()

    def address_of(self, listener: str) -> str:
        return str(self.bound[listener])


class Kafka(ServerHandle):
    target = "kafka"
    can_kill = True

    def __init__(self, data_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(data_dir, config)
        self.port = free_port()
        self.controller_port = free_port()  # stable: the KRaft voter set records it
        self.running = False

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        props = []
        for key, value in self.config.items():
            if key not in _KAFKA_PROPS:
                raise ValueError(f"no Apache Kafka equivalent known for kop option {key!r}")
            props.append(f"{_KAFKA_PROPS[key]}={_text(value)}")
        env["KAFKA_EXTRA_PROPS"] = "\n".join(props)
        env["KAFKA_CONTROLLER_PORT"] = str(self.controller_port)
        return env

    def start(self) -> None:
        out = subprocess.run(
            [str(KAFKA_SH), "start", str(self.data_dir), str(self.port)],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if out.returncode != 0:
            raise RuntimeError(f"scripts/kafka.sh start failed:\n{out.stdout}\n{out.stderr}")
        self.running = True
        wire.wait_until_serving(HOST, self.port, 30.0)

    def stop(self) -> None:
        subprocess.run(
            [str(KAFKA_SH), "stop", str(self.data_dir)], check=True, timeout=120, text=True
        )
        self.running = False

    def kill(self) -> None:
        pid_file = self.data_dir / "kafka.pid"
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        self.running = False

    def log_text(self) -> str:
        try:
            return (self.data_dir / "kafka.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


def make_server(
    target: str,
    data_dir: Path,
    *,
    hooks: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    service: Any = None,
    namespace: str | None = None,
    **config: Any,
) -> ServerHandle:
    """A server of ``target`` on ``data_dir`` (created), not started. Besides kop options:
    ``hooks`` (kop-embedded: kop.Server's Python hooks), ``env``/``args`` (kop-cli and
    kop-pulsar: extra environment and command-line options), ``service``/``namespace``
    (kop-pulsar: a PulsarService other than the session's, a namespace to share)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    given = {
        "hooks": hooks is not None,
        "env": env is not None,
        "args": args is not None,
        "service": service is not None,
        "namespace": namespace is not None,
    }
    allowed = {
        "kop-cli": {"env", "args"},
        "kop-embedded": {"hooks"},
        "kop-pulsar": {"env", "args", "service", "namespace"},
        "kafka": set(),
    }[target]
    unsupported = sorted(k for k, v in given.items() if v and k not in allowed)
    if unsupported:
        raise ValueError(f"{target}: {unsupported} not supported")
    if target == "kop-cli":
        return KopCli(data_dir, config, env=env, args=args)
    if target == "kop-embedded":
        return KopEmbedded(data_dir, config, hooks=hooks)
    if target == "kop-pulsar":
        return KopPulsar(data_dir, config, service=service, namespace=namespace, env=env, args=args)
    return Kafka(data_dir, config)


def start_server(target: str, data_dir: Path, **options: Any) -> ServerHandle:
    """``make_server``, started. A kop that is not built fails the test (a skip with
    ``KOP_ALLOW_MISSING=1``)."""
    srv = make_server(target, data_dir, **options)
    try:
        srv.start()
    except MissingKop as err:
        if ALLOW_MISSING:
            pytest.skip(f"{target}: {err} (KOP_ALLOW_MISSING=1)")
        pytest.fail(f"{target}: {err} (set KOP_ALLOW_MISSING=1 to skip kop targets)")
    return srv
