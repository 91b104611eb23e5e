"""Offset-index checkpoints: a compact record of a partition's index on a compacted side topic,
so a takeover reads only the tail of the partition (docs/pulsar-storage.md, "Index checkpoints").

One non-partitioned topic per namespace, ``__kop_index``, one message per checkpoint, keyed by
the partition's Pulsar topic name; the last message of a key wins (topic compaction keeps only
that one; without compaction, replaying the topic gives the same answer). Payload: zlib-compressed
JSON, ``CHECKPOINT_VERSION``:

    {"v": 2, "topic": "persistent://t/ns/orders-partition-0", "epoch": 3, "written_ms": ...,
     "end_offset": 12345,                       # the writer's next offset when it wrote this
     "entries": [[base, last, max_ts, running_max_ts, epoch, size, ledger, entry], ...],
     "resume": [base, last, max_ts, running_max_ts, epoch, size, ledger, entry],
     "producers": [["<base64 head>", ...], ...],
     "txn": {"open": ["<base64 head>", ...], "aborted": [["<first>", "<marker>"], ...],
             "seen_until": 12340}}

``entries`` is a sparse sample (first and last kept) of the index *before* ``resume``;
``resume`` is the batch a takeover starts reading at (chosen so that what follows it fits the
tail the writer was opened with); ``producers`` holds, per producer id, the heads of its last
5 batches and last markers up to ``end_offset`` (a head is a batch's 61-byte header, or a whole
marker batch: ``kop.pulsar.transactions``); ``txn`` the partition's transaction state as of
``end_offset`` (``TxnTails``: the first batch of every open transaction, the first batch and
marker of every aborted transaction still in the log, and the last batch it counted). Version 1
(before transactions) is read as a checkpoint without transaction state.

A checkpoint is only a hint: the takeover checks that the message at ``resume`` is that very
batch, and scans from the earliest message when it is not (or the payload does not decode, or
names another topic).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kop.pulsar.client import PulsarIO, message_id, message_key, result_ok
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import INDEX_TOPIC, pulsar_topic
from kop.pulsar.index import BatchIndex, IndexEntry, ProducerTails
from kop.pulsar.transactions import BATCH_HEADER_SIZE, TxnTails, head_info

log = logging.getLogger("kop.pulsar")

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CHECKPOINT_ENTRIES = 4_096  # sparse entries a checkpoint carries at most

# When an owner writes one (on send receipts; and always on a clean close of the partition):
CHECKPOINT_BATCHES = 1_000  # after this many new batches ...
CHECKPOINT_MIN_INTERVAL_S = 10.0  # ... but not more often than this,
CHECKPOINT_MAX_INTERVAL_S = 60.0  # or after this long, when any batch was added


class CheckpointError(ValueError):
    """A checkpoint that does not decode (it is then ignored)."""


def _entry_row(entry: IndexEntry, running_max: int) -> list[int]:
    ledger, entry_id = message_key(entry.message_id)
    return [
        entry.base_offset,
        entry.last_offset,
        entry.max_timestamp,
        running_max,
        entry.epoch,
        entry.size,
        ledger,
        entry_id,
    ]


def _row_entry(row: Any, make_id: Any) -> tuple[IndexEntry, int]:
    if not isinstance(row, list) or len(row) != 8 or not all(isinstance(v, int) for v in row):
        raise CheckpointError(f"bad index entry {row!r}")
    base, last, max_ts, running_max, epoch, size, ledger, entry_id = row
    if last < base:
        raise CheckpointError(f"bad index entry {row!r}")
    entry = IndexEntry(
        base_offset=base,
        last_offset=last,
        max_timestamp=max_ts,
        size=size,
        message_id=make_id(ledger, entry_id),
        epoch=epoch,
    )
    return entry, running_max


@dataclass(frozen=True)
class Checkpoint:
    topic: str
    epoch: int
    end_offset: int
    entries: list[tuple[IndexEntry, int]]  # (entry, running max), sparse, ascending
    resume: IndexEntry
    resume_running_max: int
    producers: list[list[bytes]]
    written_ms: int = 0
    txns: TxnTails = field(default_factory=TxnTails)

    @staticmethod
    def of(
        topic: str,
        epoch: int,
        index: BatchIndex,
        producers: ProducerTails,
        tail_bytes: int,
        limit: int | None = None,
    ) -> Checkpoint | None:
        """A checkpoint of ``index`` (None when it is empty). The resume batch is the oldest of
        the dense run from which the batches to the end fit in ``tail_bytes`` (the newest batch
        at least)."""
        if not len(index):
            return None
        j = len(index) - 1
        total = index[j].size
        while j > index.dense_start and total + index[j - 1].size <= tail_bytes:
            j -= 1
            total += index[j].size
        next_offset = index.next_offset
        return Checkpoint(
            topic=topic,
            epoch=epoch,
            end_offset=0 if next_offset is None else next_offset,
            entries=index.sample(j, limit or CHECKPOINT_ENTRIES) if j else [],
            resume=index[j],
            resume_running_max=index.running_max(j),
            producers=producers.by_producer(),
            written_ms=int(time.time() * 1000),
            txns=producers.txns.copy(),
        )

    def encode(self) -> bytes:
        doc = {
            "v": CHECKPOINT_VERSION,
            "topic": self.topic,
            "epoch": self.epoch,
            "written_ms": self.written_ms,
            "end_offset": self.end_offset,
            "entries": [_entry_row(e, m) for e, m in self.entries],
            "resume": _entry_row(self.resume, self.resume_running_max),
            "producers": [[_b64(h) for h in tail] for tail in self.producers],
            "txn": {
                "open": [_b64(h) for h in self.txns.open.values()],
                "aborted": [[_b64(f), _b64(m)] for f, m in self.txns.aborted],
                "seen_until": self.txns.seen_until,
            },
        }
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)

    @staticmethod
    def decode(data: bytes, make_id: Any) -> Checkpoint:
        """``make_id(ledger, entry)`` builds a message id."""
        try:
            doc = json.loads(zlib.decompress(data))
        except (zlib.error, ValueError) as err:
            raise CheckpointError(f"not a checkpoint: {err}") from err
        if not isinstance(doc, dict):
            raise CheckpointError(f"not a checkpoint: {type(doc).__name__}")
        if doc.get("v") not in READABLE_VERSIONS:
            raise CheckpointError(f"unknown checkpoint version {doc.get('v')!r}")
        try:
            entries = [_row_entry(row, make_id) for row in doc["entries"]]
            resume, resume_running_max = _row_entry(doc["resume"], make_id)
            producers = [[_unb64(h) for h in t] for t in doc["producers"]]
            txns = _txns(doc.get("txn"))
            checkpoint = Checkpoint(
                topic=str(doc["topic"]),
                epoch=int(doc["epoch"]),
                end_offset=int(doc["end_offset"]),
                entries=entries,
                resume=resume,
                resume_running_max=resume_running_max,
                producers=producers,
                written_ms=int(doc.get("written_ms", 0)),
                txns=txns,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"bad checkpoint: {type(err).__name__}: {err}") from err
        offsets = [e.base_offset for e, _ in entries] + [resume.base_offset]
        if any(b <= a for a, b in itertools.pairwise(offsets)):
            raise CheckpointError("checkpoint entries are not in offset order")
        return checkpoint


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(text, validate=True)


def _txns(doc: Any) -> TxnTails:
    """The transaction state of a checkpoint (none in version 1)."""
    if doc is None:
        return TxnTails()
    if not isinstance(doc, dict):
        raise CheckpointError(f"bad transaction state {type(doc).__name__}")
    open_heads = [_unb64(h) for h in doc["open"]]
    aborted = [(_unb64(f), _unb64(m)) for f, m in doc["aborted"]]
    txns = TxnTails(seen_until=int(doc["seen_until"]))
    for head in open_heads:
        if len(head) < BATCH_HEADER_SIZE:
            raise CheckpointError("bad open transaction head")
        txns.open[head_info(head)[1]] = head
    if any(len(f) < BATCH_HEADER_SIZE or len(m) < BATCH_HEADER_SIZE for f, m in aborted):
        raise CheckpointError("bad aborted transaction head")
    txns.aborted = aborted
    return txns


class CheckpointStore:
    """The namespace's ``__kop_index`` topic. Remembers where the latest checkpoint of every key
    is (one message id each; a reader kept open catches up with what others wrote since), and
    reads a checkpoint itself only when a takeover asks for it.

    Checkpoints due on a send receipt are written by one worker thread (``schedule``): receipts
    run on the client's I/O thread, which must never wait for Pulsar itself."""

    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._lock = threading.Lock()  # the reader and _latest
        self._producer_lock = threading.Lock()
        self._reader: Any = None
        self._producer: Any = None
        self._latest: dict[str, Any] = {}  # key -> message id of its latest checkpoint
        self._cv = threading.Condition()
        self._pending: dict[str, Callable[[], object]] = {}  # key -> write its checkpoint
        self._worker: threading.Thread | None = None
        self._closed = False

    def schedule(self, key: str, write: Callable[[], object]) -> None:
        """Have the worker call ``write`` (a later one for the same key replaces it)."""
        with self._cv:
            if self._closed:
                return
            self._pending[key] = write
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="kop-index-checkpoints", daemon=True
                )
                self._worker.start()
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                key = next(iter(self._pending))
                write = self._pending.pop(key)
            try:
                write()
            except Exception as err:
                log.warning("%s: writing the checkpoint of %s failed: %s", self.topic, key, err)

    def load(self, key: str) -> bytes | None:
        """The latest checkpoint payload stored for ``key``, or None."""
        with self._lock:
            if self._reader is None:
                self._reader = self.io.reader(self.topic, read_compacted=True)
            found: bytes | None = None
            for msg in self.io.drain(self._reader, self.topic):
                name = msg.partition_key()
                if not name:
                    continue
                data = msg.data()
                if not data:
                    self._latest.pop(name, None)
                else:
                    self._latest[name] = msg.message_id()
                if name == key:
                    found = data or None
            if found is not None:
                return found
            msg_id = self._latest.get(key)
        if msg_id is None:
            return None
        reader = self.io.reader(self.topic, msg_id, read_compacted=True, queue_size=1)
        try:
            msg = self.io.read_next(reader, self.topic)
        finally:
            self.io.close_quietly(reader)
        if msg.partition_key() != key or message_key(msg.message_id()) != message_key(msg_id):
            log.warning("%s: checkpoint of %s is gone (compacted away?)", self.topic, key)
            return None
        stored: bytes = msg.data()
        return stored or None

    def save(self, key: str, data: bytes | None, wait: bool = False) -> None:
        """Store ``data`` (None: delete) as the latest checkpoint of ``key``. Without ``wait``,
        in the background (a lost checkpoint only makes the next takeover read more)."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = self.io.shared_producer(self.topic)
            producer = self._producer
        payload = data or b""
        with self.io.errors("write an index checkpoint", self.topic):
            if wait:
                producer.send(payload, partition_key=key)
                return
            producer.send_async(payload, _log_failure(self.topic, key), partition_key=key)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._pending.clear()
            worker = self._worker
            self._cv.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(self.io.send_timeout_ms / 1000 + 1)
        with self._lock, self._producer_lock:
            reader, producer = self._reader, self._producer
            self._reader = self._producer = None
        self.io.close_quietly(reader)
        self.io.close_quietly(producer)


def _log_failure(topic: str, key: str) -> Any:
    def done(res: Any, _msg_id: Any) -> None:
        if not result_ok(res):
            log.warning("%s: writing the checkpoint of %s failed: %s", topic, key, res)

    return done


INDEX_COMPACTION_THRESHOLD = 4 * 1024 * 1024  # bytes of backlog before Pulsar compacts it


def open_store(admin: Any, io: PulsarIO, tenant: str, namespace: str) -> CheckpointStore:
    """The namespace's checkpoint store: creates ``__kop_index`` and turns on its compaction
    (a broker refusing topic policies only costs storage, so that is a warning)."""
    admin.create_topic(tenant, namespace, INDEX_TOPIC)
    try:
        admin.set_topic_policy(
            tenant, namespace, INDEX_TOPIC, "compactionThreshold", INDEX_COMPACTION_THRESHOLD
        )
    except PulsarStorageError as err:
        log.warning("%s: compaction not enabled: %s", INDEX_TOPIC, err)
    return CheckpointStore(io, pulsar_topic(tenant, namespace, INDEX_TOPIC))


def load_checkpoint(store: CheckpointStore, topic: str) -> Checkpoint | None:
    """The latest checkpoint of partition ``topic``, or None when there is none or it is not
    usable (then the takeover scans from the start)."""
    try:
        data = store.load(topic)
        if data is None:
            return None
        return Checkpoint.decode(data, message_id)
    except (CheckpointError, PulsarStorageError) as err:
        log.warning("%s: index checkpoint not used: %s", topic, err)
        return None
