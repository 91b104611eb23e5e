"""Bad input over raw sockets: each gets an error code or a closed connection (never a hang),
a log line names the connection (kop-cli), and a librdkafka producer/consumer pair running the
whole time keeps working without a single error. Clients that try to hold the server hostage
(issue 12: size prefixes without a body, crowds of unauthenticated connections, floods of bad
frames) leave the other clients their normal latency and the log bounded (docs/hardening.md)."""

from __future__ import annotations

import gzip
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lz4.frame
import pytest
import snappy
import zstandard
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import TARGETS, start_server
from helpers import ck, java, wire
from helpers.data import Rec
from helpers.servers import HOST, ServerHandle

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


# ---- record batch validation (Kafka's LogValidator) ---------------------------------------
#
# Each case: two good records from a librdkafka producer, the bad batch over a raw Produce v8
# (its CRC valid unless the case is about the CRC), two more good records. The bad batch gets
# Kafka's error code, the log end offset does not move, and a librdkafka consumer reads the
# four good records at offsets 0-3. Every expected code was checked against Apache Kafka 4.4
# (KOP_TEST_TARGETS=kafka); where kop deliberately differs the case says so.

R3 = [(b"k0", b"v0"), (None, b"v1"), (b"k2", b"v2")]
GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
CODECS = {0: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
ERR_UNKNOWN_SERVER_ERROR = -1


def _records(rs: list[tuple[bytes | None, bytes | None]]) -> bytes:
    return b"".join(wire.record(i, k, v) for i, (k, v) in enumerate(rs))


def _raw_record(size: int, fields: bytes) -> bytes:
    return wire.varint(size) + fields


# attributes, offset delta 0, timestamp delta 0, null key, value "v", no headers
_FIELDS = wire.i8(0) + wire.varint(0) + wire.varint(0) + wire.varint(-1) + wire.varint(1) + b"v"
_ONE = _FIELDS + wire.varint(0)


def _bad_batches() -> dict[str, tuple[bytes, int | dict[str, int]]]:
    """name -> (partition records, expected error code, or per target where kop differs)."""
    one = [(None, b"v")]
    gz = gzip.compress(_records(R3))
    cases: dict[str, tuple[bytes, int | dict[str, int]]] = {
        # 3 records claiming 2^31-1 (with a matching offset range): the log end would jump.
        "count_lies": (
            wire.record_batch(R3, count=2**31 - 1, last_offset_delta=2**31 - 2),
            wire.ERR_INVALID_RECORD,
        ),
        "count_too_small": (wire.record_batch(R3, count=2, last_offset_delta=1), 87),
        "offset_range_disagrees_with_count": (wire.record_batch(R3, last_offset_delta=5), 87),
        "record_size_too_big": (
            wire.record_batch(one, payload=_raw_record(len(_ONE) + 1, _ONE)),
            87,
        ),
        "record_size_too_small": (
            wire.record_batch(one, payload=_raw_record(len(_ONE) - 1, _ONE)),
            87,
        ),
        "negative_header_count": (
            wire.record_batch(one, payload=_raw_record(len(_ONE), _FIELDS + wire.varint(-1))),
            87,
        ),
        "varint_too_long": (
            wire.record_batch(
                one,
                payload=_raw_record(
                    len(_ONE) + 5, _ONE[:3] + b"\x80\x80\x80\x80\x80\x00" + _ONE[4:]
                ),
            ),
            87,
        ),
        "gzip_count_lies": (
            wire.record_batch(
                R3, attributes=GZIP, payload=gz, count=2**31 - 1, last_offset_delta=2**31 - 2
            ),
            87,
        ),
        "control_batch": (wire.record_batch(R3, attributes=0x20), 87),
        "producer_id_without_sequence": (
            wire.record_batch(R3, producer_id=1000, producer_epoch=0, base_sequence=-1),
            87,
        ),
        "base_offset_not_zero": (wire.record_batch(R3, base_offset=7), 87),
        "magic_1": (wire.record_batch(R3, magic=1), 87),
        "magic_3": (wire.record_batch(R3, magic=3), wire.ERR_CORRUPT_MESSAGE),
        "two_batches": (wire.record_batch(R3) + wire.record_batch(R3), 87),
        "no_batch": (b"", 87),
        "crc": (wire.corrupt_payload(wire.record_batch(R3)), wire.ERR_CORRUPT_MESSAGE),
        "codec_5": (wire.record_batch(R3, attributes=5), ERR_UNKNOWN_SERVER_ERROR),
        "timestamp_2h_ahead": (
            wire.record_batch(R3, timestamp_deltas=[0, 2 * 3600 * 1000, 0]),
            wire.ERR_INVALID_TIMESTAMP,
        ),
        # kop refuses offset deltas other than 0, 1, 2, ...: Kafka 4.4 stores an uncompressed
        # batch with them as it is (consumers then see offsets the batch does not cover), and
        # fails a compressed one with UNKNOWN_SERVER_ERROR (an internal exception).
        "offset_deltas_not_consecutive": (
            wire.record_batch(
                [(None, b"a"), (None, b"b")],
                payload=wire.record(0, None, b"a") + wire.record(5, None, b"b"),
            ),
            {"kafka": 0, "kop": 87},
        ),
        "gzip_offset_deltas_not_consecutive": (
            wire.record_batch(
                [(None, b"a"), (None, b"b")],
                attributes=GZIP,
                payload=gzip.compress(wire.record(0, None, b"a") + wire.record(5, None, b"b")),
            ),
            {"kafka": ERR_UNKNOWN_SERVER_ERROR, "kop": 87},
        ),
    }
    # A payload that does not decompress: Kafka 4.4 answers UNKNOWN_SERVER_ERROR.
    for codec in (GZIP, SNAPPY, LZ4, ZSTD):
        cases[f"{CODECS[codec]}_garbage"] = (
            wire.record_batch(R3, attributes=codec, payload=b"no compressed stream here, " * 3),
            ERR_UNKNOWN_SERVER_ERROR,
        )
    return cases


BAD = _bad_batches()


def _produce(*args: Any, **kwargs: Any) -> wire.PartitionProduceResult:
    """wire.produce, retried while a new topic's partition has no leader yet (Apache Kafka
    answers NOT_LEADER_OR_FOLLOWER for a moment after CreateTopics)."""
    deadline = time.monotonic() + 15
    while True:
        r = wire.produce(*args, **kwargs)
        if r.error_code not in (3, 6) or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def _produce_request(host: str, port: int, body: bytes) -> list[wire.PartitionProduceResult]:
    deadline = time.monotonic() + 15
    while True:
        results = wire.produce_request(host, port, body)
        if all(r.error_code not in (3, 6) for r in results) or time.monotonic() > deadline:
            return results
        time.sleep(0.2)


def _expected(server, code: int | dict[str, int]) -> int:
    if isinstance(code, int):
        return code
    return code["kafka" if server.target == "kafka" else "kop"]


def _good(server, topic: str, first: int, codec: str = "none") -> None:
    """Two records from librdkafka (acks=all), at offsets first and first+1."""
    acks = ck.produce(
        server.bootstrap,
        topic,
        [Rec(0, b"good-%d" % i, b"value-%d" % i) for i in (first, first + 1)],
        compression_type=codec,
        acks="all",
    )
    assert not acks.errors, acks.errors
    assert sorted(acks.offsets.values()) == [(0, first), (0, first + 1)], acks.offsets


def _assert_only_good(server, topic: str) -> None:
    """The partition holds exactly the four good records at offsets 0-3, readable by librdkafka."""
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 4)}
    got = ck.consume_all(server.bootstrap, topic, partitions=[0], timeout=60)[0]
    assert [(g.offset, g.value) for g in got] == [(i, b"value-%d" % i) for i in range(4)]


@pytest.mark.parametrize("case", sorted(BAD))
def test_produce_refuses_invalid_batch(server, case):
    records, code = BAD[case]
    expected = _expected(server, code)
    codec = "gzip" if case.startswith("gzip") else "none"
    topic = ck.create_topic(server.bootstrap, ck.unique("invalid"), 1)
    _good(server, topic, 0, codec)
    r = _produce(server.host, server.port, topic, 0, records, version=8)
    assert r.error_code == expected, r
    if expected != 0:
        assert r.base_offset == -1, r
        assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 2)}, "the log end moved"
        _good(server, topic, 2, codec)
        _assert_only_good(server, topic)


def _compress(codec: int, data: bytes) -> bytes:
    if codec == GZIP:
        return gzip.compress(data)
    if codec == SNAPPY:
        return bytes(snappy.compress(data))
    if codec == LZ4:
        return bytes(lz4.frame.compress(data))
    return bytes(zstandard.ZstdCompressor().compress(data))


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_produce_refuses_bad_records_inside_every_codec(server, codec):
    """librdkafka's batches of the codec around compressed batches whose records are bad: a
    count that lies, records left over, a record that does not parse. The same payload with an
    honest count is stored, after them."""
    name = CODECS[codec]
    topic = ck.create_topic(server.bootstrap, ck.unique(f"inner-{name}"), 1)
    _good(server, topic, 0, name)
    payload = _compress(codec, _records(R3))
    bad: dict[str, tuple[bytes, int | dict[str, int]]] = {
        "count lies": (
            wire.record_batch(
                R3, attributes=codec, payload=payload, count=2**31 - 1, last_offset_delta=2**31 - 2
            ),
            87,
        ),
        "records left over": (
            wire.record_batch(R3, attributes=codec, payload=payload, count=2, last_offset_delta=1),
            87,
        ),
        "negative header count": (
            wire.record_batch(
                [(None, b"v")],
                attributes=codec,
                payload=_compress(codec, _raw_record(len(_ONE), _FIELDS + wire.varint(-1))),
            ),
            87,
        ),
        # kop is stricter: Kafka's in-place path for compressed batches does not check that a
        # record's fields fill its declared size, and stores a batch its own consumers then
        # fail to parse.
        "record size larger than its fields": (
            wire.record_batch(
                [(None, b"v")],
                attributes=codec,
                payload=_compress(codec, _raw_record(len(_ONE) + 1, _ONE)),
            ),
            {"kafka": 0, "kop": 87},
        ),
    }
    stored = 0
    for what, (batch, code) in bad.items():
        r = _produce(server.host, server.port, topic, 0, batch, version=8)
        assert r.error_code == _expected(server, code), (what, r)
        stored += 1 if r.error_code == 0 else 0
    if stored:
        return  # Kafka stored a batch kop refuses: the rest of the check is kop's.
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 2)}
    ok = _produce(
        server.host, server.port, topic, 0, wire.record_batch(R3, attributes=codec, payload=payload)
    )
    assert (ok.error_code, ok.base_offset) == (0, 2), ok
    _good(server, topic, 5, name)
    got = ck.consume_all(server.bootstrap, topic, partitions=[0], timeout=60)[0]
    assert [(g.offset, g.key, g.value) for g in got] == [
        (0, b"good-0", b"value-0"),
        (1, b"good-1", b"value-1"),
        (2, b"k0", b"v0"),
        (3, None, b"v1"),
        (4, b"k2", b"v2"),
        (5, b"good-5", b"value-5"),
        (6, b"good-6", b"value-6"),
    ]


def test_produce_keyless_record_on_compacted_topic(server):
    """INVALID_RECORD with Kafka's per-record error and error message (Produce v8)."""
    topic = ck.create_topic(
        server.bootstrap, ck.unique("compacted"), 1, config={"cleanup.policy": "compact"}
    )
    r = _produce(server.host, server.port, topic, 0, wire.record_batch(R3), version=8)
    msg = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    assert r.error_code == wire.ERR_INVALID_RECORD, r
    assert r.record_errors == [(1, msg)], r
    assert r.error_message == (
        "One or more records have been rejected due to 1 record errors in total, and only "
        f"showing the first three errors at most: [RecordError(batchIndex=1, message='{msg}')]"
    )
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 0)}
    keyed = wire.record_batch([(b"a", b"1"), (b"b", None)])
    assert _produce(server.host, server.port, topic, 0, keyed, version=8).error_code == 0
    # Produce v7 has no record errors: the code alone.
    assert _produce(server.host, server.port, topic, 0, wire.record_batch(R3)).error_code == 87
    got = ck.consume_all(server.bootstrap, topic, partitions=[0], timeout=60)[0]
    assert [(g.offset, g.key, g.value) for g in got] == [(0, b"a", b"1"), (1, b"b", None)]


def test_produce_timestamps_against_topic_bounds(server):
    """message.timestamp.before.max.ms / after.max.ms (KIP-937): INVALID_TIMESTAMP with the
    index of every record out of range; LogAppendTime topics refuse a producer's LogAppendTime."""
    topic = ck.create_topic(
        server.bootstrap,
        ck.unique("tsbounds"),
        1,
        config={"message.timestamp.before.max.ms": "60000"},
    )
    old = wire.record_batch(R3, timestamp_deltas=[0, -3_600_000, 7_200_000])
    r = _produce(server.host, server.port, topic, 0, old, version=8)
    assert r.error_code == wire.ERR_INVALID_TIMESTAMP, r
    assert [i for i, _ in r.record_errors] == [1, 2], r
    assert all(
        " is out of range. The timestamp should be within [" in (m or "")
        for _, m in r.record_errors
    )
    assert r.error_message == "One or more records have been rejected due to invalid timestamp"
    assert ck.watermarks(server.bootstrap, topic, [0]) == {0: (0, 0)}

    lat = ck.create_topic(
        server.bootstrap,
        ck.unique("lat"),
        1,
        config={"message.timestamp.type": "LogAppendTime"},
    )
    r = _produce(
        server.host, server.port, lat, 0, wire.record_batch(R3, attributes=0x08), version=8
    )
    assert r.error_code == wire.ERR_INVALID_TIMESTAMP, r
    assert [i for i, _ in r.record_errors] == [0, 1, 2], r
    assert r.record_errors[1][1].endswith(
        "Producer should not set timestamp type to LogAppendTime."
    )
    # A timestamp far in the past is fine there (no range on LogAppendTime topics).
    ok = _produce(server.host, server.port, lat, 0, wire.record_batch(R3, base_timestamp=1))
    assert (ok.error_code, ok.base_offset) == (0, 0), ok


def test_produce_zstd_needs_v7(server):
    topic = ck.create_topic(server.bootstrap, ck.unique("zstdv6"), 1)
    batch = wire.record_batch(R3, attributes=ZSTD, payload=_compress(ZSTD, _records(R3)))
    r = _produce(server.host, server.port, topic, 0, batch, version=6)
    assert r.error_code == wire.ERR_UNSUPPORTED_COMPRESSION_TYPE, r
    ok = _produce(server.host, server.port, topic, 0, batch, version=7)
    assert (ok.error_code, ok.base_offset) == (0, 0), ok


def test_produce_one_bad_partition_leaves_the_others_alone(server):
    topic = ck.create_topic(server.bootstrap, ck.unique("mixed"), 3)
    body = wire.produce_body(
        {topic: {0: wire.record_batch(R3), 1: BAD["count_lies"][0], 2: wire.record_batch(R3)}}
    )
    results = {r.partition: r for r in _produce_request(server.host, server.port, body)}
    assert {p: r.error_code for p, r in results.items()} == {0: 0, 1: 87, 2: 0}
    assert ck.watermarks(server.bootstrap, topic, [0, 1, 2]) == {0: (0, 3), 1: (0, 0), 2: (0, 3)}


def test_produce_transactional_bits_without_a_transaction(server):
    """A transactional batch in a request without a transactional id: the whole request gets
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED. With a transactional id, a plain batch is stored and
    a transactional one (with a producer id) is refused: Kafka cannot verify the partition is
    in a transaction (NOT_ENOUGH_REPLICAS while its transaction coordinator is not available,
    which is kop's case; NOT_LEADER_OR_FOLLOWER once it is)."""
    topic = ck.create_topic(server.bootstrap, ck.unique("txnbits"), 2)
    txn = wire.record_batch(
        R3, attributes=0x10, producer_id=1000, producer_epoch=0, base_sequence=0
    )
    body = wire.produce_body({topic: {0: txn, 1: wire.record_batch(R3)}})
    results = _produce_request(server.host, server.port, body)
    assert sorted((r.partition, r.error_code) for r in results) == [
        (0, wire.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (1, wire.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
    ]
    assert ck.watermarks(server.bootstrap, topic, [0, 1]) == {0: (0, 0), 1: (0, 0)}

    plain = _produce(
        server.host, server.port, topic, 1, wire.record_batch(R3), transactional_id="tx-1"
    )
    assert (plain.error_code, plain.base_offset) == (0, 0), plain
    r = _produce(server.host, server.port, topic, 0, txn, version=8, transactional_id="tx-1")
    assert r.error_code in ((19,) if server.target != "kafka" else (19, 6)), r
    assert ck.watermarks(server.bootstrap, topic, [0, 1]) == {0: (0, 0), 1: (0, 3)}


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
        if server.target == "kop-cli":
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
    kop = pytest.importorskip("kop")
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0", f"SASL_PLAINTEXT://{HOST}:0"],
        sasl_users=[":".join(SASL_USER)],
        storage=f"file://{tmp_path / 'sasl-data'}",
        num_partitions=1,
        frame_stall_timeout_ms=int(STALL_S * 1000),
    )
    srv = kop.Server(cfg)
    srv.start()
    try:
        yield {name: f"{HOST}:{port}" for name, _, port in srv.bound_addresses}
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
