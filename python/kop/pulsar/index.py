"""The in-memory index of one partition's live batches: offsets, timestamps, Pulsar positions.

Built by the takeover scan (or from a checkpoint, kop.pulsar.checkpoint) and extended by send
receipts, so reads and timestamp look-ups bisect in memory and position a reader on, or shortly
before, the batch they want.

**Sparse, with a bound.** Every entry is one real live batch, but not every batch has an entry:
the newest batches are all indexed (the *dense run*, at most ``2 * dense_limit`` entries), older
ones only every ``stride``-th (the *sparse prefix*, at most ``sparse_limit`` entries; when it
grows past that, every other sparse entry is dropped). So an index holds at most
``sparse_limit + 2 * dense_limit`` entries however long the partition is. Live offsets are dense,
so a hole between two entries is visible from the offsets alone (``gap_before``): a batch inside
one is found by reading forward from the entry before it. The first entry (the log start) is
never dropped.

Not thread-safe: the owning partition holds its lock around every call.

``ProducerTails`` keeps what Rust needs to rebuild producer state (idempotence, transactions): per
producer id, the headers of its last ``PRODUCER_BATCHES`` batches and its last markers, and the
transaction state of ``kop.pulsar.transactions``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kop.pulsar.transactions import (
    BATCH_HEADER_SIZE,
    CONTROL,
    TxnTails,
    head_info,
    marker_kind,
)

DENSE_LIMIT = 20_000  # newest batches indexed one by one (up to twice this before thinning)
SPARSE_LIMIT = 4_096  # entries kept for everything older
STRIDE = 64  # one entry per STRIDE batches when the dense run is thinned


@dataclass(frozen=True)
class IndexEntry:
    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int  # payload bytes
    message_id: Any  # the batch's Pulsar message id
    epoch: int = 0  # the batch's epoch; a live batch's is the highest epoch as of it


class BatchIndex:
    def __init__(
        self,
        dense_limit: int | None = None,
        sparse_limit: int | None = None,
        stride: int | None = None,
    ) -> None:
        # Defaults read at construction, so tests can shrink them.
        dense_limit = DENSE_LIMIT if dense_limit is None else dense_limit
        sparse_limit = SPARSE_LIMIT if sparse_limit is None else sparse_limit
        stride = STRIDE if stride is None else stride
        if dense_limit < 1 or sparse_limit < 2 or stride < 2:
            raise ValueError("dense_limit >= 1, sparse_limit >= 2, stride >= 2")
        self.dense_limit = dense_limit
        self.sparse_limit = sparse_limit
        self.stride = stride
        self._entries: list[IndexEntry] = []
        self._last_offsets: list[int] = []  # ascending, for bisecting by offset
        self._running_max: list[int] = []  # max timestamp of every batch up to entry i
        self._dense_start = 0  # entries[_dense_start:] are consecutive batches
        self.batches = 0  # batches added since this index was created or restored

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> IndexEntry:
        return self._entries[i]

    def running_max(self, i: int) -> int:
        """The largest max timestamp of every batch up to and including entry ``i``."""
        return self._running_max[i]

    @property
    def dense_start(self) -> int:
        return self._dense_start

    def add(self, entry: IndexEntry, running_max: int | None = None) -> bool:
        """Append the next batch; False (and no change) unless it lies after every known one.
        ``running_max``: the max timestamp of everything up to it, when batches before it are
        not in this index (restoring a checkpoint)."""
        if self._last_offsets and entry.base_offset <= self._last_offsets[-1]:
            return False
        self._entries.append(entry)
        self._last_offsets.append(entry.last_offset)
        candidates = [entry.max_timestamp]
        if self._running_max:
            candidates.append(self._running_max[-1])
        if running_max is not None:
            candidates.append(running_max)
        self._running_max.append(max(candidates))
        self.batches += 1
        if len(self._entries) - self._dense_start > 2 * self.dense_limit:
            self._thin()
        return True

    def restore(self, entries: Iterable[tuple[IndexEntry, int]]) -> None:
        """Load (entry, running max) pairs of a checkpoint; they may have holes between them.
        Batches added afterwards form the dense run."""
        for entry, running_max in entries:
            self.add(entry, running_max)
        self._dense_start = len(self._entries)
        self.batches = 0

    def _thin(self) -> None:
        """Keep every ``stride``-th of the oldest part of the dense run; halve the sparse prefix
        when it outgrows its limit (the first entry stays)."""
        cut = len(self._entries) - self.dense_limit
        keep = list(range(self._dense_start))
        keep += range(self._dense_start, cut, self.stride)
        while len(keep) > self.sparse_limit:
            keep = keep[::2]
        new_dense_start = len(keep)
        keep += range(cut, len(self._entries))
        self._entries = [self._entries[i] for i in keep]
        self._last_offsets = [self._last_offsets[i] for i in keep]
        self._running_max = [self._running_max[i] for i in keep]
        self._dense_start = new_dense_start

    def trim(self, first: IndexEntry | None) -> int:
        """Forget every batch before ``first``, the first live batch Pulsar still has after
        retention deleted ledgers (None: it has none); ``first`` becomes the first entry.
        Returns the number of entries dropped. Running max timestamps are kept (they may still
        count a deleted batch's timestamp; a time look-up then lands later than the first match)."""
        if first is None:
            dropped = len(self._entries)
            self._entries, self._last_offsets, self._running_max = [], [], []
            self._dense_start = 0
            return dropped
        i = bisect_left(self._last_offsets, first.base_offset)
        entries = self._entries[i:]
        running = self._running_max[i:]
        dense_start = max(0, self._dense_start - i)
        if not entries or entries[0].base_offset != first.base_offset:
            entries.insert(0, first)
            running.insert(0, first.max_timestamp)
            dense_start += 1 if dense_start else 0
        for k in range(1, len(running)):
            running[k] = max(running[k], running[k - 1])
        self._entries = entries
        self._last_offsets = [e.last_offset for e in entries]
        self._running_max = running
        self._dense_start = dense_start
        return i

    @property
    def next_offset(self) -> int | None:
        return self._last_offsets[-1] + 1 if self._last_offsets else None

    def gap_before(self, i: int) -> bool:
        """Whether batches not in the index lie between entries ``i - 1`` and ``i``."""
        return i > 0 and self._entries[i - 1].last_offset + 1 < self._entries[i].base_offset

    def find(self, offset: int) -> int | None:
        """Position of the first entry whose batch contains ``offset`` or lies after it. When
        ``gap_before`` it and ``offset`` is below its base offset, the batch containing
        ``offset`` may be an unindexed one after entry ``i - 1``."""
        i = bisect_left(self._last_offsets, offset)
        return i if i < len(self._entries) else None

    def first_at_timestamp(self, ts: int) -> int | None:
        """Position of the first entry whose running max timestamp is >= ``ts``: the first
        batch with max timestamp >= ``ts`` is that one or, when ``gap_before`` it, possibly an
        unindexed one after entry ``i - 1``."""
        i = bisect_left(self._running_max, ts)
        return i if i < len(self._entries) else None

    def first_with_max_timestamp(self) -> int | None:
        """``first_at_timestamp`` of the largest max timestamp."""
        if not self._entries:
            return None
        return bisect_left(self._running_max, self._running_max[-1])

    def sample(self, end: int, limit: int) -> list[tuple[IndexEntry, int]]:
        """At most ``limit`` (entry, running max) pairs of entries ``[0, end)``, evenly spread,
        keeping the first and the last (for a checkpoint)."""
        positions = list(range(end))
        if len(positions) > limit:
            step = -(-len(positions) // (limit - 1))
            positions = [*positions[: end - 1 : step], end - 1]
        return [(self._entries[i], self._running_max[i]) for i in positions]


# -- producer state ------------------------------------------------------------------------------

PRODUCER_BATCHES = 5  # Kafka keeps the last 5 batches per producer id (Rust: CACHED_BATCHES)
PRODUCER_MARKERS = 8  # transaction markers kept per producer id (see ProducerTails)
PRODUCER_LIMIT = 5_000  # producer ids kept, the most recently active ones

_BATCH_HEADER_SIZE = BATCH_HEADER_SIZE


class ProducerTails:
    """Per producer id, the heads (``kop.pulsar.transactions``) of its last ``PRODUCER_BATCHES``
    data batches and of its last ``PRODUCER_MARKERS`` transaction markers, oldest first; and the
    partition's transaction state (``txns``, a ``TxnTails``).

    Rust's producer state (``broker/producer_state.rs`` ``replay``) ignores batches without a
    producer id, starts over when the producer epoch changes and keeps the last 5 data batches of
    a producer id; a marker ends the producer's open transaction and sets its epoch. Replaying a
    producer id's last 5 data heads and the markers among and after them therefore leaves the
    state replaying all of them does (a producer writes at most one marker per transaction, so
    8 cover the 5 batches unless the coordinator wrote markers for it again and again). Producer
    ids beyond ``limit`` (the least recently active) are forgotten: their next retried batch is
    not recognised as a duplicate, like a Kafka producer id whose state expired."""

    def __init__(self, limit: int = PRODUCER_LIMIT) -> None:
        self.limit = limit
        # producer id -> (base offset, head) of its last batches; most recently active last
        self._tails: OrderedDict[int, deque[tuple[int, bytes]]] = OrderedDict()
        self._markers: dict[int, deque[tuple[int, bytes]]] = {}
        self.txns = TxnTails()

    def __len__(self) -> int:
        return len(self._tails)

    def add(self, head: bytes) -> None:
        """Record a live batch's head (``batch_head``), in offset order; a batch at or before
        the last one recorded is ignored (re-read after a checkpoint)."""
        self.restore(head)
        self.txns.add(head)

    def restore(self, head: bytes) -> None:
        """Record a head of a producer's tail only (a checkpoint's; its ``txns`` come whole)."""
        if len(head) < _BATCH_HEADER_SIZE:
            return
        base_offset, producer_id, attributes = head_info(head)
        if producer_id < 0:
            return
        if attributes & CONTROL:
            if marker_kind(head) is None:
                return
            kept = self._markers.get(producer_id)
            if kept is None:
                kept = self._markers[producer_id] = deque(maxlen=PRODUCER_MARKERS)
            elif kept and base_offset <= kept[-1][0]:
                return
            kept.append((base_offset, bytes(head)))
            if producer_id not in self._tails:
                self._tails[producer_id] = deque(maxlen=PRODUCER_BATCHES)
        else:
            tail = self._tails.get(producer_id)
            if tail is None:
                tail = self._tails[producer_id] = deque(maxlen=PRODUCER_BATCHES)
            elif tail and base_offset <= tail[-1][0]:
                return
            tail.append((base_offset, bytes(head[:_BATCH_HEADER_SIZE])))
        self._tails.move_to_end(producer_id)
        while len(self._tails) > self.limit:
            gone, _ = self._tails.popitem(last=False)
            self._markers.pop(gone, None)

    def _of(self, producer_id: int) -> list[tuple[int, bytes]]:
        kept = [*self._tails.get(producer_id, ()), *self._markers.get(producer_id, ())]
        kept.sort(key=lambda item: item[0])
        return kept

    def headers(self) -> list[bytes]:
        """Every kept head, the transaction state's included, in offset order, each batch once
        (Rust replays them into producer state)."""
        kept = {offset: head for pid in self._tails for offset, head in self._of(pid)}
        for head in self.txns.heads():
            kept.setdefault(head_info(head)[0], head)
        return [kept[offset] for offset in sorted(kept)]

    def by_producer(self) -> list[list[bytes]]:
        """The kept heads per producer id, least recently active first (a checkpoint)."""
        return [[head for _, head in self._of(pid)] for pid in self._tails]
