"""Pulsar-format partitions: topics written by ordinary Pulsar producers, read by Kafka clients
(docs/pulsar-native-records.md, section 1).

A partition topic whose earliest message is not kop's (no ``kop.type``) is served read-only:
every Pulsar message (each message of a batch entry too) is one Kafka record, its offset its
position in the topic, encoded on read as a Kafka RecordBatch v2 of one record. kop takes no
producer on such a partition (Pulsar producers keep writing) and writes no marker; Kafka
produces are refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kop.pulsar.client import PulsarIO
from kop.pulsar.format import PROP_TYPE
from kop.pulsar.index import BatchIndex, IndexEntry
from kop.pulsar.records import Rec, encode_batch

log = logging.getLogger("kop.pulsar")

Done = Callable[..., object]
# (ledger, entry, batch index): the order of messages in a topic, batch entries included
# (batch index -1 for a message that is not in a batch).
NativeKey = tuple[int, int, int]

REFUSED = "kafka producers cannot write to this Pulsar-format partition"


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

    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self.index = BatchIndex()
        self.scan_reads = 0
        self._lock = threading.Lock()
        self._warned = False

    def scan(self) -> NativePartition:
        """Index every message from the earliest one (offset 0) to the end as of now."""
        reader = self.io.reader(self.topic)
        offset = 0
        try:
            for msg in self.io.drain(reader, self.topic):
                self.scan_reads += 1
                if not is_native(msg.properties()):
                    continue  # kop's own (a marker of a takeover before it was detected)
                self.index.add(
                    IndexEntry(
                        base_offset=offset,
                        last_offset=offset,
                        max_timestamp=message_timestamp(msg),
                        size=len(msg.data()),
                        message_id=msg.message_id(),
                    )
                )
                offset += 1
        finally:
            self.io.close_quietly(reader)
        return self

    @property
    def next_offset(self) -> int:
        return self.index.next_offset or 0

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
        """Nothing is held between reads."""

    def write_checkpoint(self, wait: bool = False) -> bool:
        return False

    # -- reading ---------------------------------------------------------------------------------

    def covers(self, offset: int) -> bool:
        return offset < self.next_offset

    def trim_to_stored(self) -> int:
        """Offsets count from the earliest stored message (docs/pulsar-native-records.md):
        the log starts at 0 while anything is stored."""
        return 0 if len(self.index) else -1

    def _start(self, i: int, offset: int | None) -> IndexEntry:
        """The indexed message a cursor starts at to reach entry ``i`` (or ``offset`` in the
        hole before it)."""
        gap = self.index.gap_before(i)
        if gap and (offset is None or offset < self.index[i].base_offset):
            return self.index[i - 1]
        return self.index[i]

    def _messages(self, start: IndexEntry) -> Iterable[tuple[int, Any]]:
        """(offset, message) from the indexed message ``start`` to the last indexed one."""
        with self._lock:
            end = native_key(self.index[len(self.index) - 1].message_id)
        want = native_key(start.message_id)
        reader = self.io.reader(self.topic, start.message_id, queue_size=100)
        offset = start.base_offset
        try:
            while True:
                msg = self.io.read_next(reader, self.topic)
                key = native_key(msg.message_id())
                if key < want or not is_native(msg.properties()):
                    continue  # a reader at a batch message may start at the entry's first
                yield offset, msg
                if key >= end:
                    return
                offset += 1
        finally:
            self.io.close_quietly(reader)

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
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
