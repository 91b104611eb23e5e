"""One Kafka partition in Pulsar: its writer (when owned), its index and its readers.

Threads: ``append`` runs on Rust's one append thread, send receipts on a client thread, reads
and look-ups on Rust's bridge threads. ``_lock`` guards the index and the writer state and is
never held across Pulsar I/O.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kop.pulsar.client import PulsarIO, message_key, result_ok
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import batch_properties
from kop.pulsar.index import BatchIndex, IndexEntry

log = logging.getLogger("kop.pulsar")

Done = Callable[[str | None], object]


def _report(done: Done, error: str | None) -> None:
    # An exception escaping a send callback would terminate the process (pulsar-client runs
    # callbacks on its own threads), so a failing ``done`` is only logged.
    try:
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
    ) -> None:
        self.io = io
        self.topic = topic  # the Pulsar topic
        self.index = index
        self.epoch = epoch
        self._producer = producer
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

        def on_receipt(res: Any, msg_id: Any) -> None:
            self._on_receipt(res, msg_id, base_offset, record_count, max_timestamp, size, done)

        try:
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

    def _on_receipt(
        self,
        res: Any,
        msg_id: Any,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        size: int,
        done: Done,
    ) -> None:
        try:
            with self._lock:
                if self._failure is None and not result_ok(res):
                    # Any send error, a timeout included, means the partition may be lost
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
                        )
                    )
            _report(done, None if failure is None else self._failure_message(failure))
        except Exception:  # never let an exception out of a client callback
            log.exception("%s: handling a send receipt failed", self.topic)

    def _fail(self, reason: str, warn: bool = True) -> None:
        if self._failure is None:
            self._failure = reason
            if warn and self._producer is not None:
                log.warning("%s: stopped writing (epoch %d): %s", self.topic, self.epoch, reason)

    def _failure_message(self, failure: str | None) -> str:
        return f"Pulsar {self.io.url} {self.topic}: not writable: {failure}"

    def close(self, reason: str = "closed") -> None:
        with self._lock:
            self._fail(reason, warn=False)
            producer, self._producer = self._producer, None
        PulsarIO.close_quietly(producer)
        self._reader.close()

    # -- reading ---------------------------------------------------------------------------------

    def covers(self, offset: int) -> bool:
        with self._lock:
            end = self.index.next_offset
        return end is not None and offset < end

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
        with self._lock:
            first = self.index.find(offset)
            wanted: list[tuple[int, IndexEntry]] = []
            total = 0
            i = first
            while i is not None and i < len(self.index):
                entry = self.index[i]
                if entry.base_offset >= upper or (wanted and total + entry.size > max_bytes):
                    break
                wanted.append((i, entry))
                total += entry.size
                i += 1
        return self._reader.fetch(wanted)

    def batch_at_timestamp(self, ts: int) -> bytes | None:
        with self._lock:
            i = self.index.first_at_timestamp(ts)
            wanted = [] if i is None else [(i, self.index[i])]
        got = self._reader.fetch(wanted)
        return got[0] if got else None

    def batch_with_max_timestamp(self) -> bytes | None:
        with self._lock:
            i = self.index.first_with_max_timestamp()
            wanted = [] if i is None else [(i, self.index[i])]
        got = self._reader.fetch(wanted)
        return got[0] if got else None


class _ReaderCache:
    """Fetches indexed batches, keeping one reader per partition where the last read stopped:
    consumers read sequentially, so the next fetch usually continues with the same reader."""

    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._lock = threading.Lock()
        self._reader: Any = None
        self._next = -1  # index position the cached reader delivers next (markers aside)
        self._closed = False

    def fetch(self, wanted: list[tuple[int, IndexEntry]]) -> list[bytes]:
        if not wanted:
            return []
        if not self._lock.acquire(blocking=False):
            # Another thread reads this partition: do not queue behind it.
            reader = self.io.reader(self.topic, wanted[0][1].message_id)
            try:
                return self._read(reader, wanted)
            finally:
                PulsarIO.close_quietly(reader)
        try:
            if self._closed:
                raise PulsarStorageError(f"Pulsar {self.io.url} {self.topic}: partition closed")
            if self._reader is None or self._next != wanted[0][0]:
                PulsarIO.close_quietly(self._reader)
                self._reader = None
                self._reader = self.io.reader(self.topic, wanted[0][1].message_id)
            try:
                out = self._read(self._reader, wanted)
            except BaseException:
                PulsarIO.close_quietly(self._reader)
                self._reader = None
                raise
            self._next = wanted[-1][0] + 1
            return out
        finally:
            self._lock.release()

    def _read(self, reader: Any, wanted: list[tuple[int, IndexEntry]]) -> list[bytes]:
        out: list[bytes] = []
        for _, entry in wanted:
            want = message_key(entry.message_id)
            while True:
                msg = self.io.read_next(reader, self.topic)
                got = message_key(msg.message_id())
                if got == want:
                    out.append(msg.data())
                    break
                if got > want:
                    raise PulsarStorageError(
                        f"Pulsar {self.io.url} {self.topic}: batch at offset "
                        f"{entry.base_offset} ({want}) not found, reader is at {got}"
                    )
                # a marker or a stale batch between live ones
        return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            PulsarIO.close_quietly(self._reader)
            self._reader = None
