"""The in-memory index of one partition's live batches: offsets, timestamps, Pulsar positions.

Built by the takeover scan and extended by send receipts, so reads and timestamp look-ups bisect
in memory and position a reader on the exact message. Not thread-safe: the owning partition
holds its lock around every call.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IndexEntry:
    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int  # payload bytes
    message_id: Any  # the batch's Pulsar message id


class BatchIndex:
    def __init__(self) -> None:
        self._entries: list[IndexEntry] = []
        self._last_offsets: list[int] = []  # ascending, for bisecting by offset
        self._running_max: list[int] = []  # max timestamp of entries[0..i], for time look-ups

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> IndexEntry:
        return self._entries[i]

    def add(self, entry: IndexEntry) -> bool:
        """Append the next batch; False (and no change) unless it lies after every known one."""
        if self._last_offsets and entry.base_offset <= self._last_offsets[-1]:
            return False
        self._entries.append(entry)
        self._last_offsets.append(entry.last_offset)
        previous = self._running_max[-1] if self._running_max else entry.max_timestamp
        self._running_max.append(max(previous, entry.max_timestamp))
        return True

    @property
    def next_offset(self) -> int | None:
        return self._last_offsets[-1] + 1 if self._last_offsets else None

    def find(self, offset: int) -> int | None:
        """Position of the batch containing ``offset`` (or the first one after it)."""
        i = bisect_left(self._last_offsets, offset)
        return i if i < len(self._entries) else None

    def first_at_timestamp(self, ts: int) -> int | None:
        """Position of the first batch whose max timestamp is >= ``ts``."""
        i = bisect_left(self._running_max, ts)
        return i if i < len(self._entries) else None

    def first_with_max_timestamp(self) -> int | None:
        """Position of the first batch holding the largest max timestamp."""
        if not self._entries:
            return None
        return bisect_left(self._running_max, self._running_max[-1])
