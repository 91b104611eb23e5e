"""Consumer-group records (opaque bytes from Rust) on one topic, with crash-safe rewrites.

A plain append is one message per record. A rewrite writes a snapshot: ``snapshot_begin``, the
records, ``snapshot_end`` (with the record count), all tagged with a fresh snapshot id. A load
starts from the last complete snapshot and adds the plain records after it; a snapshot without
its end (the writer died half way) is ignored, so a load sees the old set or the new one.

One writer: the instance coordinating the groups holds the topic with an Exclusive producer
(acquired with fencing, as a partition, when it loads), so another instance's stale writes
cannot interleave.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from kop.pulsar.client import PulsarIO, result_ok
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import (
    PROP_SNAPSHOT,
    PROP_SNAPSHOT_COUNT,
    PROP_TYPE,
    TYPE_GROUP_RECORD,
    TYPE_SNAPSHOT_BEGIN,
    TYPE_SNAPSHOT_END,
)


def replay(messages: list[Any]) -> list[bytes]:
    """The current record set from the topic's messages, oldest first."""
    current: list[bytes] = []
    open_snapshots: dict[str, list[bytes]] = {}
    for msg in messages:
        props = msg.properties()
        kind = props.get(PROP_TYPE)
        snapshot = props.get(PROP_SNAPSHOT)
        if kind == TYPE_SNAPSHOT_BEGIN and snapshot:
            open_snapshots[snapshot] = []
        elif kind == TYPE_GROUP_RECORD:
            if snapshot is None:
                current.append(msg.data())
            elif snapshot in open_snapshots:
                open_snapshots[snapshot].append(msg.data())
        elif kind == TYPE_SNAPSHOT_END and snapshot in open_snapshots:
            records = open_snapshots.pop(snapshot)
            if str(len(records)) == props.get(PROP_SNAPSHOT_COUNT):
                current = records
    return current


class GroupRecordStore:
    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._lock = threading.Lock()  # one write (and one load) at a time
        self._producer: Any = None
        self._lost: str | None = None

    def acquire(self) -> None:
        """Become the single writer (fencing any previous one)."""
        with self._lock:
            self._acquire()

    def _acquire(self) -> None:
        self.io.close_quietly(self._producer)
        self._producer = None
        self._producer = self.io.owner_producer(self.topic)
        self._lost = None

    def load(self) -> list[bytes]:
        """Every record; takes the topic over again first if a write had failed."""
        with self._lock:
            if self._producer is None or self._lost is not None:
                self._acquire()
            reader = self.io.reader(self.topic)
            try:
                messages = list(self.io.drain(reader, self.topic))
            finally:
                self.io.close_quietly(reader)
        return replay(messages)

    def append(self, records: list[bytes]) -> None:
        with self._lock:
            self._send([({PROP_TYPE: TYPE_GROUP_RECORD}, r) for r in records])

    def rewrite(self, records: list[bytes]) -> None:
        snapshot = uuid.uuid4().hex
        tag = {PROP_SNAPSHOT: snapshot}
        messages = [({PROP_TYPE: TYPE_SNAPSHOT_BEGIN, **tag}, b"")]
        messages += [({PROP_TYPE: TYPE_GROUP_RECORD, **tag}, r) for r in records]
        end = {PROP_TYPE: TYPE_SNAPSHOT_END, PROP_SNAPSHOT_COUNT: str(len(records)), **tag}
        messages.append((end, b""))
        with self._lock:
            self._send(messages)

    def _send(self, messages: list[tuple[dict[str, str], bytes]]) -> None:
        """Send all (pipelined, in order) and return once all are stored; else raise and stop
        writing until a load takes the topic over again."""
        if self._lost is not None or self._producer is None:
            raise PulsarStorageError(
                f"Pulsar {self.io.url} {self.topic}: not the group-records writer "
                f"({self._lost or 'not acquired'}); load_group_records takes it over again"
            )
        if not messages:
            return
        waiter = _Completion(len(messages))
        try:
            with self.io.errors("send group records", self.topic):
                for props, data in messages:
                    self._producer.send_async(data, waiter.receipt, properties=props)
        except PulsarStorageError as err:
            self._lost = str(err)
            raise
        # Every send ends in a receipt or an error within the send timeout.
        timeout_s = self.io.send_timeout_ms / 1000 + self.io.operation_timeout_ms / 1000
        error = waiter.wait(timeout_s)
        if error is not None:
            self._lost = error
            raise PulsarStorageError(f"Pulsar {self.io.url} {self.topic}: {error}")

    def release(self) -> None:
        """Stop writing (another instance coordinates the groups); ``load`` takes over again."""
        with self._lock:
            producer, self._producer = self._producer, None
            self._lost = "released to another kop instance"
        self.io.close_quietly(producer)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            self._lost = "closed"
        self.io.close_quietly(producer)


class _Completion:
    """Counts send receipts; the first failure is kept."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._error: str | None = None
        self._cv = threading.Condition()

    def receipt(self, res: Any, _msg_id: Any) -> None:
        with self._cv:
            if not result_ok(res) and self._error is None:
                self._error = f"send failed: {res}"
            self._left -= 1
            if self._left <= 0:
                self._cv.notify_all()

    def wait(self, timeout_s: float) -> str | None:
        with self._cv:
            if not self._cv.wait_for(lambda: self._left <= 0, timeout_s):
                return self._error or f"no receipt within {timeout_s:.0f} s"
            return self._error
