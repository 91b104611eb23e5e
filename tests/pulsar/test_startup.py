"""`kop serve` started while Pulsar is not answering yet, against the real Pulsar standalone.

Pulsar "coming up" is a door in front of it: a TCP forwarder on its own ports (service and
admin) that refuses connections (nothing listens) until the test opens it, then forwards to
the session's Pulsar. kop is given the door's ports.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.pulsar import PulsarService
from helpers.servers import HOST, KopPulsar, free_port, make_server

pulsar = pytest.importorskip("pulsar")
ck_kafka = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.pulsar, pytest.mark.timeout(300)]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def door(port: int, upstream: tuple[str, int]) -> Iterator[None]:
    """Listen on ``port`` and forward every connection to ``upstream`` until the block ends."""
    server = socket.create_server((HOST, port))
    server.settimeout(0.2)
    open_ = True
    conns: list[socket.socket] = []

    def accept() -> None:
        while open_:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                up = socket.create_connection(upstream, timeout=10)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            client.settimeout(None)
            conns.extend((client, up))
            threading.Thread(target=_pump, args=(client, up), daemon=True).start()
            threading.Thread(target=_pump, args=(up, client), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        open_ = False
        thread.join(5)
        server.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()


def _host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname and parsed.port, url
    return parsed.hostname, parsed.port


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _attempts(log: str) -> list[str]:
    return re.findall(r"waiting for Pulsar \(attempt \d+,[^\n]*", log)


def _kop_behind_doors(tmp_path: Path, timeout_ms: int) -> tuple[KopPulsar, int, int]:
    service_port, admin_port = free_port(), free_port()
    closed = PulsarService(
        url=f"pulsar://{HOST}:{service_port}",
        admin_url=f"http://{HOST}:{admin_port}",
        data_dir=None,
    )
    srv = make_server(
        "kop-pulsar", tmp_path / "kop", service=closed, pulsar_startup_timeout_ms=timeout_ms
    )
    assert isinstance(srv, KopPulsar)
    return srv, service_port, admin_port


def _wait_attempts(srv: KopPulsar, n: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _attempts(srv.log_text())
        if len(found) >= n:
            return found
        assert srv.proc is not None and srv.proc.poll() is None, srv.log_tail()
        # Meanwhile the Kafka port must not pretend to be ready.
        assert not _accepts(srv.port), "the Kafka port accepts connections before storage"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} attempts logged:\n{srv.log_tail()}")


def test_kop_started_before_pulsar_waits_and_serves_once_pulsar_answers(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    srv, service_port, admin_port = _kop_behind_doors(tmp_path, timeout_ms=120_000)
    srv.spawn()
    try:
        attempts = _wait_attempts(srv, 3)
        assert "Connection refused" in attempts[0], attempts
        with (
            door(service_port, _host_port(pulsar_service.url)),
            door(admin_port, _host_port(pulsar_service.admin_url)),
        ):
            opened = time.monotonic()
            srv.wait_serving(90)
            ready_after = time.monotonic() - opened
            log = srv.log_text()
            assert re.search(r"Pulsar \S+ \(admin \S+\) ready after \d+ attempts", log), log
            # The back-off is capped at 5 s: kop notices Pulsar soon after it answers.
            assert ready_after < 30, ready_after

            producer = ck_kafka.Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
            producer.produce("after-wait", b"hello", partition=0)
            assert producer.flush(60) == 0
            consumer = ck_kafka.Consumer(
                {
                    "bootstrap.servers": srv.bootstrap,
                    "group.id": "g",
                    "auto.offset.reset": "earliest",
                }
            )
            consumer.assign([ck_kafka.TopicPartition("after-wait", 0, 0)])
            msg = None
            deadline = time.monotonic() + 60
            while msg is None and time.monotonic() < deadline:
                msg = consumer.poll(1)
            consumer.close()
            assert msg is not None and msg.error() is None and msg.value() == b"hello"
            srv.stop()
    finally:
        if srv.is_running():
            srv.kill()


def test_kop_gives_up_after_the_deadline_with_one_error_line(tmp_path: Path) -> None:
    srv, service_port, admin_port = _kop_behind_doors(tmp_path, timeout_ms=4000)
    t0 = time.monotonic()
    srv.spawn()
    proc = srv.proc
    assert proc is not None
    ever_open = False
    while proc.poll() is None and time.monotonic() - t0 < 60:
        ever_open = ever_open or _accepts(srv.port)
        time.sleep(0.05)
    rc = proc.wait(5)
    took = time.monotonic() - t0
    log = srv.log_text()
    srv.proc = None
    srv._close_log()
    assert rc == 1, log
    assert 4 <= took < 20, (took, log)
    assert not ever_open
    assert len(_attempts(log)) >= 2, log
    errors = [line for line in log.splitlines() if line.startswith("kop: error:")]
    assert len(errors) == 1, log
    assert errors[0].startswith(
        f"kop: error: cannot start: Pulsar pulsar://{HOST}:{service_port} "
        f"(admin http://{HOST}:{admin_port}) not ready within 4 s"
    ), errors
    assert "last error:" in errors[0] and "Connection refused" in errors[0], errors
    assert "Traceback" not in log


def test_sigterm_while_waiting_for_pulsar_stops_at_once(tmp_path: Path) -> None:
    srv, _, _ = _kop_behind_doors(tmp_path, timeout_ms=120_000)
    srv.spawn()
    proc = srv.proc
    assert proc is not None
    try:
        _wait_attempts(srv, 2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    log = srv.log_text()
    srv.proc = None
    srv._close_log()
    assert rc == 0, log
    assert took < 5, took
    assert "received SIGTERM, stopping" in log
    assert "kop stopped during start-up" in log
    assert "Traceback" not in log and "kop: error" not in log
