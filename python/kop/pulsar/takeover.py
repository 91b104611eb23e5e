"""Taking a partition over (docs/pulsar-storage.md, "Takeover"), and the scan behind it.

The scan reads a partition topic from the earliest message and keeps what a reader of the Kafka
log sees: markers and batches of an epoch below the highest one seen so far are skipped.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kop.pulsar.client import PulsarIO, message_key
from kop.pulsar.format import (
    BATCH_HEADER_SIZE,
    BatchInfo,
    FormatError,
    MarkerInfo,
    marker_properties,
    parse_partition_message,
)
from kop.pulsar.index import BatchIndex, IndexEntry

log = logging.getLogger("kop.pulsar")


@dataclass
class PartitionScan:
    """Live batches of a partition, fed one message at a time in topic order."""

    topic: str
    tail_bytes: int | None = None  # None: keep neither headers nor tail (read-only index)
    index: BatchIndex = field(default_factory=BatchIndex)
    headers: list[bytes] = field(default_factory=list)
    tail: deque[bytes] = field(default_factory=deque)
    tail_size: int = 0
    highest_epoch: int = 0
    marker_next_offset: int = 0
    skipped_foreign: int = 0

    def feed(self, msg: Any) -> None:
        try:
            info = parse_partition_message(msg.properties())
        except FormatError as err:
            # Not written by kop (nobody else can write while kop owns the partition, but a
            # Pulsar application may have before): not part of the Kafka log.
            if not self.skipped_foreign:
                log.warning("%s: skipping a message kop did not write: %s", self.topic, err)
            self.skipped_foreign += 1
            return
        if isinstance(info, MarkerInfo):
            self.highest_epoch = max(self.highest_epoch, info.epoch)
            self.marker_next_offset = info.next_offset
            return
        if info.epoch < self.highest_epoch:
            return  # a stale writer's batch (belt and braces: fencing keeps them out)
        self.highest_epoch = info.epoch
        self._add_live(info, msg)

    def _add_live(self, info: BatchInfo, msg: Any) -> None:
        payload: bytes = msg.data()
        entry = IndexEntry(
            base_offset=info.base_offset,
            last_offset=info.last_offset,
            max_timestamp=info.max_timestamp,
            size=len(payload),
            message_id=msg.message_id(),
        )
        if not self.index.add(entry):
            log.warning(
                "%s: batch at offset %d overlaps the one before it; skipped",
                self.topic,
                info.base_offset,
            )
            return
        if self.tail_bytes is None:
            return
        self.headers.append(payload[:BATCH_HEADER_SIZE])
        self.tail.append(payload)
        self.tail_size += len(payload)
        while len(self.tail) > 1 and self.tail_size > self.tail_bytes:
            self.tail_size -= len(self.tail.popleft())

    @property
    def next_offset(self) -> int:
        return max(self.index.next_offset or 0, self.marker_next_offset, 0)

    @property
    def log_start(self) -> int:
        return self.index[0].base_offset if len(self.index) else self.next_offset


def scan_partition(io: PulsarIO, topic: str) -> PartitionScan:
    """The live batches of a partition this instance does not own (index only)."""
    scan = PartitionScan(topic)
    reader = io.reader(topic)
    try:
        for msg in io.drain(reader, topic):
            scan.feed(msg)
    finally:
        io.close_quietly(reader)
    return scan


@dataclass
class Takeover:
    producer: Any  # the Exclusive producer now held
    epoch: int
    scan: PartitionScan


def take_over(io: PulsarIO, topic: str, tail_bytes: int) -> Takeover:
    producer = io.owner_producer(topic)
    reader = None
    try:
        scan = PartitionScan(topic, tail_bytes=max(0, tail_bytes))
        reader = io.reader(topic)
        for msg in io.drain(reader, topic):
            scan.feed(msg)
        epoch = scan.highest_epoch + 1
        while True:
            next_offset = scan.next_offset
            with io.errors("write the epoch marker", topic):
                marker_id = producer.send(b"", properties=marker_properties(epoch, next_offset))
            # The scan stopped at the last message the broker had confirmed when it asked. A
            # write of the fenced owner that was still being stored can land after that, but
            # before our marker: read up to the marker so it counts. Rare; if it adds batches,
            # write a marker with the corrected next offset.
            for msg in io.read_until(reader, topic, message_key(marker_id)):
                scan.feed(msg)
            scan.highest_epoch = epoch
            scan.marker_next_offset = max(scan.marker_next_offset, next_offset)
            if scan.next_offset == next_offset:
                return Takeover(producer=producer, epoch=epoch, scan=scan)
            log.warning(
                "%s: batches of the previous owner landed after the takeover scan; "
                "writing a corrected marker (next offset %d -> %d)",
                topic,
                next_offset,
                scan.next_offset,
            )
    except BaseException:
        io.close_quietly(producer)
        raise
    finally:
        io.close_quietly(reader)
