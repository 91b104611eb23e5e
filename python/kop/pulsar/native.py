"""Pulsar-format partitions: topics written by ordinary Pulsar producers, read by Kafka clients
(docs/pulsar-native-records.md, section 1).

A partition topic whose earliest message is not kop's (no ``kop.type``) is served read-only:
every Pulsar message (each message of a batch entry too) is one Kafka record, encoded on read as
a Kafka RecordBatch v2 of one record. kop takes no producer on such a partition (Pulsar
producers keep writing) and writes no marker; Kafka produces are refused (in Rust, with
INVALID_TOPIC_EXCEPTION).

**Offsets** are positions in the topic: with the broker's ``AppendIndexMetadataInterceptor``
the earliest stored message's offset is its broker index (so offsets survive Pulsar retention
deleting ledgers), else 0; later messages are counted from it, every message counting (kop's
own markers, if any, leave holes).

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

from kop.pulsar.client import PulsarIO
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import PROP_TYPE
from kop.pulsar.index import BatchIndex, IndexEntry
from kop.pulsar.records import Rec, encode_batch

log = logging.getLogger("kop.pulsar")

Done = Callable[..., object]
# (ledger, entry, batch index): the order of messages in a topic, batch entries included
# (batch index -1 for a message that is not in a batch).
NativeKey = tuple[int, int, int]

REFUSED = "kafka producers cannot write to this Pulsar-format partition"
# (broker index of an entry's last message, messages in the entry), None without an index.
Anchor = Callable[[int, int], "tuple[int, int] | None"]
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
    return (msg_id.ledger_id(), msg_id.entry_id(), msg_id.batch_index())


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

    def __init__(self, io: PulsarIO, topic: str, anchor: Anchor | None = None) -> None:
        self.io = io
        self.topic = topic
        self.index = BatchIndex()
        self.scan_reads = 0
        self.anchored = False  # offsets come from the broker index (they survive retention)
        self._anchor = anchor
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
        found = None if self._anchor is None else self._anchor(mid.ledger_id(), mid.entry_id())
        if found is None:
            self.anchored = False
            if self._anchor is not None and self.topic not in _UNANCHORED_WARNED:
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
        if is_native(msg.properties()):  # else kop's own (a marker of an earlier takeover)
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
        reader = self.io.reader(self.topic, queue_size=1)
        try:
            first = next(iter(self.io.drain(reader, self.topic)), None)
        finally:
            self.io.close_quietly(reader)
        if first is None:
            return -1
        mid = first.message_id()
        found = self._anchor(mid.ledger_id(), mid.entry_id()) if self._anchor else None
        if found is None:
            return 0 if len(self.index) else -1
        start = offset_in_entry(found, mid)
        with self._lock:
            i = self.index.find(start)
            if i is not None and i > 0:
                self.index.trim(self.index[i])
        return start

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
        want = native_key(start.message_id)
        reader = self.io.reader(self.topic, start.message_id, queue_size=100)
        offset = start.base_offset
        first = True
        try:
            while True:
                msg = self.io.read_next(reader, self.topic)
                key = native_key(msg.message_id())
                if key < want:
                    continue  # a reader at a batch message may start at the entry's first
                if first and key > want:
                    # Its ledger is gone (Pulsar retention): counting on would mislabel.
                    raise PulsarStorageError(
                        f"Pulsar {self.io.url} {self.topic}: offset {start.base_offset} was "
                        "deleted by Pulsar retention; the log start moves at the next "
                        "retention check"
                    )
                first = False
                if is_native(msg.properties()):
                    yield offset, msg
                if key >= end:
                    return
                offset += 1
        finally:
            self.io.close_quietly(reader)

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
        recent = self._read_recent(offset, max_bytes, upper)
        if recent is not None:
            return recent
        with self._lock:
            i = self.index.find(offset)
            if i is None:
                return []
            start = self._start(i, offset)
        out: list[bytes] = []
        total = 0
        for at, msg in self._messages(start):
            if at < offset:
                continue
            if at >= upper:
                break
            batch = message_batch(msg, at)
            if out and total + len(batch) > max_bytes:
                break
            out.append(batch)
            total += len(batch)
        return out

    def batch_at_timestamp(self, ts: int) -> bytes | None:
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
