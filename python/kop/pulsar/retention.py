"""Kafka retention (``retention.ms``/``retention.bytes``) as Pulsar topic-level retention, and
the log start offset once Pulsar has trimmed (docs/pulsar-storage.md, "Retention").

Pulsar deletes whole ledgers of a topic without subscriptions once they are older than the
retention time or make the topic larger than the retention size (never the ledger being
written). Granularity is minutes and megabytes, so kop rounds up: Pulsar keeps at least what
Kafka would. After a trim the Kafka log starts at the first live batch of the oldest ledger left.
"""

from __future__ import annotations

import logging
from typing import Any

from kop.pulsar.client import PulsarIO, message_key
from kop.pulsar.format import BatchInfo, FormatError, MarkerInfo, parse_partition_message
from kop.pulsar.index import IndexEntry

log = logging.getLogger("kop.pulsar")

_MINUTE_MS = 60_000
_MIB = 1024 * 1024


def retention_policy(retention_ms: int, retention_bytes: int) -> dict[str, int]:
    """Pulsar's ``RetentionPolicies`` for Kafka's settings (-1: unlimited). Kafka deletes a
    segment when either limit is exceeded, and so does Pulsar with both set."""
    minutes = -1 if retention_ms < 0 else max(1, -(-retention_ms // _MINUTE_MS))
    megabytes = -1 if retention_bytes < 0 else max(1, -(-retention_bytes // _MIB))
    return {"retentionTimeInMinutes": minutes, "retentionSizeInMB": megabytes}


def first_live_batch(io: PulsarIO, topic: str) -> tuple[IndexEntry | None, int]:
    """The first live batch from the earliest message Pulsar still has (the epoch rule from
    there, as a full scan applies it), and the number of messages read. Reads up to the first
    batch only; None when there is none."""
    reader = io.reader(topic, queue_size=10)
    read = 0
    highest = 0
    try:
        for msg in io.drain(reader, topic):
            read += 1
            try:
                info = parse_partition_message(msg.properties())
            except FormatError:
                continue
            if isinstance(info, MarkerInfo):
                highest = max(highest, info.epoch)
                continue
            assert isinstance(info, BatchInfo)
            if info.epoch < highest:
                continue
            entry = IndexEntry(
                base_offset=info.base_offset,
                last_offset=info.last_offset,
                max_timestamp=info.max_timestamp,
                size=len(msg.data()),
                message_id=msg.message_id(),
                epoch=info.epoch,
            )
            return entry, read
    finally:
        io.close_quietly(reader)
    return None, read


def earliest_key(io: PulsarIO, topic: str) -> Any:
    """The (ledger, entry) of the earliest message Pulsar still has, or None."""
    reader = io.reader(topic, queue_size=1)
    try:
        for msg in io.drain(reader, topic):
            return message_key(msg.message_id())
    finally:
        io.close_quietly(reader)
    return None
