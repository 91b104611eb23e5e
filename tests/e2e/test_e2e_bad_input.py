"""Bad input over raw sockets: each gets an error code or a closed connection (never a hang),
a log line names the connection (kop-cli), and a librdkafka producer/consumer pair running the
whole time keeps working without a single error."""

from __future__ import annotations

import os
import re
import socket
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from helpers import ck, wire

CLOSE_TIMEOUT = 10.0


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


def _assert_logged(server, sock_port: int, timeout: float = 5.0) -> None:
    """kop-cli: a log line about the connection, naming its peer address."""
    if server.target != "kop-cli":
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
