"""Compacted copies of Kafka partitions on Pulsar (docs/compaction.md, "Pulsar").

Rust's cleaner (kop-core ``storage/compaction/remote.rs``) reads a partition, applies Kafka's
rules and hands the cleaned batches of ``[log start, end)`` to ``write_generation``, which:

1. writes them to a new non-partitioned topic, a *generation*
   (``__kop_compacted.<topic>.<partition>.<n>.<random>``), same message format as the partition
   topic (one batch per message, same properties, same offsets);
2. switches readers with a compare-and-set of the document ``compacted/<topic>/<partition>``
   (``Generation``): it names the generation topic and ``end``. The save only applies if the
   document still holds what the writer read before writing (every instance applies document
   saves in the order of ``__kop_metadata``), so of two owners racing (a takeover) at most one
   switches; the loser deletes its topic. A stale owner's switch is still a correct view: it
   only ever cleans batches Pulsar acknowledged, which no later owner can change;
3. trims: the partition topic's subscription ``__kop_compaction`` is moved to the first batch
   at or after ``end`` (Pulsar may then delete whole ledgers before it, the topic's retention
   being 0), and older generations are deleted (the previous one after a grace period, for
   readers still on it).

Readers take offsets below ``end`` from the generation (``CompactedView``, every batch of it
indexed: its size is the live set) and offsets from ``end`` on from the partition topic.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from kop.pulsar.client import PulsarIO, result_ok
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import (
    BatchInfo,
    FormatError,
    batch_properties,
    parse_batch_header,
    parse_partition_message,
)
from kop.pulsar.index import ProducerTails
from kop.pulsar.transactions import batch_head

log = logging.getLogger("kop.pulsar")

SUBSCRIPTION = "__kop_compaction"
GENERATION_PREFIX = "__kop_compacted."


def doc_name(topic: str, partition: int) -> str:
    return f"compacted/{topic}/{partition}"


def generation_stem(topic: str, partition: int) -> str:
    """The name every generation topic of a partition starts with (within the namespace)."""
    return f"{GENERATION_PREFIX}{topic}.{partition}."


@dataclass(frozen=True)
class Generation:
    """The document that switches a partition's readers: offsets below ``end`` are in
    ``topic`` (a full Pulsar topic name)."""

    number: int
    end: int
    topic: str
    epoch: int

    def encode(self) -> bytes:
        body = {"v": 1, "n": self.number, "end": self.end, "topic": self.topic, "epoch": self.epoch}
        return json.dumps(body, sort_keys=True).encode()

    @staticmethod
    def decode(data: bytes | None) -> Generation | None:
        if not data:
            return None
        try:
            body = json.loads(data)
            return Generation(
                int(body["n"]), int(body["end"]), str(body["topic"]), int(body["epoch"])
            )
        except (ValueError, KeyError, TypeError) as err:
            log.warning("ignoring an unreadable compacted-generation document: %s", err)
            return None


@dataclass(frozen=True)
class _Entry:
    base_offset: int
    last_offset: int
    max_timestamp: int
    message_id: Any


class CompactedView:
    """One generation, every batch indexed; reads open a reader at the batch asked for."""

    def __init__(
        self, io: PulsarIO, generation: Generation, entries: list[_Entry], heads: list[bytes]
    ):
        self.io = io
        self.generation = generation
        self.entries = entries
        self.heads = heads  # batch heads, oldest first (producer state on a takeover)
        self._last_offsets = [e.last_offset for e in entries]
        self._lock = threading.Lock()
        self._reader: tuple[Any, int] | None = None  # a reader and the entry it is at

    @property
    def end(self) -> int:
        return self.generation.end

    @property
    def first_offset(self) -> int:
        return self.entries[0].base_offset if self.entries else self.end

    @staticmethod
    def load(io: PulsarIO, generation: Generation) -> CompactedView:
        entries: list[_Entry] = []
        heads: list[bytes] = []
        reader = io.reader(generation.topic)
        try:
            for msg in io.drain(reader, generation.topic):
                try:
                    info = parse_partition_message(msg.properties())
                except FormatError:
                    continue
                if isinstance(info, BatchInfo):
                    payload = msg.data()
                    entries.append(_entry(info, msg.message_id()))
                    heads.append(batch_head(payload))
        finally:
            io.close_quietly(reader)
        return CompactedView(io, generation, entries, heads)

    def read(self, offset: int, max_bytes: int, upper: int) -> list[bytes]:
        """Whole batches from the first one ending at or after ``offset``, below ``upper`` and
        the generation's end; [] when none is left (gaps are normal: cleaned records)."""
        upper = min(upper, self.end)
        i = bisect_left(self._last_offsets, offset)
        if i >= len(self.entries) or self.entries[i].base_offset >= upper:
            return []
        with self._lock:
            kept, self._reader = self._reader, None
        if kept is not None and kept[1] == i:
            reader = kept[0]
        else:
            if kept is not None:
                self.io.close_quietly(kept[0])
            reader = self.io.reader(self.generation.topic, self.entries[i].message_id, 100)
        out: list[bytes] = []
        total = 0
        try:
            while i < len(self.entries) and self.entries[i].base_offset < upper:
                msg = self.io.read_next(reader, self.generation.topic)
                data: bytes = msg.data()
                if out and total + len(data) > max_bytes:
                    # Read one too many: the kept reader would be past entry i.
                    self.io.close_quietly(reader)
                    return out
                out.append(data)
                total += len(data)
                i += 1
        except BaseException:
            self.io.close_quietly(reader)
            raise
        with self._lock:
            old, self._reader = self._reader, (reader, i)
        if old is not None:
            self.io.close_quietly(old[0])
        return out

    def _fetch(self, i: int) -> bytes:
        reader = self.io.reader(self.generation.topic, self.entries[i].message_id, 1)
        try:
            data: bytes = self.io.read_next(reader, self.generation.topic).data()
            return data
        finally:
            self.io.close_quietly(reader)

    def batch_at_timestamp(self, ts: int) -> bytes | None:
        for i, e in enumerate(self.entries):
            if e.max_timestamp >= ts:
                return self._fetch(i)
        return None

    def max_timestamp_batch(self) -> tuple[int, bytes] | None:
        if not self.entries:
            return None
        i = max(range(len(self.entries)), key=lambda j: (self.entries[j].max_timestamp, -j))
        return self.entries[i].max_timestamp, self._fetch(i)

    def close(self) -> None:
        with self._lock:
            kept, self._reader = self._reader, None
        if kept is not None:
            self.io.close_quietly(kept[0])


def _entry(info: BatchInfo, message_id: Any) -> _Entry:
    return _Entry(info.base_offset, info.last_offset, info.max_timestamp, message_id)


def write_generation(io: PulsarIO, topic: str, epoch: int, batches: list[bytes]) -> list[_Entry]:
    """Store ``batches`` in the new generation topic ``topic``; their index entries once Pulsar
    has acknowledged every one."""
    producer = io.shared_producer(topic)
    ids: list[Any] = [None] * len(batches)
    errors: list[str] = []
    done = threading.Event()
    pending = [len(batches)]
    lock = threading.Lock()
    infos: list[BatchInfo] = []
    try:
        for i, batch in enumerate(batches):
            h = parse_batch_header(batch)
            info = BatchInfo(epoch, h.base_offset, h.last_offset_delta + 1, h.max_timestamp)
            infos.append(info)

            def on_receipt(res: Any, msg_id: Any, i: int = i) -> None:
                with lock:
                    if result_ok(res):
                        ids[i] = msg_id
                    else:
                        errors.append(str(res))
                    pending[0] -= 1
                    if pending[0] == 0:
                        done.set()

            with io.errors("write a compacted generation", topic):
                producer.send_async(
                    batch,
                    on_receipt,
                    properties=batch_properties(
                        epoch, info.base_offset, info.record_count, info.max_timestamp
                    ),
                    event_timestamp=info.max_timestamp if info.max_timestamp > 0 else None,
                )
        if batches and not done.wait(io.operation_timeout_ms / 1000 * 3):
            raise PulsarStorageError(
                f"Pulsar {io.url} {topic}: compacted generation not acknowledged"
            )
        if errors:
            raise PulsarStorageError(
                f"Pulsar {io.url} {topic}: writing a compacted generation failed: {errors[0]}"
            )
    finally:
        io.close_quietly(producer)
    return [_entry(info, ids[i]) for i, info in enumerate(infos)]


def new_generation_topic(namespace_prefix: str, topic: str, partition: int, number: int) -> str:
    """``namespace_prefix``: ``persistent://tenant/namespace/``."""
    return f"{namespace_prefix}{generation_stem(topic, partition)}{number}.{uuid.uuid4().hex[:8]}"


class CompactedPartitions:
    """The backend's side of compaction: the generation views of the partitions it reads, the
    switch, and trimming. ``docs`` and ``io`` are the backend's (looked up on each call: they
    exist once the backend started)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._views: dict[tuple[str, int], CompactedView] = {}
        self._subscribed: set[str] = set()  # topics whose subscription this process ensured
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    # -- reading -----------------------------------------------------------------------------

    def generation(self, topic: str, partition: int) -> Generation | None:
        return Generation.decode(self._backend.load_doc(doc_name(topic, partition)))

    def end(self, topic: str, partition: int) -> int:
        gen = self.generation(topic, partition)
        return 0 if gen is None else gen.end

    def view(self, topic: str, partition: int) -> CompactedView | None:
        """The view of the partition's current generation (the document), loaded on first use."""
        gen = self.generation(topic, partition)
        key = (topic, partition)
        with self._lock:
            view = self._views.get(key)
        if gen is None:
            return None
        if view is not None and view.generation == gen:
            return view
        loaded = CompactedView.load(self._backend._client(), gen)
        self._install(key, loaded)
        return loaded

    def _install(self, key: tuple[str, int], view: CompactedView) -> None:
        with self._lock:
            old = self._views.get(key)
            if old is not None and old.generation.number > view.generation.number:
                view.close()
                return
            self._views[key] = view
        if old is not None and old is not view:
            old.close()

    # -- writing -----------------------------------------------------------------------------

    def write(
        self,
        topic: str,
        partition: int,
        epoch: int,
        end: int,
        batches: list[bytes],
        owner: Any,
        delete_delay_s: float,
    ) -> bool:
        """Store a new generation and switch to it (module docstring); False when this instance
        no longer owns the partition at ``epoch`` or another switch came first. Readers of
        another instance may still be on the previous generation for a moment after a switch
        (they follow the document topic): it is deleted ``delete_delay_s`` later."""
        if owner is None or not owner.owned or owner.epoch != epoch:
            return False
        backend = self._backend
        name = doc_name(topic, partition)
        expected = backend.load_doc(name)
        current = Generation.decode(expected)
        if current is not None and (current.epoch > epoch or current.end >= end):
            return False
        self._ensure_trimmable(topic)
        prefix = backend._internal("")
        number = 1 if current is None else current.number + 1
        gen_topic = new_generation_topic(prefix, topic, partition, number)
        io = backend._client()
        backend._admin.create_topic(backend.tenant, backend.namespace, gen_topic[len(prefix) :])
        try:
            entries = write_generation(io, gen_topic, epoch, batches)
            gen = Generation(number, end, gen_topic, epoch)
            switched = backend.save_doc_if(name, gen.encode(), expected)
        except BaseException:
            self._delete(gen_topic, prefix)
            raise
        if not switched:
            log.info(
                "%s-%d: another owner switched the compacted generation first", topic, partition
            )
            self._delete(gen_topic, prefix)
            return False
        heads = [batch_head(b) for b in batches]
        self._install((topic, partition), CompactedView(io, gen, entries, heads))
        log.info(
            "%s-%d: compacted generation %d (%d batches) serves offsets below %d",
            topic,
            partition,
            number,
            len(batches),
            end,
        )
        self._trim(topic, partition, end, owner, (gen_topic, current), delete_delay_s)
        return True

    def _ensure_trimmable(self, topic: str) -> None:
        """The subscription that holds the partitions' data from the first switch on, then
        retention 0 on the topic (in that order: with no subscription, retention 0 would let
        Pulsar delete everything)."""
        if topic in self._subscribed:
            return
        backend = self._backend
        backend._admin.ensure_subscription(backend.tenant, backend.namespace, topic, SUBSCRIPTION)
        self._subscribed.add(topic)

    def retention(self, topic: str, policy: dict[str, int]) -> dict[str, int]:
        """The Pulsar retention for ``policy`` (Kafka's, translated): on a compacted topic with
        no Kafka retention, 0 (Pulsar keeps what the subscription has not passed: the
        partition topics from their compacted end on)."""
        unlimited = (
            policy.get("retentionTimeInMinutes") == -1 and policy.get("retentionSizeInMB") == -1
        )
        if not unlimited or not self._backend.doc_names(f"compacted/{topic}/"):
            return policy
        self._ensure_trimmable(topic)
        return {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}

    def _trim(
        self,
        topic: str,
        partition: int,
        end: int,
        owner: Any,
        keep: tuple[str, Generation | None],
        delete_delay_s: float,
    ) -> None:
        backend = self._backend
        admin = backend._admin
        try:
            policy = self.retention(topic, {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1})
            if backend._retention.get(topic) in (
                None,
                {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1},
            ):
                admin.set_topic_policy(
                    backend.tenant, backend.namespace, topic, "retention", policy
                )
                backend._retention[topic] = policy
            position = owner.position_for(end)
            part = owner.topic.rsplit("/", 1)[-1]
            if position is not None:
                admin.reset_cursor(backend.tenant, backend.namespace, part, SUBSCRIPTION, position)
                admin.trim_topic(backend.tenant, backend.namespace, part)
            self._drop_old_generations(topic, partition, keep, delete_delay_s)
        except PulsarStorageError as err:
            # The switch stands; the next clean trims again.
            log.warning("%s-%d: trimming after a compaction failed: %s", topic, partition, err)

    def _drop_old_generations(
        self,
        topic: str,
        partition: int,
        keep: tuple[str, Generation | None],
        delete_delay_s: float,
    ) -> None:
        """Delete the partition's generation topics but the new one: the previous one after a
        grace period, orphans (of lost races or crashed writers) now."""
        backend = self._backend
        prefix = backend._internal("")
        new_topic, previous = keep
        stem = prefix + generation_stem(topic, partition)
        for name in backend._admin.topics(backend.tenant, backend.namespace):
            rest = name[len(stem) :]
            # <n>.<random>: another topic's generations may start with this stem too.
            ours = name.startswith(stem) and rest.count(".") == 1 and rest.split(".")[0].isdigit()
            if not ours or name == new_topic:
                continue
            if previous is not None and name == previous.topic:
                timer = threading.Timer(delete_delay_s, self._delete, (name, prefix))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)
            else:
                self._delete(name, prefix)

    def _delete(self, name: str, prefix: str) -> None:
        backend = self._backend
        try:
            backend._admin.delete_topic(backend.tenant, backend.namespace, name[len(prefix) :])
        except PulsarStorageError as err:
            log.warning("cannot delete the compacted generation %s: %s", name, err)

    # -- takeover and topic deletion -----------------------------------------------------------

    def opened(
        self, topic: str, partition: int, scan: Any
    ) -> tuple[int, list[bytes], list[bytes]] | None:
        """For a takeover of a compacted partition: (log start, producer-state heads, tail)
        with the generation below its end and the partition topic from there; None when the
        partition has no generation."""
        view = self.view(topic, partition)
        if view is None:
            return None
        end = view.end
        merged = ProducerTails()
        for head in view.heads:
            merged.add(head)
        for head in scan.headers:
            if parse_batch_header(head).base_offset >= end:
                merged.add(head)
        scan.producers = merged
        tail = [b for b in scan.tail if parse_batch_header(b).base_offset >= end]
        return min(view.first_offset, scan.log_start), merged.headers(), tail

    def delete_topic(self, topic: str) -> None:
        backend = self._backend
        with self._lock:
            gone = [key for key in self._views if key[0] == topic]
            views = [self._views.pop(key) for key in gone]
        for v in views:
            v.close()
        self._subscribed.discard(topic)
        for name in backend.doc_names(f"compacted/{topic}/"):
            backend.save_doc(name, None)
        prefix = backend._internal("")
        stem = prefix + GENERATION_PREFIX + topic + "."
        for name in backend._admin.topics(backend.tenant, backend.namespace):
            rest = name[len(stem) :]
            # <partition>.<n>.<random>: another topic's name could start with this one's.
            if name.startswith(stem) and rest.count(".") == 2 and rest.split(".")[0].isdigit():
                self._delete(name, prefix)

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        with self._lock:
            views = list(self._views.values())
            self._views.clear()
        for v in views:
            v.close()
