"""Offsets of a Pulsar-format partition from the broker entry index, without reading the
partition (docs/pulsar-native-records.md, "Offsets").

With the broker's ``AppendIndexMetadataInterceptor`` every stored entry carries its *index*: the
count of the topic's messages, less one, up to the entry's last message. A Kafka offset is that
count, so an entry of ``count`` messages whose index is ``index`` holds the offsets
``index - count + 1 .. index``, and Pulsar's admin API answers which entry holds an offset
(``getMessageIdByIndex``). Here: that arithmetic, the sparse cache of positions found, the
binary search of time look-ups, and ``BrokerIndex``, the admin calls for one topic.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kop.pulsar.admin import PulsarAdmin

# (ledger id, entry id, position in the entry): the order of messages in a topic, batch entries
# included (0 for a message that is not in a batch: an entry holds one kind or the other).
NativeKey = tuple[int, int, int]
# (ledger id, entry id, broker index or None, messages in the entry)
EntryInfo = tuple[int, int, "int | None", int]

POSITIONS_LIMIT = 4_096  # positions cached per partition (then every other one is dropped)


def entry_first_offset(index: int, count: int) -> int:
    """The offset of the first message of an entry of ``count`` messages with broker index
    ``index`` (the index counts up to the entry's last message)."""
    return index - max(count, 1) + 1


def key_in_entry(ledger_id: int, entry_id: int, index: int, count: int, offset: int) -> NativeKey:
    """The position of the message at ``offset`` in the entry ``(ledger_id, entry_id)``;
    ValueError when the entry does not hold it."""
    first = entry_first_offset(index, count)
    if not first <= offset <= index:
        where = f"{ledger_id}:{entry_id} ({first}..{index})"
        raise ValueError(f"offset {offset} is not in entry {where}")
    return (ledger_id, entry_id, offset - first)


class PositionCache:
    """Sparse, bounded offset -> message position of one partition, learnt from the broker
    index and from reads, added in any order. When it outgrows ``limit`` every other position
    is dropped (the newest stays), like the sparse part of ``BatchIndex``."""

    def __init__(self, limit: int = POSITIONS_LIMIT) -> None:
        if limit < 2:
            raise ValueError("limit >= 2")
        self.limit = limit
        self._offsets: list[int] = []
        self._keys: list[NativeKey] = []

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, offset: int, key: NativeKey) -> None:
        i = bisect_right(self._offsets, offset)
        if i and self._offsets[i - 1] == offset:
            self._keys[i - 1] = key
            return
        self._offsets.insert(i, offset)
        self._keys.insert(i, key)
        if len(self._offsets) > self.limit:
            last_offset, last_key = self._offsets[-1], self._keys[-1]
            self._offsets, self._keys = self._offsets[::2], self._keys[::2]
            if self._offsets[-1] != last_offset:
                self._offsets.append(last_offset)
                self._keys.append(last_key)

    def at_or_before(self, offset: int) -> tuple[int, NativeKey] | None:
        """The cached position with the largest offset not above ``offset``."""
        i = bisect_right(self._offsets, offset)
        return (self._offsets[i - 1], self._keys[i - 1]) if i else None

    def drop_below(self, offset: int) -> None:
        """Forget positions of offsets Pulsar's retention deleted."""
        i = bisect_right(self._offsets, offset - 1)
        del self._offsets[:i], self._keys[:i]


# (offset, timestamp) of the first Pulsar application's message at or after an offset, or None.
Probe = Callable[[int], "tuple[int, int] | None"]


def search_start(lo: int, hi: int, ts: int, probe: Probe, linear: int) -> int:
    """Where to read forward from to find the first message with timestamp >= ``ts`` among
    offsets ``[lo, hi)``: a binary search by ``probe`` until at most ``linear`` offsets are
    left. Exact when timestamps do not decrease with offsets (publish times, event times of
    one producer); otherwise it may land after an earlier match (Kafka's time index, which
    keeps running maxima, finds the first; docs/pulsar-native-records.md says so)."""
    while hi - lo > linear:
        mid = (lo + hi) // 2
        found = probe(mid)
        if found is None or found[1] >= ts:
            hi = mid
        else:
            lo = found[0] + 1
    return lo


class BrokerIndex:
    """The admin calls that position offsets in one partition topic (non-partitioned name)."""

    def __init__(self, admin: PulsarAdmin, tenant: str, namespace: str, topic: str) -> None:
        self._admin = admin
        self._where = (tenant, namespace, topic)

    def entry_index(self, ledger_id: int, entry_id: int) -> tuple[int, int] | None:
        """(broker index, messages) of one entry; None when it carries no index."""
        return self._admin.entry_index(*self._where, ledger_id, entry_id)

    def earliest(self) -> EntryInfo | None:
        return self._admin.examine_entry(*self._where, "earliest")

    def latest(self) -> EntryInfo | None:
        return self._admin.examine_entry(*self._where, "latest")

    def entry_of(self, offset: int) -> tuple[int, int] | None:
        """(ledger id, entry id) holding ``offset``; ``(-1, -1)`` for one in or below the
        earliest stored entry (Pulsar's answer); None past the end."""
        return self._admin.entry_by_index(*self._where, offset)
