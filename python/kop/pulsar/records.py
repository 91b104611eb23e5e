"""Kafka records as Pulsar messages, both ways (docs/pulsar-native-records.md).

- ``encode_batch`` builds a Kafka RecordBatch v2 (uncompressed) from records, for Kafka reads of
  messages that are not kop's stored batches.
- ``split`` turns one Kafka batch into the Pulsar messages of the ``pulsar`` entry format (one per
  record: key, value, headers as properties, event time), ``join`` turns them back into the batch
  a Kafka consumer reads.

The CRC and the decoding are kop's Rust code (``kop._native``).
"""

from __future__ import annotations

import base64
import importlib
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kop.pulsar.format import (
    BATCH_HEADER_SIZE,
    PROP_TYPE,
    TYPE_BATCH,
    batch_properties,
    parse_batch_header,
)

# The entry format option (pulsar_entry_format).
ENTRY_FORMATS = ("kafka", "pulsar")

# Properties of the ``pulsar`` entry format. The batch's first message carries kop's batch
# properties plus these; the others are ``kop.type=record``.
TYPE_RECORD = "record"
PROP_FORMAT = "kop.format"  # "records" on a batch stored one message per record
FORMAT_RECORDS = "records"
PROP_HEAD = "kop.head"  # base64 of the batch's 61-byte header (producer id, sequence, ...)
PROP_HEADERS = "kop.headers"  # JSON [[name, base64 | null], ...] when properties cannot hold them
PROP_KEY64 = "kop.key64"  # base64 key, when it is not non-empty UTF-8
PROP_NULL = "kop.null"  # "1": the record's value is null
PROP_TS = "kop.ts"  # the record's timestamp, when it is not a positive event time

Header = tuple[str, bytes | None]


def _native() -> Any:
    # Imported on use so that the rest of kop.pulsar works without the compiled extension.
    return importlib.import_module("kop._native")


@dataclass(frozen=True)
class Rec:
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header]


# -- encoding a Kafka batch ---------------------------------------------------------------------


def _varint(n: int) -> bytes:
    """Kafka's zig-zag varint (and varlong)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _field(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


_HEAD = struct.Struct(">qiibIhiqqqhii")
_COMPRESSION_BITS = 0x07


def encode_batch(
    base_offset: int,
    records: Sequence[Rec],
    *,
    attributes: int = 0,
    partition_leader_epoch: int = 0,
    base_timestamp: int | None = None,
    max_timestamp: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """An uncompressed Kafka RecordBatch v2 of ``records`` (offsets ``base_offset`` on)."""
    if not records:
        raise ValueError("a record batch holds at least one record")
    base_ts = records[0].timestamp if base_timestamp is None else base_timestamp
    max_ts = max(r.timestamp for r in records) if max_timestamp is None else max_timestamp
    body = bytearray()
    for i, r in enumerate(records):
        rec = (
            b"\x00"
            + _varint(r.timestamp - base_ts)
            + _varint(i)
            + _field(r.key)
            + _field(r.value)
            + _varint(len(r.headers))
            + b"".join(_field(name.encode()) + _field(v) for name, v in r.headers)
        )
        body += _varint(len(rec)) + rec
    batch = bytearray(
        _HEAD.pack(
            base_offset,
            BATCH_HEADER_SIZE - 12 + len(body),
            partition_leader_epoch,
            2,
            0,
            attributes & ~_COMPRESSION_BITS,
            len(records) - 1,
            base_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            len(records),
        )
    )
    batch += body
    struct.pack_into(">I", batch, 17, _native().batch_crc(bytes(batch)))
    return bytes(batch)


# -- the ``pulsar`` entry format -----------------------------------------------------------------


@dataclass(frozen=True)
class PulsarMessage:
    """What ``producer.send_async`` gets for one record."""

    value: bytes
    properties: dict[str, str]
    partition_key: str | None
    event_timestamp: int | None


def storable_as_records(payload: bytes) -> bool:
    """Whether a batch is stored one message per record: not transactional, not a control
    batch (those stay whole kop batches; Pulsar applications skip ``kop.type=batch`` messages
    without ``kop.format``)."""
    return not parse_batch_header(payload).attributes & 0x30


def _headers_as_properties(headers: Sequence[Header]) -> tuple[dict[str, str], bool]:
    """Headers as properties, and whether they say everything (names unique, ascending, not
    kop's, values UTF-8: Pulsar's properties are a sorted map of strings)."""
    props: dict[str, str] = {}
    exact = True
    last = None
    for name, value in headers:
        if last is not None and name <= last:
            exact = False
        last = name
        if name.startswith("kop.") or value is None:
            exact = False
            continue
        try:
            props[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            exact = False
    return props, exact


def split(
    payload: bytes, epoch: int, base_offset: int, record_count: int, max_timestamp: int
) -> list[PulsarMessage]:
    """One Pulsar message per record of the Kafka batch ``payload``."""
    out = []
    for i, (_offset, ts, key, value, headers) in enumerate(_native().decode_batch(payload)):
        props, exact = _headers_as_properties(headers)
        if not exact:
            props[PROP_HEADERS] = json.dumps(
                [[n, None if v is None else base64.b64encode(v).decode()] for n, v in headers]
            )
        if i == 0:
            props.update(batch_properties(epoch, base_offset, record_count, max_timestamp))
            props[PROP_FORMAT] = FORMAT_RECORDS
            props[PROP_HEAD] = base64.b64encode(payload[:BATCH_HEADER_SIZE]).decode()
        else:
            props[PROP_TYPE] = TYPE_RECORD
        partition_key = None
        if key is not None:
            try:
                partition_key = key.decode("utf-8") if key else None
            except UnicodeDecodeError:
                partition_key = None
            if partition_key is None:
                props[PROP_KEY64] = base64.b64encode(key).decode()
        if value is None:
            props[PROP_NULL] = "1"
        if ts <= 0:
            props[PROP_TS] = str(ts)
        out.append(
            PulsarMessage(
                value=b"" if value is None else bytes(value),
                properties=props,
                partition_key=partition_key,
                event_timestamp=ts if ts > 0 else None,
            )
        )
    return out


def is_records_batch(props: Mapping[str, str]) -> bool:
    return props.get(PROP_TYPE) == TYPE_BATCH and props.get(PROP_FORMAT) == FORMAT_RECORDS


def is_record(props: Mapping[str, str]) -> bool:
    return props.get(PROP_TYPE) == TYPE_RECORD


def _record(msg: Any) -> Rec:
    props = msg.properties()
    if PROP_HEADERS in props:
        headers: list[Header] = [
            (n, None if v is None else base64.b64decode(v))
            for n, v in json.loads(props[PROP_HEADERS])
        ]
    else:
        headers = [(n, props[n].encode()) for n in sorted(props) if not n.startswith("kop.")]
    if PROP_KEY64 in props:
        key: bytes | None = base64.b64decode(props[PROP_KEY64])
    else:
        pk = msg.partition_key()
        key = pk.encode() if pk else None
    value = None if props.get(PROP_NULL) == "1" else bytes(msg.data())
    ts = int(props[PROP_TS]) if PROP_TS in props else int(msg.event_timestamp())
    return Rec(ts, key, value, headers)


def join(base_offset: int, messages: Iterable[Any]) -> bytes:
    """The Kafka batch stored as ``messages`` (its first message, then ``kop.type=record``s)."""
    msgs = list(messages)
    head = parse_batch_header(base64.b64decode(msgs[0].properties()[PROP_HEAD]))
    return encode_batch(
        base_offset,
        [_record(m) for m in msgs],
        attributes=head.attributes,
        partition_leader_epoch=head.partition_leader_epoch,
        base_timestamp=head.base_timestamp,
        max_timestamp=head.max_timestamp,
        producer_id=head.producer_id,
        producer_epoch=head.producer_epoch,
        base_sequence=head.base_sequence,
    )
