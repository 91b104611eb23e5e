"""One Kafka partition in Pulsar: its writer (when owned), its index and its readers.

Threads: ``append`` runs on Rust's worker pool (``PulsarBackend.append_batches``, one call at a
time, in its ordered lane), send receipts on a client thread, reads and look-ups on other
workers of the pool. ``_lock`` guards the index and the writer state and is never held across
Pulsar I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kop.pulsar.checkpoint import (
    CHECKPOINT_BATCHES,
    CHECKPOINT_MAX_INTERVAL_S,
    CHECKPOINT_MIN_INTERVAL_S,
    Checkpoint,
    CheckpointStore,
)
from kop.pulsar.client import MessageKey, PulsarIO, message_key, result_ok, result_too_large
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import (
    BatchInfo,
    FormatError,
    MarkerInfo,
    batch_properties,
    parse_partition_message,
)
from kop.pulsar.index import BatchIndex, IndexEntry, ProducerTails
from kop.pulsar.records import is_record, is_records_batch, join, split, storable_as_records
from kop.pulsar.retention import earliest_key, first_live_batch
from kop.pulsar.takeover import PartitionScan
from kop.pulsar.transactions import batch_head

log = logging.getLogger("kop.pulsar")

# A reader's queue (the messages Pulsar pushes ahead of the reads) is sized to hold about this
# many bytes, a few fetches' worth: a fixed count of 100 let a reader of 1 MiB batches hold
# 100 MiB. (8 MiB read faster from 8 cold partitions in some runs on a loaded box, but made the
# first fetch, which opens them one after another, twice as slow.)
READ_AHEAD_BYTES = 4 << 20
READ_AHEAD_MESSAGES = (4, 1000)  # the queue's bounds, in messages
SIZE_SAMPLE = 16  # index entries the size of the messages ahead is estimated from


def read_ahead_messages(message_bytes: int) -> int:
    """The reader queue size for messages of about ``message_bytes``."""
    low, high = READ_AHEAD_MESSAGES
    return max(low, min(high, READ_AHEAD_BYTES // max(message_bytes, 1)))


# done(None): stored; done(message): not stored (or maybe not), the partition may be lost;
# done(message, too_large=True): this batch was refused for its size.
Done = Callable[..., object]


def _report(done: Done, error: str | None, too_large: bool = False) -> None:
    # An exception escaping a send callback would terminate the process (pulsar-client runs
    # callbacks on its own threads), so a failing ``done`` is only logged.
    try:
        if too_large:
            done(error, too_large=True)
        else:
            done(error)
    except Exception:
        log.exception("append completion callback failed")


class Partition:
    def __init__(
        self,
        io: PulsarIO,
        topic: str,
        index: BatchIndex,
        producer: Any = None,
        epoch: int = 0,
        producers: ProducerTails | None = None,
        checkpoints: CheckpointStore | None = None,
        tail_bytes: int = 0,
        entry_format: str = "kafka",
    ) -> None:
        self.io = io
        # "pulsar": batches are written one message per record (docs/pulsar-native-records.md)
        self.entry_format = entry_format
        self.topic = topic  # the Pulsar topic
        self.index = index
        self.epoch = epoch
        self._producer = producer
        # Owned partitions: the producer-state headers and where checkpoints go.
        self.producers = producers if producers is not None else ProducerTails()
        self._checkpoints = checkpoints if producer is not None else None
        self.tail_bytes = tail_bytes
        self.checkpoint_batches = CHECKPOINT_BATCHES
        self.checkpoint_min_interval_s = CHECKPOINT_MIN_INTERVAL_S
        self.checkpoint_max_interval_s = CHECKPOINT_MAX_INTERVAL_S
        self._checkpointed_batches = 0
        self._checkpointed_at = time.monotonic()
        self.scan_reads = 0  # messages the scan that built the index read (set by the opener)
        self._lock = threading.Lock()
        # The prefix rule: once one send failed, every later completion reports failure.
        self._failure: str | None = None if producer is not None else "not owned"
        self._reader = _ReaderCache(io, topic)

    @property
    def owned(self) -> bool:
        return self._producer is not None

    # -- writing ---------------------------------------------------------------------------------

    def append(
        self,
        epoch: int,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        payload: bytes,
        done: Done,
    ) -> None:
        with self._lock:
            producer = self._producer
            failure = self._failure
        if failure is None and epoch != self.epoch:
            # Queued before Rust re-opened the partition: refused, but not a failed send of
            # this epoch, so it does not stop the writer.
            failure = f"append with epoch {epoch}, but this instance holds epoch {self.epoch}"
        if failure is not None:
            _report(done, self._failure_message(failure))
            return
        size = len(payload)
        header = batch_head(payload)

        def on_receipt(res: Any, msg_id: Any) -> None:
            self._on_receipt(
                res, msg_id, base_offset, record_count, max_timestamp, size, header, done
            )

        try:
            if self.entry_format == "pulsar" and storable_as_records(payload):
                self._send_records(
                    producer, payload, epoch, base_offset, record_count, max_timestamp, on_receipt
                )
                return
            producer.send_async(
                payload,
                on_receipt,
                properties=batch_properties(epoch, base_offset, record_count, max_timestamp),
                event_timestamp=max_timestamp if max_timestamp > 0 else None,
            )
        except Exception as err:
            with self._lock:
                self._fail(f"send_async raised {type(err).__name__}: {err}")
                failure = self._failure
            _report(done, self._failure_message(failure))

    @staticmethod
    def _send_records(
        producer: Any,
        payload: bytes,
        epoch: int,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        on_receipt: Callable[[Any, Any], None],
    ) -> None:
        """Send the batch one message per record (Pulsar batching on), then flush, so that the
        records form one Pulsar batch entry; ``on_receipt`` once every record has its receipt,
        with the first record's message id (the batch's position) and the first failure."""
        messages = split(payload, epoch, base_offset, record_count, max_timestamp)
        got: list[tuple[Any, Any]] = []

        def record_receipt(res: Any, msg_id: Any) -> None:
            got.append((res, msg_id))  # receipts of one producer come in order, one thread
            if len(got) == len(messages):
                failed = [r for r, _ in got if not result_ok(r)]
                on_receipt(failed[0] if failed else res, got[0][1])

        for m in messages:
            producer.send_async(
                m.value,
                record_receipt,
                properties=m.properties,
                partition_key=m.partition_key,
                event_timestamp=m.event_timestamp,
            )
        # pulsar.Producer has flush() only, which blocks; its _pulsar.Producer flushes async.
        producer._producer.flush_async(lambda _res: None)

    def _on_receipt(
        self,
        res: Any,
        msg_id: Any,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        size: int,
        header: bytes,
        done: Done,
    ) -> None:
        try:
            too_large = False
            with self._lock:
                if self._failure is None and result_too_large(res):
                    # Refused by the client before sending, for its size: nothing of it is
                    # stored and the producer still holds the partition. But Rust gave the batch
                    # offsets, so later batches must not be stored after the hole: stop, and
                    # let the takeover re-sync (docs/pulsar-storage.md, "Message size").
                    too_large = True
                    self._fail(
                        f"a batch of {size} bytes is larger than Pulsar's maxMessageSize "
                        f"allows ({res}); not a lost partition: re-synced by a takeover"
                    )
                elif self._failure is None and not result_ok(res):
                    # Any other send error, a timeout included, means the partition may be lost
                    # (docs/pulsar-fencing.md): stop acknowledging until the next takeover.
                    self._fail(f"send failed: {res}")
                failure = self._failure
                if failure is None:
                    self.index.add(
                        IndexEntry(
                            base_offset=base_offset,
                            last_offset=base_offset + record_count - 1,
                            max_timestamp=max_timestamp,
                            size=size,
                            message_id=msg_id,
                            epoch=self.epoch,
                        )
                    )
                    self.producers.add(header)
                due = self._checkpoint_due()
            _report(done, None if failure is None else self._failure_message(failure), too_large)
            if due and self._checkpoints is not None:
                self._checkpoints.schedule(self.topic, self._scheduled_checkpoint)
        except Exception:  # never let an exception out of a client callback
            log.exception("%s: handling a send receipt failed", self.topic)

    def _fail(self, reason: str, warn: bool = True) -> None:
        if self._failure is None:
            self._failure = reason
            if warn and self._producer is not None:
                log.warning("%s: stopped writing (epoch %d): %s", self.topic, self.epoch, reason)

    def _failure_message(self, failure: str | None) -> str:
        return f"Pulsar {self.io.url} {self.topic}: not writable: {failure}"

    def close(self, reason: str = "closed", checkpoint: bool = True) -> None:
        """Stop writing and reading; an owned partition first writes a checkpoint of its index
        (``checkpoint``), unless nothing was added since the last one."""
        with self._lock:
            self._fail(reason, warn=False)
            producer, self._producer = self._producer, None
            fresh = self.index.batches > self._checkpointed_batches
        if checkpoint and fresh and self._checkpoints is not None:
            try:
                self.write_checkpoint(wait=True)
            except PulsarStorageError as err:
                log.warning("%s: no checkpoint on close: %s", self.topic, err)
        PulsarIO.close_quietly(producer)
        self._reader.close()

    # -- checkpoints -----------------------------------------------------------------------------

    def opened_by(self, scan: PartitionScan) -> None:
        """Note the scan that built the index; after a long one, checkpoint right away (in the
        background), after a short one only once new batches come."""
        self.scan_reads = scan.messages_read
        with self._lock:
            self._checkpointed_batches = self.index.batches
        if scan.messages_read >= self.checkpoint_batches and self._checkpoints is not None:
            self._checkpoints.schedule(self.topic, self._scheduled_checkpoint)

    def _scheduled_checkpoint(self) -> None:
        if self.owned:  # closing wrote its own
            self.write_checkpoint(wait=True)

    def _checkpoint_due(self) -> bool:
        """Whether to write a checkpoint now (called with the lock held, after a receipt)."""
        if self._checkpoints is None or self._failure is not None:
            return False
        added = self.index.batches - self._checkpointed_batches
        since = time.monotonic() - self._checkpointed_at
        return added > 0 and (
            (added >= self.checkpoint_batches and since >= self.checkpoint_min_interval_s)
            or since >= self.checkpoint_max_interval_s
        )

    def write_checkpoint(self, wait: bool = False) -> bool:
        """Write the index as the partition's checkpoint (docs/pulsar-storage.md, "Index
        checkpoints"); False when there is nothing to write. ``wait``: until Pulsar has it."""
        if self._checkpoints is None:
            return False
        with self._lock:
            checkpoint = Checkpoint.of(
                self.topic, self.epoch, self.index, self.producers, self.tail_bytes
            )
            self._checkpointed_batches = self.index.batches
            self._checkpointed_at = time.monotonic()
        if checkpoint is None:
            return False
        self._checkpoints.save(self.topic, checkpoint.encode(), wait=wait)
        return True

    # -- reading ---------------------------------------------------------------------------------

    def trim_to_stored(self) -> int:
        """Drop what Pulsar's retention deleted from the index; the log start offset (the first
        live batch Pulsar still has), or -1 when it has none."""
        with self._lock:
            known = self.index[0] if len(self.index) else None
        if known is None:
            return -1
        earliest = earliest_key(self.io, self.topic)
        if earliest is not None and message_key(known.message_id) >= earliest:
            return known.base_offset  # nothing deleted
        first, _ = first_live_batch(self.io, self.topic)
        with self._lock:
            dropped = self.index.trim(first)
            # Aborted transactions before the log start are gone with their data (all of
            # them when nothing is left).
            self.producers.txns.trim(first.base_offset if first is not None else 1 << 62)
        self._reader.reset()
        log.info(
            "%s: retention deleted data; log starts at %s now (%d index entries dropped)",
            self.topic,
            "nothing stored" if first is None else first.base_offset,
            dropped,
        )
        return -1 if first is None else first.base_offset

    def position_for(self, offset: int) -> MessageKey | None:
        """The (ledger id, entry id) of an indexed batch at or before the one holding
        ``offset``, from which everything from ``offset`` on is stored (compaction trims the
        partition topic before it); None when the index has no such batch."""
        with self._lock:
            i = self.index.find(offset)
            if i is None:
                return None
            if self.index.gap_before(i) and offset < self.index[i].base_offset:
                i -= 1
            return message_key(self.index[i].message_id)

    def covers(self, offset: int) -> bool:
        with self._lock:
            end = self.index.next_offset
        return end is not None and offset < end

    def _start_for(self, i: int, before: int | None) -> tuple[IndexEntry, bool, MessageKey]:
        """Where a reader starts for entry ``i`` of the index (lock held): at it, or when
        ``gap_before`` it and ``before`` does not rule the gap out, at entry ``i - 1`` (which
        is skipped). Also the key of the last indexed batch, which reading never goes past."""
        in_gap = self.index.gap_before(i) and (before is None or before < self.index[i].base_offset)
        start = self.index[i - 1] if in_gap else self.index[i]
        return start, in_gap, message_key(self.index[len(self.index) - 1].message_id)

    def _message_bytes(self, i: int) -> int:
        """The mean size of the Pulsar messages from entry ``i`` of the index on (lock held),
        from the batches indexed there: one message per batch, or per record (entry format
        ``pulsar``)."""
        entries = [self.index[j] for j in range(i, min(i + SIZE_SAMPLE, len(self.index)))]
        size = sum(e.size for e in entries)
        if self.entry_format == "pulsar":
            return size // max(1, sum(e.last_offset - e.base_offset + 1 for e in entries))
        return size // max(1, len(entries))

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
        with self._lock:
            i = self.index.find(offset)
            if i is None:
                return []
            start, skip_start, end_key = self._start_for(i, offset)
            message_bytes = self._message_bytes(i)
        out: list[bytes] = []
        total = 0
        cursor = self._reader.take(offset) or self._reader.open(
            start, skip_start, end_key, message_bytes
        )
        cursor.end_key = max(cursor.end_key, end_key)
        try:
            while True:
                item = cursor.peek()
                if item is None:
                    break
                info, data = item
                if info.last_offset < offset:
                    cursor.pop()
                    continue
                if info.base_offset >= upper or (out and total + len(data) > max_bytes):
                    break
                cursor.pop()
                out.append(data)
                total += len(data)
                cursor.next_offset = info.next_offset
        except BaseException:
            cursor.close()
            raise
        self._reader.put(cursor)
        return out

    # Time look-ups: the running max timestamp narrows the search to the hole before entry i.
    # It can only be too high (after retention deleted a batch with a larger timestamp, which
    # it still counts), never too low, so reading on past entry i stays correct.

    def batch_at_timestamp(self, ts: int) -> bytes | None:
        with self._lock:
            i = self.index.first_at_timestamp(ts)
            if i is None:
                return None
            start, skip_start, end_key = self._start_for(i, None)
            message_bytes = self._message_bytes(i)
        found = self._first(
            start, skip_start, end_key, message_bytes, lambda info: info.max_timestamp >= ts
        )
        return None if found is None else found[1]

    def batch_with_max_timestamp(self) -> bytes | None:
        with self._lock:
            i = self.index.first_with_max_timestamp()
            if i is None:
                return None
            start, skip_start, end_key = self._start_for(i, None)
            message_bytes = self._message_bytes(i)
            target = self.index.running_max(i)
            first = self.index[0]
            first_message_bytes = self._message_bytes(0)
        found = self._first(
            start, skip_start, end_key, message_bytes, lambda info: info.max_timestamp >= target
        )
        if found is not None:
            return found[1]
        # That maximum was deleted by retention: look at every batch left.
        best: tuple[BatchInfo, bytes] | None = None
        cursor = self._reader.open(first, False, end_key, first_message_bytes)
        try:
            while (item := cursor.peek()) is not None:
                if best is None or item[0].max_timestamp > best[0].max_timestamp:
                    best = item
                cursor.pop()
        finally:
            cursor.close()
        return None if best is None else best[1]

    def _first(
        self,
        start: IndexEntry,
        skip_start: bool,
        end_key: MessageKey,
        message_bytes: int,
        wanted: Callable[[BatchInfo], bool],
    ) -> tuple[BatchInfo, bytes] | None:
        """The first live batch from ``start`` on (up to ``end_key``) that is ``wanted``."""
        cursor = self._reader.open(start, skip_start, end_key, message_bytes)
        try:
            while (item := cursor.peek()) is not None:
                if wanted(item[0]):
                    return item
                cursor.pop()
            return None
        finally:
            cursor.close()


class _Cursor:
    """A reader positioned in the partition that yields its live batches (the rule of the
    takeover scan, from the epoch of the batch it started at) and never reads past
    ``end_key``, the last batch known to exist (so it never waits for a message)."""

    def __init__(self, io: PulsarIO, topic: str, reader: Any, epoch: int, end_key: MessageKey):
        self.io = io
        self.topic = topic
        self.reader = reader
        self.highest_epoch = epoch
        self.end_key = end_key
        self.last_key: MessageKey = (-1, -1)  # the last message read
        self.next_offset = -1  # the offset a read continuing here asks for
        self._pending: tuple[BatchInfo, bytes] | None = None
        self._pushed_back: Any = None  # a message read ahead, to be read again

    def _next(self) -> Any:
        msg, self._pushed_back = self._pushed_back, None
        if msg is None:
            msg = self.io.read_next(self.reader, self.topic)
            self.last_key = message_key(msg.message_id())
        return msg

    def peek(self) -> tuple[BatchInfo, bytes] | None:
        while self._pending is None:
            if self._pushed_back is None and self.last_key >= self.end_key:
                return None
            msg = self._next()
            props = msg.properties()
            if is_record(props):
                continue  # of a batch that is not live
            try:
                info = parse_partition_message(props)
            except FormatError:
                continue
            if isinstance(info, MarkerInfo):
                self.highest_epoch = max(self.highest_epoch, info.epoch)
            elif info.epoch >= self.highest_epoch:
                self.highest_epoch = info.epoch
                if is_records_batch(props):
                    data = self._records(info, msg)
                    if data is not None:
                        self._pending = (info, data)
                else:
                    self._pending = (info, msg.data())
        return self._pending

    def _records(self, info: BatchInfo, first: Any) -> bytes | None:
        """The batch stored one message per record from ``first`` on (entry format
        ``pulsar``); None when it was cut short (the next message is then read again)."""
        msgs = [first]
        while len(msgs) < info.record_count:
            msg = self._next()
            if not is_record(msg.properties()):
                self._pushed_back = msg
                return None
            msgs.append(msg)
        return join(info.base_offset, msgs)

    def pop(self) -> None:
        self._pending = None

    def close(self) -> None:
        self.io.close_later(self.reader)


class _ReaderCache:
    """Opens cursors, and keeps the one where the last read stopped: consumers read
    sequentially, so the next read usually continues with it (also inside a sparse part of the
    index, which a fresh cursor would read from its start)."""

    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._lock = threading.Lock()
        self._cursor: _Cursor | None = None
        self._closed = False

    def open(
        self, start: IndexEntry, skip_start: bool, end_key: MessageKey, message_bytes: int
    ) -> _Cursor:
        """A cursor at the indexed batch ``start`` (checked), past it when ``skip_start``;
        its reader reads ahead about READ_AHEAD_BYTES of messages of ``message_bytes``."""
        queue_size = read_ahead_messages(message_bytes)
        reader = self.io.reader(self.topic, start.message_id, queue_size=queue_size)
        cursor = _Cursor(self.io, self.topic, reader, start.epoch, end_key)
        try:
            item = cursor.peek()
            want = message_key(start.message_id)
            if item is None or cursor.last_key != want or item[0].base_offset != start.base_offset:
                raise PulsarStorageError(
                    f"Pulsar {self.io.url} {self.topic}: batch at offset {start.base_offset} "
                    f"({want}) not found, reader is at {cursor.last_key}"
                )
            if skip_start:
                cursor.pop()
        except BaseException:
            cursor.close()
            raise
        return cursor

    def take(self, offset: int) -> _Cursor | None:
        """The kept cursor if a read at ``offset`` continues where it stopped."""
        with self._lock:
            if self._closed:
                raise PulsarStorageError(f"Pulsar {self.io.url} {self.topic}: partition closed")
            cursor = self._cursor
            if cursor is None or cursor.next_offset != offset:
                return None
            self._cursor = None
            return cursor

    def put(self, cursor: _Cursor) -> None:
        with self._lock:
            old = None
            if self._closed or cursor.next_offset < 0:
                old = cursor
            else:
                old, self._cursor = self._cursor, cursor
        if old is not None:
            old.close()

    def reset(self) -> None:
        """Forget the kept cursor (it may stand in deleted data)."""
        with self._lock:
            cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()
