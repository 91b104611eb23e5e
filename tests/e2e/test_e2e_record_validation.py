"""Record batch validation as Kafka's LogValidator does it (issue 12), over raw Produce
requests (`helpers/wire.py`).

Each case: two good records from a librdkafka producer, the bad batch over a raw Produce v8
(its CRC valid unless the case is about the CRC), two more good records. The bad batch gets
Kafka's error code, the log end offset does not move, and a librdkafka consumer reads the
four good records at offsets 0-3. Every expected code was checked against Apache Kafka 4.4
(KOP_TEST_TARGETS=kafka); where kop deliberately differs the case says so."""

from __future__ import annotations

import gzip
import time
from typing import Any

import lz4.frame
import pytest
import snappy
import zstandard

from helpers import ck, wire
from helpers.data import Rec

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
    a transactional one (with a producer id) is refused: the partition is not in a transaction
    of that id (INVALID_PRODUCER_ID_MAPPING from a coordinator that does not know the id, which
    is kop's case; Kafka answers NOT_ENOUGH_REPLICAS while its transaction coordinator is not
    loaded yet, NOT_LEADER_OR_FOLLOWER while it moves)."""
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
    assert r.error_code in ((49,) if server.target != "kafka" else (19, 6, 49)), r
    assert ck.watermarks(server.bootstrap, topic, [0, 1]) == {0: (0, 0), 1: (0, 3)}
