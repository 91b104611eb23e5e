"""Bad input over raw sockets: each gets an error code or a closed connection (never a hang),
a log line names the connection (kop-cli), and a librdkafka producer/consumer pair running the
whole time keeps working without a single error. Clients that try to hold the server hostage
(issue 12: size prefixes without a body, crowds of unauthenticated connections, floods of bad
frames) leave the other clients their normal latency and the log bounded (docs/hardening.md)."""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import TARGETS
from helpers import ck, java, wire
from helpers.servers import HOST, ServerHandle, start_server

CLOSE_TIMEOUT = 10.0
# kop closes a connection that stalls mid-frame after this (frame_stall_timeout_ms).
STALL_S = 5.0
# This module's kop logs every bad-input line (each test finds the line naming its connection;
# the rate limit of the default is tested on a server of its own) and closes stalls after STALL_S.
KOP_CONFIG: dict[str, Any] = {
    "bad_input_log_interval_ms": 0,
    "frame_stall_timeout_ms": int(STALL_S * 1000),
}


@pytest.fixture(scope="module", params=TARGETS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    target = request.param
    if target == "kafka":
        java.fetch()
    config = {} if target == "kafka" else KOP_CONFIG
    srv = start_server(target, tmp_path_factory.mktemp(f"{target}-data"), **config)
    yield srv
    srv.stop()


class Background:
    """A producer (idempotent, acks=all) and an assigned consumer on their own topic."""

    def __init__(self, bootstrap: str) -> None:
        self.topic = ck.create_topic(bootstrap, ck.unique("bg"), 4)
        self.bootstrap = bootstrap
        self.acked: list[bytes] = []
        self.consumed: set[bytes] = set()
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._produce, daemon=True),
            threading.Thread(target=self._consume, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _produce(self) -> None:
        p = ck.producer(self.bootstrap, linger_ms=1)

        def cb(err, msg) -> None:
            if err is not None:
                self.errors.append(f"produce: {err}")
            else:
                self.acked.append(msg.value())

        i = 0
        while not self.stop.is_set():
            p.produce(self.topic, value=b"bg-%d" % i, partition=i % 4, on_delivery=cb)
            i += 1
            p.poll(0.005)
        if p.flush(30):
            self.errors.append("produce: records left unflushed")

    def _consume(self) -> None:
        c = ck.consumer(self.bootstrap)
        c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(4)])
        try:
            while not self.stop.is_set():
                for m in c.consume(num_messages=500, timeout=0.2):
                    err = m.error()
                    if err is None:
                        self.consumed.add(m.value())
                    elif err.code() != KafkaError._PARTITION_EOF:
                        self.errors.append(f"consume: {err}")
        finally:
            c.close()

    def assert_healthy(self, timeout: float = 20.0) -> None:
        """New records get acknowledged, and everything acknowledged so far is consumed."""
        start = len(self.acked)
        deadline = time.monotonic() + timeout
        while True:
            assert not self.errors, self.errors[:5]
            assert all(t.is_alive() for t in self.threads), "a background client thread died"
            acked = list(self.acked)
            if len(acked) >= start + 20 and self.consumed.issuperset(acked[:start]):
                return
            assert time.monotonic() < deadline, (
                f"background clients stalled: {len(acked) - start} new acks, "
                f"{len(set(acked[:start]) - self.consumed)} acked records not consumed"
            )
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


@pytest.fixture(scope="module")
def background(server):
    bg = Background(server.bootstrap)
    bg.assert_healthy()
    yield bg
    bg.close()


@pytest.fixture
def healthy(server, background):
    """Each test: background clients fine before and after; the server still answers."""
    background.assert_healthy()
    yield
    resp = wire.api_versions(server.host, server.port)
    assert resp.error_code == 0
    background.assert_healthy()


# The targets whose server is a `kop serve` process with a log to read.
SERVE_PROCESSES = ("kop-cli", "kop-pulsar")


def _assert_logged(server, sock_port: int, timeout: float = 5.0) -> None:
    """kop serve (kop-cli, kop-pulsar): a log line about the connection, naming its peer
    address."""
    if server.target not in SERVE_PROCESSES:
        return
    needle = re.compile(rf"127\.0\.0\.1:{sock_port}\b")
    deadline = time.monotonic() + timeout
    while not needle.search(server.log_text()):
        assert time.monotonic() < deadline, (
            f"no log line names 127.0.0.1:{sock_port} (the connection closed for bad input); "
            f"log tail:\n{server.log_tail(15)}"
        )
        time.sleep(0.05)


def _closed_after(server, data: bytes, *, shutdown_write: bool = False) -> bytes:
    """Send data on a fresh connection; the server must close it. Returns bytes it sent
    before closing (asserted empty by callers that expect no answer)."""
    with wire.connect(server.host, server.port) as sock:
        port = sock.getsockname()[1]
        try:
            wire.send_all(sock, data)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except wire.ConnectionClosed:
            pass
        got = wire.expect_closed(sock, CLOSE_TIMEOUT)
    _assert_logged(server, port)
    return got


pytestmark = pytest.mark.usefixtures("healthy")


def test_negative_frame_size(server):
    assert _closed_after(server, wire.i32(-1) + b"\x00" * 16) == b""


def test_min_negative_frame_size(server):
    assert _closed_after(server, wire.i32(-(2**31))) == b""


def test_zero_frame_size(server):
    assert _closed_after(server, wire.i32(0) + wire.i32(0)) == b""


def test_frame_above_max_request_bytes(server):
    """Just above the 100 MiB default: closed from the size prefix alone, no body sent."""
    assert _closed_after(server, wire.i32(104_857_601)) == b""


def test_huge_frame_size(server):
    assert _closed_after(server, wire.i32(2**31 - 1)) == b""


def test_truncated_frame_then_eof(server):
    """A size prefix promising 100 bytes, 10 bytes, then the client half-closes."""
    frame = wire.request(wire.API_API_VERSIONS, 0, 1, b"")
    data = wire.i32(100) + frame[4:14]
    assert _closed_after(server, data, shutdown_write=True) == b""


def test_truncated_request_body(server):
    """A complete frame whose Metadata v1 body promises 5 topic names and has none."""
    frame = wire.request(wire.API_METADATA, 1, 2, wire.i32(5))
    assert _closed_after(server, frame) == b""


def test_frame_shorter_than_request_header(server):
    assert _closed_after(server, wire.i32(3) + b"\x00\x12\x00") == b""


def test_http_request(server):
    """Garbage: an HTTP request (its first 4 bytes read as a ~1.1 GB size)."""
    assert _closed_after(server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == b""


def test_random_garbage_in_a_frame(server):
    """A well-sized frame of random bytes whose api key is not a Kafka API."""
    body = b"\x7f\x3c" + os.urandom(62)
    assert _closed_after(server, wire.i32(len(body)) + body) == b""


def test_unknown_api_key(server):
    frame = wire.request(9999, 0, 3, b"")
    assert _closed_after(server, frame) == b""


def test_api_versions_unsupported_version(server):
    """ApiVersions at a version nobody supports: UNSUPPORTED_VERSION (35) in a v0 answer that
    lists (at least) ApiVersions' own range, correlation id echoed; the connection stays
    usable. (Apache Kafka lists only ApiVersions in that answer.)"""
    with wire.connect(server.host, server.port) as sock:
        wire.send_all(sock, wire.request(wire.API_API_VERSIONS, 999, 4242, b"\x00" * 8))
        resp = wire.parse_api_versions_v0(wire.read_frame(sock, CLOSE_TIMEOUT))
        assert resp.correlation_id == 4242
        assert resp.error_code == wire.ERR_UNSUPPORTED_VERSION
        assert wire.API_API_VERSIONS in resp.api_keys
        lo, hi = resp.api_keys[wire.API_API_VERSIONS]
        assert lo == 0 and hi >= 3, resp.api_keys
        # same connection, a proper request now
        wire.send_all(
            sock,
            wire.request(wire.API_API_VERSIONS, 3, 5, wire.api_versions_v3_body(), flexible=True),
        )
        ok = wire.parse_api_versions_v3(wire.read_frame(sock, CLOSE_TIMEOUT))
        assert (ok.correlation_id, ok.error_code) == (5, 0)
        assert ok.api_keys[wire.API_API_VERSIONS] == (lo, hi)
        assert set(resp.api_keys) <= set(ok.api_keys)


def test_produce_corrupt_crc(server):
    """A v2 batch whose CRC-32C does not match: CORRUPT_MESSAGE (2), nothing appended; the
    same batch with the right CRC is accepted (so it is the CRC that is checked)."""
    topic = ck.create_topic(server.bootstrap, ck.unique("crc"), 1)
    batch = wire.record_batch([(b"k1", b"value-1"), (None, b"value-2")])

    bad = wire.produce(server.host, server.port, topic, 0, wire.corrupt_payload(batch))
    assert bad.error_code == wire.ERR_CORRUPT_MESSAGE, bad
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 0)}

    good = wire.produce(server.host, server.port, topic, 0, batch)
    assert (good.error_code, good.base_offset) == (0, 0), good
    got = ck.consume_all(server.bootstrap, topic, partitions=[0])[0]
    assert [(g.offset, g.key, g.value) for g in got] == [
        (0, b"k1", b"value-1"),
        (1, None, b"value-2"),
    ]


def test_many_bad_connections_at_once(server):
    """Thirty bad connections in parallel, then a good one on the same server."""
    socks = [wire.connect(server.host, server.port) for _ in range(30)]
    try:
        for i, s in enumerate(socks):
            s.sendall(wire.i32(-1 - i) if i % 2 else wire.request(9000 + i, 0, i, b""))
        for s in socks:
            assert wire.expect_closed(s, CLOSE_TIMEOUT) == b""
    finally:
        for s in socks:
            s.close()
    assert wire.api_versions(server.host, server.port).error_code == 0


@pytest.mark.parametrize("version", [0, 1, 2])
def test_produce_v0_to_v2(server, version):
    """Produce v0-v2 is advertised (KAFKA-18659) but not served: kop answers
    UNSUPPORTED_VERSION (35) for the partition; Apache Kafka 4.1 closes the connection.
    Either way nothing is appended."""
    topic = ck.create_topic(server.bootstrap, ck.unique("oldproduce"), 1)
    body = (
        wire.i16(-1)  # acks
        + wire.i32(5000)
        + wire.i32(1)
        + wire.string(topic)
        + wire.i32(1)
        + wire.i32(0)
        + wire.nbytes(wire.record_batch([(b"k", b"v")]))
    )
    with wire.connect(server.host, server.port) as sock:
        wire.send_all(sock, wire.request(wire.API_PRODUCE, version, 77, body))
        if server.target == "kafka":
            assert wire.expect_closed(sock, CLOSE_TIMEOUT) == b""
        else:
            r = wire._Reader(wire.read_frame(sock, CLOSE_TIMEOUT))
            assert r.i32() == 77
            assert r.i32() == 1 and r.string() == topic
            assert r.i32() == 1 and r.i32() == 0
            assert r.i16() == wire.ERR_UNSUPPORTED_VERSION
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 0)}


def test_idempotent_sequence_checks(server):
    """Raw idempotent produce: a resent batch is answered as a duplicate (no error, its
    original offset, nothing appended twice); a sequence gap gets OUT_OF_ORDER_SEQUENCE_NUMBER."""
    topic = ck.create_topic(server.bootstrap, ck.unique("seq"), 1)
    pid, epoch = wire.init_producer_id(server.host, server.port)
    assert pid >= 0 and epoch >= 0

    def batch(seq: int, n: int) -> bytes:
        recs = [(b"k%d" % (seq + i), b"v%d" % (seq + i)) for i in range(n)]
        return wire.record_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq)

    first = wire.produce(server.host, server.port, topic, 0, batch(0, 3))
    assert (first.error_code, first.base_offset) == (0, 0), first
    second = wire.produce(server.host, server.port, topic, 0, batch(3, 2))
    assert (second.error_code, second.base_offset) == (0, 3), second

    dup = wire.produce(server.host, server.port, topic, 0, batch(3, 2))
    assert (dup.error_code, dup.base_offset) == (0, 3), dup

    gap = wire.produce(server.host, server.port, topic, 0, batch(9, 1))
    assert gap.error_code == wire.ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, gap

    nxt = wire.produce(server.host, server.port, topic, 0, batch(5, 1))
    assert (nxt.error_code, nxt.base_offset) == (0, 5), nxt
    got = ck.consume_all(server.bootstrap, topic, partitions=[0])[0]
    assert [(g.offset, g.value) for g in got] == [(i, b"v%d" % i) for i in range(6)]


# ---- clients that try to hold the server hostage (issue 12) --------------------------------

PROBE_TIMEOUT = 10.0


def _collect(into: list[Any]) -> Any:
    return lambda err, _msg: into.append(err)


def worst_round_trip(
    conf: dict[str, Any], topic: str, producer: Producer, samples: int = 5
) -> float:
    """The slowest of ``samples`` round trips of real clients, in seconds (inf if one does not
    complete within PROBE_TIMEOUT): a new AdminClient's metadata (a new connection: connect,
    ApiVersions, SASL if configured, Metadata) plus an acks=all produce of a connected producer."""
    worst = 0.0
    for i in range(samples):
        started = time.monotonic()
        try:
            md = AdminClient(conf).list_topics(topic, timeout=PROBE_TIMEOUT)
            assert md.topics[topic].error is None
        except KafkaException:
            return math.inf
        delivered: list[Any] = []
        producer.produce(topic, b"probe-%d" % i, on_delivery=_collect(delivered))
        if producer.flush(PROBE_TIMEOUT) or delivered != [None]:
            return math.inf
        worst = max(worst, time.monotonic() - started)
    return worst


def assert_normal(baseline: float, during: float, what: str) -> None:
    print(
        f"{what}: slowest round trip {baseline * 1e3:.1f} ms before, {during * 1e3:.1f} ms during"
    )
    assert during < 1.0 + 5 * baseline, (
        f"{what}: a real client's round trip took {during:.3f}s during the attack "
        f"(baseline {baseline:.3f}s)"
    )


def hostile(port: int, n: int, data: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = wire.connect(HOST, port)
        s.sendall(data)
        socks.append(s)
    return socks


def expect_all_closed(socks: list[socket.socket], timeout: float) -> float:
    """Every socket is closed by the server within ``timeout`` (from now); returns how long
    the last one took."""
    started = time.monotonic()
    for s in socks:
        remaining = max(0.1, timeout - (time.monotonic() - started))
        assert wire.expect_closed(s, remaining) == b""
    return time.monotonic() - started


def test_stalled_100mb_size_prefixes_do_not_hold_other_clients(server, background):
    """Three connections send a 100 MB size prefix and nothing else. Other clients, connected
    or new, keep their normal latency (Apache Kafka too); kop closes the three after
    frame_stall_timeout_ms and logs it, naming each."""
    topic = ck.create_topic(server.bootstrap, ck.unique("probe"), 1)
    conf = {"bootstrap.servers": server.bootstrap}
    producer = ck.producer(server.bootstrap)
    baseline = worst_round_trip(conf, topic, producer)
    started = time.monotonic()
    socks = hostile(server.port, 3, wire.i32(100_000_000))
    try:
        time.sleep(0.5)
        during = worst_round_trip(conf, topic, producer)
        background.assert_healthy()
        assert_normal(baseline, during, f"{server.target}, 3 x 100 MB stalled prefixes")
        if server.target == "kafka":
            return  # Kafka keeps them until connections.max.idle.ms
        ports = [s.getsockname()[1] for s in socks]
        expect_all_closed(socks, STALL_S + CLOSE_TIMEOUT)
        assert time.monotonic() - started >= STALL_S - 0.5, "closed before the stall timeout"
        for port in ports:
            _assert_logged(server, port)
        if server.target in SERVE_PROCESSES:
            assert "stalled mid-frame" in server.log_text()
    finally:
        for s in socks:
            s.close()
    assert worst_round_trip(conf, topic, producer) < 1.0 + 5 * baseline


SASL_USER = ("alice", "alice-secret")


@pytest.fixture
def sasl_kop(server, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An embedded kop with a PLAINTEXT and a SASL_PLAINTEXT listener (default limits, stalls
    closed after STALL_S); yields listener name -> host:port. Runs once per session's kop
    (on the kop-embedded target): Apache Kafka from scripts/kafka.sh has no SASL listener."""
    if server.target != "kop-embedded":
        pytest.skip("an embedded kop with a SASL listener; runs on the kop-embedded target")
    srv = start_server(
        "kop-embedded",
        tmp_path / "sasl-data",
        extra_listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
        sasl_users=[":".join(SASL_USER)],
        num_partitions=1,
        frame_stall_timeout_ms=int(STALL_S * 1000),
    )
    try:
        yield {"PLAINTEXT": srv.bootstrap, "SASL_PLAINTEXT": srv.address_of("SASL_PLAINTEXT")}
    finally:
        srv.stop()


def test_520_unauthenticated_512kib_prefixes_on_a_sasl_listener(sasl_kop):
    """520 connections on a SASL listener, each a 512 KiB size prefix before logging in (more
    than the old shared pool of 256 MiB). Logins, requests of logged-in clients and clients of
    the other listener keep their normal latency; the 520 are closed after the stall timeout."""
    sasl_conf = {
        "bootstrap.servers": sasl_kop["SASL_PLAINTEXT"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": SASL_USER[0],
        "sasl.password": SASL_USER[1],
    }
    plain_conf = {"bootstrap.servers": sasl_kop["PLAINTEXT"]}
    topic = ck.create_topic(sasl_kop["PLAINTEXT"], ck.unique("probe"), 1)
    sasl_producer = Producer(sasl_conf)
    plain_producer = Producer(plain_conf)
    baseline_sasl = worst_round_trip(sasl_conf, topic, sasl_producer)
    baseline_plain = worst_round_trip(plain_conf, topic, plain_producer)
    port = int(sasl_kop["SASL_PLAINTEXT"].rsplit(":", 1)[1])
    socks = hostile(port, 520, wire.i32(524_288))
    try:
        time.sleep(0.5)
        during_sasl = worst_round_trip(sasl_conf, topic, sasl_producer)
        during_plain = worst_round_trip(plain_conf, topic, plain_producer)
        assert_normal(baseline_sasl, during_sasl, "SASL login + produce, 520 x 512 KiB pre-auth")
        assert_normal(baseline_plain, during_plain, "PLAINTEXT, 520 x 512 KiB pre-auth")
        expect_all_closed(socks, STALL_S + 2 * CLOSE_TIMEOUT)
    finally:
        for s in socks:
            s.close()
    assert worst_round_trip(sasl_conf, topic, sasl_producer) < 1.0 + 5 * baseline_sasl


def _bad_input_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "closing connection" in ln and "127.0.0.1:" in ln]


@pytest.mark.kop_process
def test_a_flood_of_malformed_frames_logs_a_bounded_number_of_lines(server, server_factory):
    """One peer opens connection after connection, each with a frame of an unknown API key, for
    3 seconds. With the default bad_input_log_interval_ms (10 s) the log gets the first line;
    the next line, 10 s later, carries the count of the lines left out."""
    if server.target != "kop-cli":
        pytest.skip("reads the log of a kop serve process")
    srv = server_factory("kop-cli", "flood")
    garbage = wire.request(9999, 0, 1, b"")
    sent = 0
    log_before = len(srv.log_text())
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        with wire.connect(srv.host, srv.port) as sock:
            wire.send_all(sock, garbage)
            assert wire.expect_closed(sock, CLOSE_TIMEOUT) == b""
        sent += 1
    time.sleep(0.5)
    flood_log = srv.log_text()[log_before:]
    lines = _bad_input_lines(flood_log)
    print(f"{sent} malformed frames in 3 s: {len(lines)} log lines, {len(flood_log)} bytes of log")
    assert sent > 100, "the flood was too slow to mean anything"
    assert len(lines) == 1, lines[:5]
    assert len(flood_log) < 2000, flood_log[:2000]
    # 10 s after the first line the next one is written, with the count of those left out.
    time.sleep(max(0.0, started + 10.2 - time.monotonic()))
    with wire.connect(srv.host, srv.port) as sock:
        wire.send_all(sock, garbage)
        wire.expect_closed(sock, CLOSE_TIMEOUT)
    deadline = time.monotonic() + 5
    while len(_bad_input_lines(srv.log_text()[log_before:])) < 2:
        assert time.monotonic() < deadline, srv.log_tail(5)
        time.sleep(0.05)
    last = _bad_input_lines(srv.log_text()[log_before:])[1]
    assert re.search(rf"suppressed={sent - 1}\b", last), last
