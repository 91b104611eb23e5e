"""Hand-built Kafka frames for raw-socket tests: size prefix, request header, a few bodies.

Only what the bad-input and readiness checks need: ApiVersions (v0 and v3 answers), Produce
v3-v8 with a RecordBatch v2 (CRC-32C computed here, so a corrupted copy can be sent on purpose;
every header field can be set, so malformed batches with a valid CRC can be built too).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18

ERR_NONE = 0
ERR_CORRUPT_MESSAGE = 2
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_INVALID_TIMESTAMP = 32
ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
ERR_UNSUPPORTED_VERSION = 35
ERR_UNSUPPORTED_COMPRESSION_TYPE = 76
ERR_INVALID_RECORD = 87


class ConnectionClosed(Exception):
    """The peer closed the connection (EOF or reset) before a full response arrived."""


# ---- primitive encoders ---------------------------------------------------------------


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def nbytes(b: bytes | None) -> bytes:
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (also used for varlongs)."""
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


# ---- CRC-32C (Castagnoli), as used by RecordBatch v2 ------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- frames ------------------------------------------------------------------------------


def request(
    api_key: int,
    api_version: int,
    correlation_id: int,
    body: bytes,
    *,
    client_id: str | None = "kop-tests-raw",
    flexible: bool = False,
) -> bytes:
    """A complete frame: int32 size + request header (v1, or v2 when flexible) + body."""
    header = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)
    if flexible:
        header += uvarint(0)  # no tagged fields
    payload = header + body
    return i32(len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete response within the timeout ({len(buf)}/{n} bytes)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError) as err:
            raise ConnectionClosed(str(err)) from err
        except TimeoutError as err:
            raise TimeoutError("no complete response within the timeout") from err
        if not chunk:
            raise ConnectionClosed(f"EOF after {len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One response frame without its size prefix. Raises ConnectionClosed or TimeoutError."""
    deadline = time.monotonic() + timeout
    (size,) = struct.unpack(">i", _recv_exact(sock, 4, deadline))
    if size < 4 or size > 1 << 30:
        raise AssertionError(f"implausible response size {size}")
    return _recv_exact(sock, size, deadline)


def expect_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Wait until the peer closes; returns whatever bytes arrived before the close.

    Raises TimeoutError if the connection stays open (a hang is a failure, never a pass)."""
    deadline = time.monotonic() + timeout
    got = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"connection still open after {timeout}s (received {bytes(got)!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return bytes(got)
        except TimeoutError:
            continue
        if not chunk:
            return bytes(got)
        got += chunk


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_all(sock: socket.socket, data: bytes) -> None:
    """sendall that treats a reset as 'the peer closed' (the server may close mid-send)."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError) as err:
        raise ConnectionClosed(str(err)) from err


# ---- ApiVersions ---------------------------------------------------------------------


@dataclass
class ApiVersionsResponse:
    correlation_id: int
    error_code: int
    api_keys: dict[int, tuple[int, int]] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise AssertionError(f"response truncated at {self.pos}+{n} of {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def i32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos


def parse_api_versions_v0(frame: bytes) -> ApiVersionsResponse:
    """ApiVersions response body in the v0 layout (also the downgrade answer to any version
    the server does not support)."""
    r = _Reader(frame)
    resp = ApiVersionsResponse(r.i32(), r.i16())
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        resp.api_keys[key] = (lo, hi)
    return resp


def parse_api_versions_v3(frame: bytes) -> ApiVersionsResponse:
    r = _Reader(frame)
    resp = ApiVersionsResponse(r.i32(), r.i16())  # response header v0, then body
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        r.skip_tags()
        resp.api_keys[key] = (lo, hi)
    return resp


def api_versions_v3_body(software: str = "kop-tests", version: str = "1.0") -> bytes:
    return compact_string(software) + compact_string(version) + uvarint(0)


def api_versions(
    host: str, port: int, *, version: int = 0, timeout: float = 5.0
) -> ApiVersionsResponse:
    """One ApiVersions round trip on a fresh connection (v0 or v3)."""
    with connect(host, port, timeout) as sock:
        if version >= 3:
            send_all(
                sock,
                request(API_API_VERSIONS, version, 7, api_versions_v3_body(), flexible=True),
            )
            return parse_api_versions_v3(read_frame(sock, timeout))
        send_all(sock, request(API_API_VERSIONS, version, 7, b""))
        return parse_api_versions_v0(read_frame(sock, timeout))


# ---- RecordBatch v2 and Produce v7 ----------------------------------------------------


def record(
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    *,
    timestamp_delta: int = 0,
    headers: list[tuple[str, bytes | None]] | None = None,
) -> bytes:
    body = i8(0) + varint(timestamp_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    hs = headers or []
    body += varint(len(hs))
    for hk, hv in hs:
        kb = hk.encode()
        body += varint(len(kb)) + kb
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + body


def record_batch(
    records: list[tuple[bytes | None, bytes | None]],
    *,
    base_timestamp: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
    base_offset: int = 0,
    magic: int = 2,
    last_offset_delta: int | None = None,
    count: int | None = None,
    timestamp_deltas: list[int] | None = None,
    payload: bytes | None = None,
) -> bytes:
    """A RecordBatch v2 with a correct CRC-32C (idempotent when a producer id and sequence are
    given). Every header field can be overridden, and ``payload`` replaces the encoded records
    (e.g. compressed or malformed bytes), so a malformed batch still passes the CRC check."""
    ts = int(time.time() * 1000) if base_timestamp is None else base_timestamp
    deltas = timestamp_deltas or [0] * len(records)
    pairs = zip(records, deltas, strict=True)
    recs = b"".join(record(i, k, v, timestamp_delta=d) for i, ((k, v), d) in enumerate(pairs))
    n = len(records)
    after_crc = (
        i16(attributes)  # compression, timestamp type, transactional, control bits
        + i32(n - 1 if last_offset_delta is None else last_offset_delta)
        + i64(ts)  # baseTimestamp
        + i64(ts + max(deltas, default=0))  # maxTimestamp
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(n if count is None else count)
        + (recs if payload is None else payload)
    )
    crc = crc32c(after_crc)
    after_length = i32(0) + i8(magic) + struct.pack(">I", crc) + after_crc  # epoch, magic, crc
    return i64(base_offset) + i32(len(after_length)) + after_length


def corrupt_payload(batch: bytes) -> bytes:
    """Flip one bit in the last byte (a record value), leaving the stored CRC stale."""
    return batch[:-1] + bytes([batch[-1] ^ 0x01])


def produce_v7_body(
    topic: str,
    partition: int,
    records: bytes,
    *,
    acks: int = -1,
    timeout_ms: int = 10000,
    transactional_id: str | None = None,
) -> bytes:
    """A Produce body of one partition (the layout of v3 to v8)."""
    return produce_body(
        {topic: {partition: records}},
        acks=acks,
        timeout_ms=timeout_ms,
        transactional_id=transactional_id,
    )


def produce_body(
    topics: dict[str, dict[int, bytes]],
    *,
    acks: int = -1,
    timeout_ms: int = 10000,
    transactional_id: str | None = None,
) -> bytes:
    """A Produce body (v3-v8 layout) of several topics and partitions."""
    body = string(transactional_id) + i16(acks) + i32(timeout_ms) + i32(len(topics))
    for topic, parts in topics.items():
        body += string(topic) + i32(len(parts))
        for partition, records in parts.items():
            body += i32(partition) + nbytes(records)
    return body


@dataclass
class PartitionProduceResult:
    topic: str
    partition: int
    error_code: int
    base_offset: int
    log_start_offset: int = -1
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)
    error_message: str | None = None


def parse_produce_v7(frame: bytes) -> tuple[int, list[PartitionProduceResult]]:
    r = _Reader(frame)
    corr = r.i32()
    out = []
    for _ in range(r.i32()):
        name = r.string() or ""
        for _ in range(r.i32()):
            part, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            r.i64()  # log_start_offset
            out.append(PartitionProduceResult(name, part, err, base))
    r.i32()  # throttle_time_ms
    return corr, out


def parse_produce(frame: bytes, version: int) -> tuple[int, list[PartitionProduceResult]]:
    """A Produce response of v3 to v8 (v8 adds record_errors and error_message)."""
    r = _Reader(frame)
    corr = r.i32()
    out = []
    for _ in range(r.i32()):
        name = r.string() or ""
        for _ in range(r.i32()):
            res = PartitionProduceResult(name, r.i32(), r.i16(), r.i64())
            r.i64()  # log_append_time_ms
            if version >= 5:
                res.log_start_offset = r.i64()
            if version >= 8:
                res.record_errors = [(r.i32(), r.string()) for _ in range(r.i32())]
                res.error_message = r.string()
            out.append(res)
    r.i32()  # throttle_time_ms
    assert r.remaining() == 0, f"{r.remaining()} bytes left in the Produce v{version} response"
    return corr, out


def produce_request(
    host: str,
    port: int,
    body: bytes,
    *,
    version: int = 8,
    timeout: float = 15.0,
) -> list[PartitionProduceResult]:
    """One Produce round trip (v3-v8 body) on a fresh connection; every partition's result."""
    assert 3 <= version <= 8, version
    with connect(host, port, timeout) as sock:
        send_all(sock, request(API_PRODUCE, version, 11, body))
        corr, results = parse_produce(read_frame(sock, timeout), version)
    assert corr == 11, corr
    return results


def produce(
    host: str,
    port: int,
    topic: str,
    partition: int,
    batch: bytes,
    *,
    version: int = 7,
    transactional_id: str | None = None,
    timeout: float = 15.0,
) -> PartitionProduceResult:
    """One Produce round trip (acks=all, v7 unless told) of one partition on a fresh connection."""
    body = produce_v7_body(topic, partition, batch, transactional_id=transactional_id)
    results = produce_request(host, port, body, version=version, timeout=timeout)
    assert len(results) == 1, results
    return results[0]


API_INIT_PRODUCER_ID = 22
ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45


def init_producer_id(host: str, port: int, timeout: float = 10.0) -> tuple[int, int]:
    """InitProducerId v2 (flexible) without a transactional id -> (producer id, epoch)."""
    body = compact_string(None) + i32(60000) + uvarint(0)
    with connect(host, port, timeout) as sock:
        send_all(sock, request(API_INIT_PRODUCER_ID, 2, 21, body, flexible=True))
        r = _Reader(read_frame(sock, timeout))
    assert r.i32() == 21
    r.skip_tags()  # response header v1
    r.i32()  # throttle_time_ms
    err = r.i16()
    assert err == ERR_NONE, f"InitProducerId error {err}"
    return r.i64(), r.i16()


API_FIND_COORDINATOR = 10
COORDINATOR_TRANSACTION = 1


def find_coordinator(
    host: str, port: int, key: str, key_type: int = COORDINATOR_TRANSACTION, timeout: float = 10.0
) -> int:
    """FindCoordinator v1 for ``key`` (a transactional id by default) -> the coordinator's node
    id; in-process and quick, where ``kafka-transactions list`` starts a JVM."""
    with connect(host, port, timeout) as sock:
        send_all(sock, request(API_FIND_COORDINATOR, 1, 23, string(key) + i8(key_type)))
        r = _Reader(read_frame(sock, timeout))
    assert r.i32() == 23
    r.i32()  # throttle_time_ms
    err, message = r.i16(), r.string()
    assert err == ERR_NONE, f"FindCoordinator error {err}: {message}"
    return r.i32()


def wait_until_serving(host: str, port: int, timeout: float, alive: object = None) -> None:
    """Poll until the port accepts and ApiVersions v0 answers with error 0.

    ``alive`` may be a callable returning False once the server process died (fail fast)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise RuntimeError(f"server process exited before serving (last error: {last!r})")
        try:
            resp = api_versions(host, port, version=0, timeout=2.0)
            if resp.error_code == 0 and API_API_VERSIONS in resp.api_keys:
                return
            last = AssertionError(f"ApiVersions answered {resp}")
        except (OSError, ConnectionClosed, TimeoutError, AssertionError) as err:
            last = err
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not answer ApiVersions within {timeout}s: {last!r}")


# ---- Fetch v12 with sessions (KIP-227) ------------------------------------------------

API_FETCH = 1
ERR_FETCH_SESSION_ID_NOT_FOUND = 70
ERR_INVALID_FETCH_SESSION_EPOCH = 71


@dataclass
class FetchedPartition:
    topic: str
    partition: int
    error_code: int
    high_watermark: int
    records: bytes


@dataclass
class FetchResponse:
    error_code: int
    session_id: int
    partitions: list[FetchedPartition]


def fetch_v12(
    sock: socket.socket,
    correlation_id: int,
    *,
    session_id: int,
    epoch: int,
    fetch: dict[tuple[str, int], int],
    forget: dict[str, list[int]] | None = None,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    timeout: float = 30.0,
) -> FetchResponse:
    """One Fetch v12 round trip: ``fetch`` maps (topic, partition) to its fetch offset."""
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for (topic, partition), offset in fetch.items():
        by_topic.setdefault(topic, []).append((partition, offset))
    topics = b"".join(
        compact_string(topic)
        + uvarint(len(parts) + 1)
        + b"".join(
            i32(p) + i32(-1) + i64(offset) + i32(-1) + i64(-1) + i32(1 << 20) + uvarint(0)
            for p, offset in parts
        )
        + uvarint(0)
        for topic, parts in by_topic.items()
    )
    forgotten = b"".join(
        compact_string(topic)
        + uvarint(len(parts) + 1)
        + b"".join(i32(p) for p in parts)
        + uvarint(0)
        for topic, parts in (forget or {}).items()
    )
    body = (
        i32(-1)
        + i32(max_wait_ms)
        + i32(min_bytes)
        + i32(50 << 20)
        + i8(0)
        + i32(session_id)
        + i32(epoch)
        + uvarint(len(by_topic) + 1)
        + topics
        + uvarint(len(forget or {}) + 1)
        + forgotten
        + compact_string("")
        + uvarint(0)
    )
    send_all(sock, request(API_FETCH, 12, correlation_id, body, flexible=True))
    r = _Reader(read_frame(sock, timeout))
    assert r.i32() == correlation_id
    r.skip_tags()
    r.i32()  # throttle_time_ms
    resp = FetchResponse(r.i16(), r.i32(), [])
    for _ in range(r.uvarint() - 1):
        topic = r.take(r.uvarint() - 1).decode()
        for _ in range(r.uvarint() - 1):
            partition, error, hw = r.i32(), r.i16(), r.i64()
            r.i64()  # last_stable_offset
            r.i64()  # log_start_offset
            for _ in range(max(r.uvarint() - 1, 0)):  # aborted transactions
                r.i64()
                r.i64()
                r.skip_tags()
            r.i32()  # preferred_read_replica
            n = r.uvarint()
            records = r.take(n - 1) if n else b""
            r.skip_tags()
            resp.partitions.append(FetchedPartition(topic, partition, error, hw, records))
        r.skip_tags()
    r.skip_tags()
    return resp
