"""Pulsar-format partitions: topics written by ordinary Pulsar producers, read by Kafka clients
(docs/pulsar-native-records.md, section 1).

A partition topic whose earliest message is not kop's (no ``kop.type``) is served read-only:
every Pulsar message (each message of a batch entry too) is one Kafka record, encoded on read as
a Kafka RecordBatch v2 of one record. kop takes no producer on such a partition (Pulsar
producers keep writing) and writes no marker; Kafka produces are refused (in Rust, with
INVALID_TOPIC_EXCEPTION).

**Offsets** are positions in the topic: with the broker's ``AppendIndexMetadataInterceptor``
a message's offset is its broker index (so offsets survive Pulsar retention deleting ledgers),
and opening the partition reads nothing: the log start and end come from the earliest and
latest entries' indexes, and a read at an offset asks the broker which entry holds it
(``kop.pulsar.native_index``), caching positions sparsely. Without the index (entries written
before the interceptor was on) the partition is scanned and counted from 0, every message
counting (kop's own markers, if any, leave holes).

**Live tail** (the seam to Rust, ``follow_partition``): the instance serving the partition keeps
a reader after its last message on a thread (``follow``); each new message is indexed and its
end offset reported to Rust (``kop._native.PartitionEnd``), which makes it the high watermark
and wakes waiting fetches.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pulsar

from kop.pulsar.client import PulsarIO, message_id
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import PROP_TYPE
from kop.pulsar.index import BatchIndex, IndexEntry
from kop.pulsar.native_index import (
    BrokerIndex,
    NativeKey,
    PositionCache,
    entry_first_offset,
    key_in_entry,
    search_start,
)
from kop.pulsar.records import Rec, encode_batch

log = logging.getLogger("kop.pulsar")

Done = Callable[..., object]

REFUSED = "kafka producers cannot write to this Pulsar-format partition"
# A read at most this many messages after a cached position reads forward from it; further
# away, the broker is asked where the offset is (two admin calls, ~10 ms each).
NEAR_MESSAGES = 256
# A time look-up reads forward once at most this many offsets are left to search.
LINEAR_MESSAGES = 256
# A look-up of the largest timestamp reads this many of the newest messages.
MAX_TIMESTAMP_WINDOW = 64
# How long the follower's reader waits for a message before checking whether it should stop.
FOLLOW_POLL_MS = 500
# Newest followed messages kept encoded, so consumers at the tail read without a Pulsar reader.
RECENT_BYTES = 1 << 20
_UNANCHORED_WARNED: set[str] = set()  # topics warned about (once per process)


def is_native(props: dict[str, str]) -> bool:
    """Whether a message was written by a Pulsar application rather than by kop."""
    return PROP_TYPE not in props


def message_timestamp(msg: Any) -> int:
    """The Kafka timestamp of a Pulsar message: its event time, else its publish time."""
    event = int(msg.event_timestamp() or 0)
    return event if event > 0 else int(msg.publish_timestamp())


def message_batch(msg: Any, offset: int) -> bytes:
    """The Kafka batch (one record) of the Pulsar message ``msg`` at ``offset``."""
    key = msg.partition_key() or msg.ordering_key() or None
    key_bytes = key.encode() if isinstance(key, str) else key
    value = None if msg.has_null_value() else bytes(msg.data())
    props = msg.properties()
    headers = [(name, str(props[name]).encode()) for name in sorted(props)]
    return encode_batch(offset, [Rec(message_timestamp(msg), key_bytes, value, headers)])


def native_key(msg_id: Any) -> NativeKey:
    return (msg_id.ledger_id(), msg_id.entry_id(), max(int(msg_id.batch_index()), 0))


def offset_in_entry(found: tuple[int, int], msg_id: Any) -> int:
    """The offset of message ``msg_id`` from its entry's (broker index, messages): the index
    counts up to the entry's last message."""
    index, count = found
    return index - count + 1 + max(int(msg_id.batch_index()), 0)


def first_message_is_native(io: PulsarIO, topic: str) -> bool:
    """Whether the earliest message Pulsar stores of ``topic`` is a Pulsar application's."""
    reader = io.reader(topic, queue_size=1)
    try:
        for msg in io.drain(reader, topic):
            return is_native(msg.properties())
    finally:
        io.close_quietly(reader)
    return False


# -- the partition ------------------------------------------------------------------------------


class NativePartition:
    """A read-only Pulsar-format partition: the same read interface as ``Partition``."""

    owned = False  # nothing to write: the backend re-scans it when asked beyond its end
    epoch = 0

    def __init__(self, io: PulsarIO, topic: str, broker: BrokerIndex | None = None) -> None:
        self.io = io
        self.topic = topic
        self.index = BatchIndex()  # a scanned partition's (no broker index)
        self.scan_reads = 0  # messages read to open it and to follow it
        self.anchored = False  # offsets come from the broker index (they survive retention)
        # Positioned through the broker index: nothing was scanned, ``positions`` and the
        # broker say where offsets are (``open``).
        self.indexed = False
        self.positions = PositionCache()
        self._log_start = 0  # the log start (indexed)
        self._broker = broker
        self._lock = threading.Lock()
        self._warned = False
        # The last message counted (any, kop's markers too) and the offset after it.
        self._last_id: Any = None
        self._last_key: NativeKey | None = None
        self._next = 0
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._recent: deque[tuple[int, bytes]] = deque()  # (offset, batch), contiguous
        self._recent_bytes = 0

    def _offset_of_first(self, msg: Any) -> int:
        """The offset of the earliest stored message ``msg``: from its entry's broker index
        when there is one, else 0 (counting from the earliest message)."""
        mid = msg.message_id()
        found = None if self._broker is None else self._broker.entry_index(*_entry(mid))
        if found is None:
            self.anchored = False
            if self._broker is not None and self.topic not in _UNANCHORED_WARNED:
                _UNANCHORED_WARNED.add(self.topic)
                log.warning(
                    "%s: no broker entry index (AppendIndexMetadataInterceptor off): Kafka "
                    "offsets count from the earliest stored message and shift if Pulsar "
                    "retention deletes ledgers",
                    self.topic,
                )
            return 0
        self.anchored = True
        return offset_in_entry(found, mid)

    def _count(self, msg: Any) -> int:
        """Give ``msg`` (the next message of the topic) its offset; index it if it is a Pulsar
        application's. Called with the lock held (or before the partition is shared)."""
        offset = self._offset_of_first(msg) if self._last_key is None else self._next
        if self.indexed:
            if offset % NEAR_MESSAGES == 0:
                self.positions.add(offset, native_key(msg.message_id()))
        elif is_native(msg.properties()):  # else kop's own (a marker of an earlier takeover)
            self.index.add(
                IndexEntry(
                    base_offset=offset,
                    last_offset=offset,
                    max_timestamp=message_timestamp(msg),
                    size=len(msg.data()),
                    message_id=msg.message_id(),
                )
            )
        self._last_id = msg.message_id()
        self._last_key = native_key(self._last_id)
        self._next = offset + 1
        return self._next

    def open(self) -> NativePartition:
        """Find the log start and end through the broker entry index (reading no message);
        without one (or without Pulsar's ``getMessageIdByIndex``), ``scan``."""
        if self._broker is not None:
            try:
                if self._open_indexed(self._broker):
                    return self
            except PulsarStorageError as err:
                if err.permanent:
                    raise
                log.warning(
                    "%s: cannot position offsets through the broker entry index (%s); reading "
                    "the partition instead",
                    self.topic,
                    err,
                )
        return self.scan()

    def _open_indexed(self, broker: BrokerIndex) -> bool:
        first = broker.earliest()
        if first is None or first[2] is None:
            return False  # nothing stored, or written before the interceptor: scan (and warn)
        last = broker.latest()
        if last is None or last[2] is None:
            return False
        # Pulsar 4.1+ answers where an index is; an older broker fails here (then: scan).
        if broker.entry_of(last[2]) != (last[0], last[1]):
            return False
        first_ledger, first_entry, first_index, first_count = first
        ledger_id, entry_id, index, count = last
        if first_index is None or index is None:
            return False
        with self._lock:
            self.indexed = self.anchored = True
            self._log_start = entry_first_offset(first_index, first_count)
            self.positions.add(self._log_start, (first_ledger, first_entry, 0))
            self.positions.add(entry_first_offset(index, count), (ledger_id, entry_id, 0))
            # The follower starts after the latest entry's last message.
            self._last_id = message_id(ledger_id, entry_id)
            self._last_key = (ledger_id, entry_id, max(count - 1, 0))
            self._next = index + 1
        return True

    def refresh(self) -> None:
        """Move the end to the latest entry's (a read-only partition nobody follows here)."""
        if not self.indexed or self._follower is not None or self._broker is None:
            return
        last = self._broker.latest()
        if last is None or last[2] is None:
            return
        with self._lock:
            if last[2] + 1 > self._next:
                self._next = last[2] + 1
                self._last_id = message_id(last[0], last[1])
                self._last_key = (last[0], last[1], max(last[3] - 1, 0))

    def scan(self) -> NativePartition:
        """Index every message from the earliest one to the end as of now."""
        reader = self.io.reader(self.topic)
        try:
            for msg in self.io.drain(reader, self.topic):
                self.scan_reads += 1
                self._count(msg)
        finally:
            self.io.close_quietly(reader)
        return self

    # -- the live tail ---------------------------------------------------------------------------

    def follow(self, end: Callable[[int], object]) -> None:
        """Keep indexing what Pulsar producers append, reporting each new end offset to
        ``end`` (Rust's high watermark), until ``close``."""
        name = "kop-follow-" + self.topic.rsplit("/", 1)[-1]
        self._follower = threading.Thread(target=self._follow, args=(end,), name=name, daemon=True)
        self._follower.start()

    def _follow(self, end: Callable[[int], object]) -> None:
        while not self._stop.is_set():
            reader = None
            try:
                with self._lock:
                    start = self._last_id
                reader = self.io.reader(self.topic, start, queue_size=1000)
                while not self._stop.is_set():
                    try:
                        msg = reader.read_next(timeout_millis=FOLLOW_POLL_MS)
                    except pulsar.Timeout:
                        continue
                    with self._lock:
                        if self._last_key is not None and (
                            native_key(msg.message_id()) <= self._last_key
                        ):
                            continue  # the start message, or its entry's earlier ones
                        self.scan_reads += 1
                        next_offset = self._count(msg)
                        if is_native(msg.properties()):
                            self._remember(next_offset - 1, message_batch(msg, next_offset - 1))
                    end(next_offset)
            except Exception as err:
                if self._stop.is_set():
                    break
                log.warning(
                    "%s: following Pulsar producers' writes failed (%s); again in 1 s",
                    self.topic,
                    err,
                )
                self._stop.wait(1.0)
            finally:
                self.io.close_quietly(reader)

    def _remember(self, offset: int, batch: bytes) -> None:
        """Keep a followed message's batch (lock held); the oldest go past RECENT_BYTES."""
        self._recent.append((offset, batch))
        self._recent_bytes += len(batch)
        while self._recent_bytes > RECENT_BYTES and len(self._recent) > 1:
            self._recent_bytes -= len(self._recent.popleft()[1])

    def _read_recent(self, offset: int, max_bytes: int, upper: int) -> list[bytes] | None:
        """What ``read`` returns, from the followed messages kept; None if they start later."""
        with self._lock:
            if not self._recent or offset < self._recent[0][0]:
                return None
            out: list[bytes] = []
            total = 0
            for at, batch in self._recent:
                if at < offset:
                    continue
                if at >= upper or (out and total + len(batch) > max_bytes):
                    break
                out.append(batch)
                total += len(batch)
            return out

    @property
    def next_offset(self) -> int:
        return self._next

    @property
    def log_start(self) -> int:
        if self.indexed:
            return self._log_start
        return self.index[0].base_offset if len(self.index) else self.next_offset

    # -- writing: refused ------------------------------------------------------------------------

    def append(
        self,
        epoch: int,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        payload: bytes,
        done: Done,
    ) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s: %s (Pulsar applications write it)", self.topic, REFUSED)
        try:
            done(f"Pulsar {self.io.url} {self.topic}: {REFUSED}")
        except Exception:
            log.exception("append completion callback failed")

    def close(self, reason: str = "closed", checkpoint: bool = True) -> None:
        """Stop following (nothing else is held between reads)."""
        self._stop.set()
        follower = self._follower
        if follower is not None and follower is not threading.current_thread():
            follower.join(timeout=2 * FOLLOW_POLL_MS / 1000)

    def write_checkpoint(self, wait: bool = False) -> bool:
        return False

    # -- reading ---------------------------------------------------------------------------------

    def covers(self, offset: int) -> bool:
        return offset < self.next_offset

    def trim_to_stored(self) -> int:
        """The log start after what Pulsar's retention deleted: the offset of the earliest stored
        message when offsets come from the broker index, else 0 (offsets count from the
        earliest stored message, docs/pulsar-native-records.md); -1 when nothing is stored."""
        if not self.anchored:
            return 0 if len(self.index) else -1
        if self.indexed and self._broker is not None:
            first = self._broker.earliest()
            if first is None:
                return -1
            if first[2] is None:
                return self._log_start
            start = entry_first_offset(first[2], first[3])
            with self._lock:
                if start > self._log_start:
                    self._log_start = start
                    self.positions.drop_below(start)
                    self.positions.add(start, (first[0], first[1], 0))
                return self._log_start
        reader = self.io.reader(self.topic, queue_size=1)
        try:
            first_msg = next(iter(self.io.drain(reader, self.topic)), None)
        finally:
            self.io.close_quietly(reader)
        if first_msg is None:
            return -1
        mid = first_msg.message_id()
        found = self._broker.entry_index(*_entry(mid)) if self._broker else None
        if found is None:
            return 0 if len(self.index) else -1
        start = offset_in_entry(found, mid)
        with self._lock:
            i = self.index.find(start)
            if i is not None and i > 0:
                self.index.trim(self.index[i])
        return start

    def _deleted(self, offset: int) -> PulsarStorageError:
        return PulsarStorageError(
            f"Pulsar {self.io.url} {self.topic}: offset {offset} was deleted by Pulsar "
            "retention; the log start moves at the next retention check"
        )

    # Scanned partitions: positions from the BatchIndex.

    def _start(self, i: int, offset: int | None) -> IndexEntry:
        """The indexed message a cursor starts at to reach entry ``i`` (or ``offset`` in the
        hole before it)."""
        gap = self.index.gap_before(i)
        if gap and (offset is None or offset < self.index[i].base_offset):
            return self.index[i - 1]
        return self.index[i]

    def _messages(self, start: IndexEntry) -> Iterable[tuple[int, Any]]:
        """(offset, message) of the Pulsar applications' messages from the indexed message
        ``start`` to the last indexed one (every message counts, kop's markers too)."""
        with self._lock:
            end = native_key(self.index[len(self.index) - 1].message_id)
        return self._messages_from(start.base_offset, native_key(start.message_id), end=end)

    # Indexed partitions: positions from the cache, else the broker.

    def _position(self, offset: int) -> tuple[int, NativeKey]:
        """A position at or at most NEAR_MESSAGES before ``offset``: cached, else the entry
        the broker index says holds it (cached then)."""
        with self._lock:
            near = self.positions.at_or_before(offset)
        if near is not None and offset - near[0] <= NEAR_MESSAGES:
            return near
        broker = self._broker
        if broker is None:
            raise AssertionError("an indexed partition has a broker index")
        entry = broker.entry_of(offset)
        if entry is None:
            raise PulsarStorageError(
                f"Pulsar {self.io.url} {self.topic}: no stored message has broker index {offset}"
            )
        if entry == (-1, -1):  # in the earliest stored entry, or deleted before it
            first = broker.earliest()
            if first is None or first[2] is None or offset < entry_first_offset(first[2], first[3]):
                raise self._deleted(offset)
            ledger_id, entry_id, index, count = first[0], first[1], first[2], first[3]
        else:
            ledger_id, entry_id = entry
            found = broker.entry_index(ledger_id, entry_id)
            if found is None:
                raise PulsarStorageError(
                    f"Pulsar {self.io.url} {self.topic}: entry {ledger_id}:{entry_id} has no "
                    "broker index"
                )
            index, count = found
        try:
            key = key_in_entry(ledger_id, entry_id, index, count, offset)
        except ValueError as err:
            raise PulsarStorageError(f"Pulsar {self.io.url} {self.topic}: {err}") from err
        with self._lock:
            self.positions.add(offset, key)
        return offset, key

    def _indexed_messages(self, offset: int) -> Iterable[tuple[int, Any]]:
        """(offset, message) of the Pulsar applications' messages from ``offset`` to the end
        known now."""
        if offset >= self._next:
            return iter(())
        at, key = self._position(offset)
        return self._messages_from(at, key, last=self._next - 1)

    def _messages_from(
        self, offset: int, want: NativeKey, end: NativeKey | None = None, last: int | None = None
    ) -> Iterable[tuple[int, Any]]:
        """(offset, message) of the Pulsar applications' messages from the message ``want``
        (at ``offset``) to the message ``end`` or the offset ``last`` (every message counts,
        kop's markers too)."""
        # A reader starts at the entry's first message; the messages before ``want`` are skipped.
        reader = self.io.reader(self.topic, message_id(want[0], want[1]), queue_size=100)
        first = True
        try:
            while True:
                msg = self.io.read_next(reader, self.topic)
                key = native_key(msg.message_id())
                if key < want:
                    continue
                if first and key > want:
                    # Its ledger is gone (Pulsar retention): counting on would mislabel.
                    raise self._deleted(offset)
                first = False
                with self._lock:
                    self.scan_reads += 1
                if is_native(msg.properties()):
                    yield offset, msg
                if (end is not None and key >= end) or (last is not None and offset >= last):
                    return
                offset += 1
        finally:
            self.io.close_quietly(reader)

    def _from(self, offset: int) -> Iterable[tuple[int, Any]]:
        """The messages from (about) ``offset`` on: indexed or scanned positions."""
        if self.indexed:
            return self._indexed_messages(offset)
        with self._lock:
            i = self.index.find(offset)
            if i is None:
                return iter(())
            start = self._start(i, offset)
        return self._messages(start)

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
        recent = self._read_recent(offset, max_bytes, upper)
        if recent is not None:
            return recent
        out: list[bytes] = []
        total = 0
        last: tuple[int, Any] | None = None
        for at, msg in self._from(offset):
            if at < offset:
                continue
            if at >= upper:
                break
            batch = message_batch(msg, at)
            if out and total + len(batch) > max_bytes:
                break
            out.append(batch)
            total += len(batch)
            last = (at, msg)
        if last is not None and self.indexed:  # the next read starts after it
            with self._lock:
                self.positions.add(last[0], native_key(last[1].message_id()))
        return out

    def _first_native(self, offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first Pulsar application's message at or after
        ``offset`` (a probe of the time look-up's binary search)."""
        for at, msg in self._indexed_messages(offset):
            if at >= offset:
                return at, message_timestamp(msg)
        return None

    def batch_at_timestamp(self, ts: int) -> bytes | None:
        if self.indexed:
            lo = search_start(self._log_start, self._next, ts, self._first_native, LINEAR_MESSAGES)
            for at, msg in self._indexed_messages(lo):
                if message_timestamp(msg) >= ts:
                    return message_batch(msg, at)
            return None
        with self._lock:
            i = self.index.first_at_timestamp(ts)
            if i is None:
                return None
            start = self._start(i, None)
        for at, msg in self._messages(start):
            if message_timestamp(msg) >= ts:
                return message_batch(msg, at)
        return None

    def batch_with_max_timestamp(self) -> bytes | None:
        if self.indexed:
            # The newest messages' largest timestamp, then its first message (exact when
            # timestamps do not decrease with offsets, see search_start).
            newest = max(self._log_start, self._next - MAX_TIMESTAMP_WINDOW)
            stamps = [message_timestamp(msg) for _, msg in self._indexed_messages(newest)]
            return self.batch_at_timestamp(max(stamps)) if stamps else None
        with self._lock:
            i = self.index.first_with_max_timestamp()
            if i is None:
                return None
            start = self._start(i, None)
            target = self.index.running_max(i)
        for at, msg in self._messages(start):
            if message_timestamp(msg) >= target:
                return message_batch(msg, at)
        return None


def _entry(msg_id: Any) -> tuple[int, int]:
    return (msg_id.ledger_id(), msg_id.entry_id())
