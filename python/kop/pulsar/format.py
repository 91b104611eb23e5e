"""How kop lays Kafka data out in Pulsar messages: topic names, property names, markers and the
fixed 61-byte header of a Kafka RecordBatch v2. docs/pulsar-storage.md ("On-Pulsar format")
describes the same for people reading the topics with a plain Pulsar client.

Property values are decimal strings (Pulsar properties are string to string).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

# -- topics --------------------------------------------------------------------------------------

METADATA_TOPIC = "__kop_metadata"  # documents: keyed messages, last one per key wins
# Consumer-group records, with snapshots: a partitioned topic, one partition per group shard
# (Kafka's __consumer_offsets partition of the group, coordinated by whoever leads it).
GROUPS_TOPIC = "__kop_groups"
GROUP_SHARDS = 50
# Transaction-coordinator state: record-log shards TXN_SHARD_BASE.. (Rust's
# storage::remote::TXN_SHARD_BASE) live in their own partitioned topic, same format.
TRANSACTIONS_TOPIC = "__kop_transactions"
TXN_SHARD_BASE = GROUP_SHARDS
MEMBERS_TOPIC = "__kop_members"  # heartbeats of the live kop instances


def instance_topic(node_id: int) -> str:
    """Held (exclusive producer) by the kop instance serving ``node_id``; the newest wins."""
    return f"__kop_node-{node_id}"


# Offset-index checkpoints (kop.pulsar.checkpoint): keyed by partition topic, compacted.
INDEX_TOPIC = "__kop_index"


def pulsar_topic(tenant: str, namespace: str, name: str) -> str:
    return f"persistent://{tenant}/{namespace}/{name}"


def partition_topic(tenant: str, namespace: str, topic: str, partition: int) -> str:
    """The Pulsar topic holding partition ``partition`` of the Kafka topic ``topic``."""
    return f"persistent://{tenant}/{namespace}/{topic}-partition-{partition}"


# -- properties ----------------------------------------------------------------------------------

PROP_TYPE = "kop.type"

# data partitions
TYPE_BATCH = "batch"  # payload: one Kafka RecordBatch v2, exactly as Kafka stores it
TYPE_MARKER = "marker"  # empty payload: a new owner took the partition over
PROP_EPOCH = "kop.epoch"  # both: the writer's epoch (the Kafka leader epoch)
PROP_BASE_OFFSET = "kop.base_offset"  # batch
PROP_RECORD_COUNT = "kop.record_count"  # batch
PROP_MAX_TIMESTAMP = "kop.max_timestamp"  # batch; also the message's event time when >= 0
PROP_NEXT_OFFSET = "kop.next_offset"  # marker: the offset the new owner writes next

# documents (__kop_metadata): the message key is the document name
TYPE_DOC = "doc"
PROP_DELETED = "kop.deleted"  # "1" on an empty-payload tombstone
PROP_EXPECT = "kop.expect"  # conditional save: digest of the content replaced, or "absent"

# group records (__kop_groups)
TYPE_GROUP_RECORD = "group_record"
TYPE_SNAPSHOT_BEGIN = "snapshot_begin"
TYPE_SNAPSHOT_END = "snapshot_end"
PROP_SNAPSHOT = "kop.snapshot"  # snapshot id, on its begin, its records and its end
PROP_SNAPSHOT_COUNT = "kop.snapshot_count"  # on the end: how many records the snapshot holds


def batch_properties(
    epoch: int, base_offset: int, record_count: int, max_timestamp: int
) -> dict[str, str]:
    return {
        PROP_TYPE: TYPE_BATCH,
        PROP_EPOCH: str(epoch),
        PROP_BASE_OFFSET: str(base_offset),
        PROP_RECORD_COUNT: str(record_count),
        PROP_MAX_TIMESTAMP: str(max_timestamp),
    }


def marker_properties(epoch: int, next_offset: int) -> dict[str, str]:
    return {PROP_TYPE: TYPE_MARKER, PROP_EPOCH: str(epoch), PROP_NEXT_OFFSET: str(next_offset)}


@dataclass(frozen=True)
class BatchInfo:
    """The properties of a data message."""

    epoch: int
    base_offset: int
    record_count: int
    max_timestamp: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.record_count - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.record_count


@dataclass(frozen=True)
class MarkerInfo:
    """The properties of an epoch marker."""

    epoch: int
    next_offset: int


class FormatError(ValueError):
    """A message on a kop topic that kop did not write (or a newer kop wrote)."""


def parse_partition_message(props: Mapping[str, str]) -> BatchInfo | MarkerInfo:
    """What a message of a data partition is, from its properties."""
    kind = props.get(PROP_TYPE)
    try:
        if kind == TYPE_BATCH:
            return BatchInfo(
                epoch=int(props[PROP_EPOCH]),
                base_offset=int(props[PROP_BASE_OFFSET]),
                record_count=int(props[PROP_RECORD_COUNT]),
                max_timestamp=int(props[PROP_MAX_TIMESTAMP]),
            )
        if kind == TYPE_MARKER:
            return MarkerInfo(
                epoch=int(props[PROP_EPOCH]), next_offset=int(props[PROP_NEXT_OFFSET])
            )
    except (KeyError, ValueError) as err:
        raise FormatError(f"bad {kind} message properties {dict(props)!r}: {err}") from err
    raise FormatError(f"not a kop partition message ({PROP_TYPE}={kind!r})")


# -- Kafka RecordBatch v2 header -----------------------------------------------------------------

BATCH_HEADER_SIZE = 61
# base offset, batch length, partition leader epoch, magic, crc, attributes, last offset delta,
# base timestamp, max timestamp, producer id, producer epoch, base sequence, record count
_HEADER = struct.Struct(">qiibIhiqqqhii")
assert _HEADER.size == BATCH_HEADER_SIZE

_BASE_OFFSET = struct.Struct(">q")


@dataclass(frozen=True)
class BatchHeader:
    base_offset: int  # bytes 0-7
    batch_length: int  # 8-11: bytes after this field
    partition_leader_epoch: int  # 12-15
    magic: int  # 16
    crc: int  # 17-20 (CRC-32C of bytes 21..end)
    attributes: int  # 21-22
    last_offset_delta: int  # 23-26
    base_timestamp: int  # 27-34
    max_timestamp: int  # 35-42
    producer_id: int  # 43-50
    producer_epoch: int  # 51-52
    base_sequence: int  # 53-56
    record_count: int  # 57-60

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & 0x10)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & 0x20)


def parse_batch_header(data: bytes) -> BatchHeader:
    if len(data) < BATCH_HEADER_SIZE:
        raise FormatError(f"a record batch header is {BATCH_HEADER_SIZE} bytes, got {len(data)}")
    return BatchHeader(*_HEADER.unpack_from(data))


def with_base_offset(batch: bytes, base_offset: int) -> bytes:
    """``batch`` with bytes 0-7 set to ``base_offset`` (the CRC does not cover them)."""
    return _BASE_OFFSET.pack(base_offset) + batch[_BASE_OFFSET.size :]
