"""Transaction state of one partition as a takeover needs it (docs/pulsar-storage.md,
"Transactions"): Rust rebuilds its open transactions, last stable offset and aborted-transaction
index by replaying batch heads (kop-core ``broker/producer_state.rs`` ``ProducerStates::replay``),
but a takeover from a checkpoint reads only the tail of the partition. ``TxnTails`` keeps the
heads that replay needs from before that tail:

- per producer id with an open transaction, the head of the transaction's first batch;
- per aborted transaction still in the log, the head of its first batch and its ABORT marker.

Replayed in offset order with the producers' recent heads (``ProducerTails``, which keeps their
markers too), they rebuild the same open transactions and aborted index as a full scan: a
transaction is opened by its first batch and closed by the next marker of its producer.

A *head* is what Rust replays of a batch: its 61-byte header, or for a control batch (a marker,
whose kind is in its record) the whole batch, which is small.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

BATCH_HEADER_SIZE = 61
MARKER_HEAD_LIMIT = 256  # a marker batch is ~80 bytes; a larger control batch is not one
_ATTRIBUTES = struct.Struct(">h")  # bytes 21-22
_I64 = struct.Struct(">q")  # base offset at 0, producer id at 43
TRANSACTIONAL = 0x10
CONTROL = 0x20
ABORT, COMMIT = 0, 1


def batch_head(payload: bytes) -> bytes:
    """What Rust replays of a batch: a marker whole, else its header."""
    if len(payload) >= BATCH_HEADER_SIZE and len(payload) <= MARKER_HEAD_LIMIT:
        (attributes,) = _ATTRIBUTES.unpack_from(payload, 21)
        if attributes & CONTROL:
            return bytes(payload)
    return bytes(payload[:BATCH_HEADER_SIZE])


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: (value, position after it)."""
    raw, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def marker_kind(head: bytes) -> int | None:
    """ABORT or COMMIT for a marker head; None for anything else (not control, compressed, cut
    short, another control type)."""
    if len(head) < BATCH_HEADER_SIZE:
        return None
    (attributes,) = _ATTRIBUTES.unpack_from(head, 21)
    if not attributes & CONTROL or attributes & 0x07:
        return None
    try:
        pos = BATCH_HEADER_SIZE
        _, pos = _varint(head, pos)  # record length
        pos += 1  # attributes
        _, pos = _varint(head, pos)  # timestamp delta
        _, pos = _varint(head, pos)  # offset delta
        key_len, pos = _varint(head, pos)
    except ValueError:
        return None
    if key_len < 4 or pos + 4 > len(head):
        return None
    (kind,) = struct.unpack_from(">h", head, pos + 2)
    return kind if kind in (ABORT, COMMIT) else None


def head_info(head: bytes) -> tuple[int, int, int]:
    """(base offset, producer id, attributes) of a head."""
    (base_offset,) = _I64.unpack_from(head, 0)
    (producer_id,) = _I64.unpack_from(head, 43)
    (attributes,) = _ATTRIBUTES.unpack_from(head, 21)
    return base_offset, producer_id, attributes


@dataclass
class TxnTails:
    """Open transactions and aborted transactions of a partition, as heads (module comment)."""

    open: dict[int, bytes] = field(default_factory=dict)  # producer id -> first batch's head
    # (first batch's head, ABORT marker's head), in marker order
    aborted: list[tuple[bytes, bytes]] = field(default_factory=list)
    seen_until: int = -1  # base offset of the last batch added (later re-reads are ignored)

    def add(self, head: bytes) -> None:
        """A live batch, in offset order; one at or before the last one added is ignored (the
        takeover re-reads batches a checkpoint already counted)."""
        if len(head) < BATCH_HEADER_SIZE:
            return
        base_offset, producer_id, attributes = head_info(head)
        if base_offset <= self.seen_until:
            return
        self.seen_until = base_offset
        if producer_id < 0 or not attributes & TRANSACTIONAL:
            return
        if not attributes & CONTROL:
            self.open.setdefault(producer_id, bytes(head[:BATCH_HEADER_SIZE]))
            return
        kind = marker_kind(head)
        if kind is None:
            return
        first = self.open.pop(producer_id, None)
        if kind == ABORT and first is not None:
            self.aborted.append((first, bytes(head)))

    def trim(self, log_start: int) -> None:
        """Forget the aborted transactions whose marker is before the log start (retention)."""
        self.aborted = [(f, m) for f, m in self.aborted if head_info(m)[0] >= log_start]

    def copy(self) -> TxnTails:
        return TxnTails(dict(self.open), list(self.aborted), self.seen_until)

    def heads(self) -> list[bytes]:
        """Every head kept (unordered)."""
        return [*self.open.values(), *(h for pair in self.aborted for h in pair)]
