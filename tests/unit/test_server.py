"""kop.Server against the fake native module (the real one is covered by tests/e2e)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

import pytest

from kop import Config, ConfigError, Server

from .fake_native import FakeNativeServer

Fake = type[FakeNativeServer]
CFG = Config(listeners=["PLAINTEXT://127.0.0.1:0", "INTERNAL://[::1]:9093"], storage="memory://")


@pytest.mark.parametrize(
    "hook", ["authenticator", "authorizer", "scram_credentials", "oauthbearer_validator"]
)
def test_hooks_reach_the_native_server(hook: str, fake_native: Fake) -> None:
    server = Server(CFG, **{hook: lambda *a: True})
    server.start()
    (native,) = fake_native.instances
    assert getattr(native, hook) is not None
    # the native side is told a Python hook decides
    assert native.config[hook] == "python"
    server.stop()


def test_hooks_load_from_module_callable(fake_native: Fake) -> None:
    cfg = Config(
        storage="memory://",
        authorizer="json:dumps",
        authenticator="json:loads",
        scram_credentials="json:load",
        oauthbearer_validator="json:dump",
    )
    server = Server(cfg)
    server.start()
    (native,) = fake_native.instances
    assert native.authorizer is not None and native.authenticator is not None
    assert native.scram_credentials is not None and native.oauthbearer_validator is not None
    assert native.config["scram_credentials"] == "python"
    server.stop()


def test_start_passes_config_and_log_level(fake_native: Fake) -> None:
    server = Server(Config(storage="memory://", log_level="debug", num_partitions=9))
    server.start()
    (native,) = fake_native.instances
    assert native.config["num_partitions"] == 9
    assert native.config["storage"] == "memory://"
    assert fake_native.log_levels == ["debug"]
    assert server.is_running
    server.stop()


def test_addresses_and_bootstrap(fake_native: Fake, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kop"), Server(CFG) as server:
        assert server.bound_addresses == [
            ("PLAINTEXT", "127.0.0.1", 40000),
            ("INTERNAL", "::1", 9093),
        ]
        assert server.port == 40000
        assert server.bootstrap_servers == "127.0.0.1:40000"
    assert "kop listening on PLAINTEXT://127.0.0.1:40000" in caplog.text
    assert "kop listening on INTERNAL://[::1]:9093" in caplog.text


@pytest.mark.parametrize(
    ("listener", "bootstrap"),
    [
        ("PLAINTEXT://0.0.0.0:9092", "127.0.0.1:9092"),
        ("PLAINTEXT://[::]:9092", "[::1]:9092"),
        ("PLAINTEXT://[::1]:9092", "[::1]:9092"),
        ("PLAINTEXT://localhost:9092", "localhost:9092"),
    ],
)
def test_bootstrap_servers_is_connectable(fake_native: Fake, listener: str, bootstrap: str) -> None:
    with Server(Config(listeners=[listener], storage="memory://")) as server:
        assert server.bootstrap_servers == bootstrap


def test_not_started(fake_native: Fake) -> None:
    server = Server(CFG)
    assert not server.is_running
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    server.stop()  # a no-op, not an error


def test_bridge_stats_are_the_native_pool_s(fake_native: Fake) -> None:
    server = Server(CFG)
    assert server.bridge_stats() == {"queued": 0, "workers": 0, "busy": 0, "done": 0}
    with server:
        assert server.bridge_stats() == {"queued": 0, "workers": 1, "busy": 0, "done": 7}


def test_double_start_is_an_error(fake_native: Fake) -> None:
    with Server(CFG) as server, pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_failed_start_leaves_server_stopped(fake_native: Fake) -> None:
    fake_native.start_error = OSError(98, "Address already in use")
    server = Server(CFG)
    with pytest.raises(OSError, match="Address already in use"):
        server.start()
    assert not server.is_running


def test_stop_is_thread_safe_and_idempotent(fake_native: Fake) -> None:
    server = Server(CFG)
    server.start()
    threads = [threading.Thread(target=server.stop, args=(5.0,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (native,) = fake_native.instances
    assert native.stop_calls == [5.0]
    assert not server.is_running


def test_restart_after_stop(fake_native: Fake) -> None:
    server = Server(CFG)
    server.start()
    server.stop()
    server.start()
    assert server.is_running and len(fake_native.instances) == 2
    server.stop()


def test_serve_returns_when_stopped_from_another_thread(fake_native: Fake) -> None:
    server = Server(CFG)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threading.Timer(0.3, server.stop).start()
    started = time.monotonic()
    server.serve()
    assert time.monotonic() - started < 5
    assert not server.is_running
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_returns_on_signal(fake_native: Fake, signum: int) -> None:
    def send_signal(native: FakeNativeServer) -> None:
        # From inside wait(), i.e. only once serve() has installed its handlers.
        if native.wait_calls == 2:
            os.kill(os.getpid(), signum)

    fake_native.on_wait = staticmethod(send_signal)
    server = Server(CFG)
    server.serve(stop_timeout=7.0)
    (native,) = fake_native.instances
    assert native.stop_calls == [7.0]
    assert not server.is_running


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_storage_opens_stops_once_it_is_open(
    fake_native: Fake, signum: int, caplog: pytest.LogCaptureFixture
) -> None:
    def signal_during_start(native: FakeNativeServer) -> None:
        os.kill(os.getpid(), signum)

    fake_native.on_start = staticmethod(signal_during_start)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    server = Server(CFG)
    with caplog.at_level(logging.INFO, logger="kop"):
        server.serve(stop_timeout=4.0)
    (native,) = fake_native.instances
    assert native.stop_calls == [4.0]  # opened storage is closed in order (flushed)
    assert native.wait_calls == 0  # never served
    assert not server.is_running
    assert f"received {signal.Signals(signum).name}, stopping" in caplog.text
    assert "kop stopped" in caplog.text
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_stop_from_another_thread_during_start_stops_once_open(fake_native: Fake) -> None:
    server = Server(CFG)
    started = threading.Event()

    def slow_open(native: FakeNativeServer) -> None:
        started.set()
        time.sleep(0.3)

    fake_native.on_start = staticmethod(slow_open)
    stopper = threading.Thread(target=lambda: (started.wait(5), server.stop()))
    stopper.start()
    server.serve()
    stopper.join(5)
    (native,) = fake_native.instances
    assert native.stop_calls and not server.is_running


def test_serve_off_the_main_thread_installs_no_handlers(fake_native: Fake) -> None:
    server = Server(CFG)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.serve()
        except BaseException as err:  # signal.signal would raise ValueError here
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    while not server.is_running and thread.is_alive():
        time.sleep(0.01)
    server.stop()
    thread.join(5)
    assert not thread.is_alive() and errors == []


async def test_serve_async_stops_on_cancel(fake_native: Fake) -> None:
    server = Server(CFG)
    task = asyncio.create_task(server.serve_async(stop_timeout=3.0))
    for _ in range(100):
        if server.is_running:
            break
        await asyncio.sleep(0.01)
    assert server.is_running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (native,) = fake_native.instances
    assert native.stop_calls == [3.0]
    assert not server.is_running


async def test_serve_async_returns_when_stopped(fake_native: Fake) -> None:
    server = Server(CFG)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, server.stop)
    await asyncio.wait_for(server.serve_async(), timeout=5)
    assert not server.is_running


def test_oauthbearer_needs_keys_or_a_validator_hook(fake_native: Fake) -> None:
    cfg = Config(storage="memory://", sasl_enabled_mechanisms=["OAUTHBEARER"])
    with pytest.raises(ConfigError, match="oauthbearer_validator"):
        Server(cfg)
    Server(cfg, oauthbearer_validator=lambda token, conn: None)  # a hook is enough


def test_metrics_come_from_the_native_server(fake_native: Fake) -> None:
    server = Server(CFG)
    assert server.metrics() == "" and server.metrics_address is None
    server.start()
    assert "kop_fetch_sessions 0" in server.metrics()
    assert server.metrics_address is None
    server.stop()
