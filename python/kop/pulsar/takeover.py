"""Taking a partition over (docs/pulsar-storage.md, "Takeover"), and the scan behind it.

The scan reads a partition topic from the earliest message, or from the resume point of an index
checkpoint (kop.pulsar.checkpoint), and keeps what a reader of the Kafka log sees: markers and
batches of an epoch below the highest one seen so far are skipped. A checkpoint only saves the
reading of what it covers: everything after its resume point is read and judged exactly as in a
full scan, and a checkpoint whose resume point is not the batch it names is ignored.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kop.pulsar.checkpoint import Checkpoint
from kop.pulsar.client import PulsarIO, message_key, result_ok
from kop.pulsar.format import (
    BatchInfo,
    FormatError,
    MarkerInfo,
    marker_properties,
    parse_partition_message,
)
from kop.pulsar.index import BatchIndex, IndexEntry, ProducerTails
from kop.pulsar.records import is_record, is_records_batch, join
from kop.pulsar.retention import earliest_key, first_live_batch
from kop.pulsar.transactions import batch_head

log = logging.getLogger("kop.pulsar")


@dataclass
class PartitionScan:
    """Live batches of a partition, fed one message at a time in topic order."""

    topic: str
    tail_bytes: int | None = None  # None: keep neither headers nor tail (read-only index)
    index: BatchIndex = field(default_factory=BatchIndex)
    producers: ProducerTails = field(default_factory=ProducerTails)
    tail: deque[bytes] = field(default_factory=deque)
    tail_size: int = 0
    highest_epoch: int = 0
    marker_next_offset: int = 0
    skipped_foreign: int = 0
    messages_read: int = 0  # messages this scan read from the partition topic
    checkpoint: Checkpoint | None = None  # the one it started from
    # A batch stored one message per record (entry format ``pulsar``) whose records are still
    # coming: its info and messages so far.
    pending: tuple[BatchInfo, list[Any]] | None = None

    @staticmethod
    def from_checkpoint(
        topic: str, checkpoint: Checkpoint, tail_bytes: int | None = None
    ) -> PartitionScan:
        """A scan that has seen everything before the checkpoint's resume batch; feed it from
        there (the resume batch included)."""
        scan = PartitionScan(topic, tail_bytes=tail_bytes, checkpoint=checkpoint)
        scan.index.restore(checkpoint.entries)
        if tail_bytes is not None:
            for headers in checkpoint.producers:
                for header in headers:
                    scan.producers.restore(header)
            scan.producers.txns = checkpoint.txns.copy()
        # The resume batch is live: its epoch is the highest up to it.
        scan.highest_epoch = checkpoint.resume.epoch
        return scan

    @property
    def headers(self) -> list[bytes]:
        """Headers of the last batches of every producer id (ProducerTails), oldest first."""
        return self.producers.headers()

    def feed(self, msg: Any) -> None:
        self.messages_read += 1
        props = msg.properties()
        if self.pending is not None:
            if is_record(props):
                self._more_records(msg)
                return
            # Cut short (its writer was fenced mid-batch): not part of the log.
            self.pending = None
        if is_record(props):
            return  # a record of a batch that is not live
        try:
            info = parse_partition_message(props)
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
        if is_records_batch(props):
            self.pending = (info, [])
            self._more_records(msg)
            return
        self._add_live(info, msg, msg.data())

    def _more_records(self, msg: Any) -> None:
        assert self.pending is not None
        info, msgs = self.pending
        msgs.append(msg)
        if len(msgs) == info.record_count:
            self.pending = None
            self._add_live(info, msgs[0], join(info.base_offset, msgs))

    def _add_live(self, info: BatchInfo, msg: Any, payload: bytes) -> None:
        entry = IndexEntry(
            base_offset=info.base_offset,
            last_offset=info.last_offset,
            max_timestamp=info.max_timestamp,
            size=len(payload),
            message_id=msg.message_id(),
            epoch=info.epoch,
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
        self.producers.add(batch_head(payload))
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


def _start(
    io: PulsarIO, topic: str, tail_bytes: int | None, checkpoint: Checkpoint | None
) -> tuple[PartitionScan, Any]:
    """A scan and a reader to feed it from: at the checkpoint's resume batch when the message
    there is that batch, else from the earliest message."""
    if checkpoint is not None:
        scan = PartitionScan.from_checkpoint(topic, checkpoint, tail_bytes)
        reader = io.reader(topic, checkpoint.resume.message_id)
        try:
            problem = _check_resume(io, topic, reader, scan, checkpoint)
        except BaseException:
            io.close_quietly(reader)
            raise
        if problem is None:
            _drop_deleted(io, topic, scan, checkpoint)
            return scan, reader
        io.close_quietly(reader)
        log.warning("%s: index checkpoint not used (%s); scanning from the start", topic, problem)
    return PartitionScan(topic, tail_bytes=tail_bytes), io.reader(topic)


def _check_resume(
    io: PulsarIO, topic: str, reader: Any, scan: PartitionScan, checkpoint: Checkpoint
) -> str | None:
    """Feed the message at the resume point if it is the batch the checkpoint names; else say
    what is wrong (nothing is fed then)."""
    if checkpoint.topic != topic:
        return f"it is for {checkpoint.topic}"
    want = checkpoint.resume
    with io.errors("ask for available messages", topic):
        available = reader.has_message_available()
    if not available:
        return f"nothing at or after its resume point {message_key(want.message_id)}"
    msg = io.read_next(reader, topic)
    got = message_key(msg.message_id())
    if got != message_key(want.message_id):
        return f"resume point {message_key(want.message_id)} not found, next message is {got}"
    try:
        info = parse_partition_message(msg.properties())
    except FormatError as err:
        return f"the message at the resume point is not a batch: {err}"
    if (
        not isinstance(info, BatchInfo)
        or info.base_offset != want.base_offset
        or info.last_offset != want.last_offset
        or info.epoch != want.epoch
    ):
        return f"the message at the resume point is {info}, not the batch at {want.base_offset}"
    scan.feed(msg)
    return None


def _drop_deleted(io: PulsarIO, topic: str, scan: PartitionScan, checkpoint: Checkpoint) -> None:
    """Retention may have deleted ledgers the checkpoint's entries point into: the log then
    starts at the first live batch still stored (as a full scan would find)."""
    if not checkpoint.entries:
        return
    earliest = earliest_key(io, topic)
    if earliest is None or message_key(checkpoint.entries[0][0].message_id) >= earliest:
        return
    first, _ = first_live_batch(io, topic)
    resume = checkpoint.resume
    # Entries before the resume batch (already fed) that Pulsar still has stay.
    before_resume = first is not None and first.base_offset < resume.base_offset
    scan.index.trim(first if before_resume else resume)


def scan_partition(io: PulsarIO, topic: str, checkpoint: Checkpoint | None = None) -> PartitionScan:
    """The live batches of a partition this instance does not own (index only)."""
    scan, reader = _start(io, topic, None, checkpoint)
    try:
        for msg in io.drain(reader, topic):
            scan.feed(msg)
    finally:
        io.close_quietly(reader)
    return scan


def _send_now(producer: Any, properties: dict[str, str]) -> Any:
    """Send an empty message and wait for its id; with Pulsar batching on (entry format
    ``pulsar``) a plain ``send`` would wait for the batch delay, so flush it out."""
    got: list[Any] = []
    receipt = threading.Event()

    def on_receipt(res: Any, msg_id: Any) -> None:
        got.append((res, msg_id))
        receipt.set()

    producer.send_async(b"", on_receipt, properties=properties)
    producer.flush()
    if not receipt.wait(30):
        raise RuntimeError("no receipt within 30 s of the flush")
    res, msg_id = got[0]
    if not result_ok(res):
        raise RuntimeError(f"send failed: {res}")
    return msg_id


@dataclass
class Takeover:
    producer: Any  # the Exclusive producer now held
    epoch: int
    scan: PartitionScan


def take_over(
    io: PulsarIO,
    topic: str,
    tail_bytes: int,
    checkpoint: Checkpoint | None = None,
    batching: bool = False,
) -> Takeover:
    producer = io.owner_producer(topic, batching)
    reader = None
    try:
        scan, reader = _start(io, topic, max(0, tail_bytes), checkpoint)
        for msg in io.drain(reader, topic):
            scan.feed(msg)
        epoch = scan.highest_epoch + 1
        while True:
            next_offset = scan.next_offset
            with io.errors("write the epoch marker", topic):
                marker_id = _send_now(producer, marker_properties(epoch, next_offset))
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
