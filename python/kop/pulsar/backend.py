"""``PulsarBackend``: the object Rust's Pulsar storage calls. It implements the seams of
``kop.pulsar.seams`` (mypy checks it, below), whose methods the table in docs/pulsar-storage.md
lists.

Rust calls every method from the worker pool it runs Python calls on (rust/kop-py/src/blocking.rs);
blocking methods may block there, ``append_batches`` never blocks (one call at a time hands
over every batch queued since the last, in order). Every failure is a PulsarStorageError naming
the Pulsar URL and topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kop.pulsar.admin import PulsarAdmin
from kop.pulsar.checkpoint import CheckpointStore, load_checkpoint, open_store
from kop.pulsar.client import PulsarIO
from kop.pulsar.compacted import CompactedPartitions
from kop.pulsar.documents import DocumentStore
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import (
    GROUP_SHARDS,
    GROUPS_TOPIC,
    MEMBERS_TOPIC,
    METADATA_TOPIC,
    TRANSACTIONS_TOPIC,
    TXN_SHARD_BASE,
    instance_topic,
    parse_batch_header,
    partition_topic,
    pulsar_topic,
)
from kop.pulsar.groups import GroupRecordStore
from kop.pulsar.members import Members
from kop.pulsar.native import NativePartition, first_message_is_native
from kop.pulsar.native_index import BrokerIndex
from kop.pulsar.partition import Partition
from kop.pulsar.retention import retention_policy
from kop.pulsar.seams import AppendArgs, OpenedPartition
from kop.pulsar.takeover import scan_partition, take_over

if TYPE_CHECKING:
    from kop.pulsar.seams import DocumentSeam, GroupLogSeam, LogSeam, MemberSeam, PulsarBridge

__all__ = ["OpenedPartition", "PulsarBackend", "PulsarStorageError"]

log = logging.getLogger("kop.pulsar")

# Pulsar's default maxMessageSize, used only when the broker's configuration cannot be read.
DEFAULT_MAX_MESSAGE_SIZE = 5 * 1024 * 1024
# The client counts a message's metadata (producer name, sequence id, kop's properties: about
# 150 bytes) against maxMessageSize; this leaves room for it.
METADATA_RESERVE = 1024


class PulsarBackend:
    def __init__(
        self,
        service_url: str,
        admin_url: str,
        tenant: str = "public",
        namespace: str = "default",
        token: str | None = None,
        operation_timeout_s: float = 10.0,
        send_timeout_ms: int = 10_000,
        log_path: str | None = None,
        standby: bool = False,
        node_id: int = 1,
        cancelled: Callable[[], bool] = lambda: False,
        entry_format: str = "kafka",
    ) -> None:
        self.service_url = service_url
        self.admin_url = admin_url
        self.tenant = tenant
        self.namespace = namespace
        self._token = token
        self._operation_timeout_s = operation_timeout_s
        self._send_timeout_ms = send_timeout_ms
        self._log_path = log_path
        self.standby = standby
        self.node_id = node_id
        # "pulsar": Kafka batches are stored one Pulsar message per record
        # (docs/pulsar-native-records.md)
        self.entry_format = entry_format
        self._cancelled = cancelled  # start-up stops waiting (standby) once this is true
        self._max_message_size = DEFAULT_MAX_MESSAGE_SIZE
        self._admin = PulsarAdmin(admin_url, token=token, timeout_s=operation_timeout_s)
        self._io: PulsarIO | None = None
        self._docs: DocumentStore | None = None
        # Group records per shard, each taken over by the instance coordinating the shard when
        # Rust loads it (load_group_records).
        self._groups: dict[int, GroupRecordStore] = {}
        self._members: Members | None = None
        self._instance: Any = None  # the exclusive producer of instance_topic(node_id)
        # Pulsar-format partitions (written by Pulsar applications) are NativePartitions.
        self._partitions: dict[tuple[str, int], Partition | NativePartition] = {}
        self._checkpoints: CheckpointStore | None = None  # __kop_index, opened on first use
        self._retention: dict[str, dict[str, int]] = {}  # topic -> retention policy set
        self._lock = threading.Lock()  # guards _partitions (the dict, not the partitions)
        self._compacted = CompactedPartitions(self)  # docs/compaction.md, "Pulsar"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._admin.set_namespace_policies(self.tenant, self.namespace)
        self._max_message_size = self._read_max_message_size()
        own_topic = instance_topic(self.node_id)
        for name in (own_topic, MEMBERS_TOPIC, METADATA_TOPIC):
            self._admin.create_topic(self.tenant, self.namespace, name)
        for name in (GROUPS_TOPIC, TRANSACTIONS_TOPIC):
            self._admin.create_partitioned_topic(self.tenant, self.namespace, name, GROUP_SHARDS)
        io = PulsarIO(
            self.service_url,
            token=self._token,
            operation_timeout_s=self._operation_timeout_s,
            send_timeout_ms=self._send_timeout_ms,
            log_path=self._log_path,
        )
        try:
            # One process per node id: the newest takes the node over, and the one it replaced
            # stops writing; a standby waits until the serving process is gone. Instances with
            # other node ids share the namespace (join, cluster_state).
            if self.standby:
                self._instance = io.wait_for_exclusive_producer(
                    self._internal(own_topic), cancelled=self._cancelled
                )
            else:
                self._instance = io.owner_producer(self._internal(own_topic))
            docs = DocumentStore(io, self._internal(METADATA_TOPIC))
            docs.load()
        except BaseException:
            PulsarIO.close_quietly(self._instance)
            io.close()
            raise
        self._io, self._docs = io, docs
        self._members = Members(io, self._internal(MEMBERS_TOPIC))

    def _read_max_message_size(self) -> int:
        try:
            size = self._admin.max_message_size()
        except PulsarStorageError as err:
            # The admin API answered a moment ago (namespace policies): this endpoint is refused
            # (it needs a super-user token) or missing.
            log.warning(
                "cannot read Pulsar's maxMessageSize (%s); assuming its default %d bytes. A "
                "larger batch is refused with MESSAGE_TOO_LARGE; should the broker's limit be "
                "lower, the first batch it refuses lowers kop's limit",
                err,
                DEFAULT_MAX_MESSAGE_SIZE,
            )
            return DEFAULT_MAX_MESSAGE_SIZE
        log.info(
            "Pulsar's maxMessageSize is %d bytes: Kafka batches up to %d bytes are stored, "
            "larger ones refused (MESSAGE_TOO_LARGE)",
            size,
            size - METADATA_RESERVE,
        )
        return size

    def max_batch_bytes(self) -> int:
        """The largest Kafka batch (one Pulsar message) Pulsar accepts; Rust refuses larger
        ones with MESSAGE_TOO_LARGE before assigning offsets (docs/pulsar-storage.md)."""
        return max(1, self._max_message_size - METADATA_RESERVE)

    def close(self) -> None:
        with self._lock:
            partitions = list(self._partitions.values())
            self._partitions.clear()
        for p in partitions:
            p.close()
        if self._members is not None:
            self._members.close()
        if self._docs is not None:
            self._docs.close()
        with self._lock:
            groups = list(self._groups.values())
            self._groups.clear()
        for g in groups:
            g.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._compacted.close()
        PulsarIO.close_quietly(self._instance)
        if self._io is not None:
            self._io.close()
        self._io = self._docs = self._instance = self._members = None

    # -- documents -------------------------------------------------------------------------------

    def load_doc(self, name: str) -> bytes | None:
        return self._documents().get(name)

    def save_doc(self, name: str, data: bytes | None) -> None:
        self._documents().save(name, data)

    def save_doc_if(self, name: str, data: bytes | None, expected: bytes | None) -> bool:
        return self._documents().save_if(name, data, expected)

    def doc_names(self, prefix: str) -> list[str]:
        return self._documents().names(prefix)

    # -- members ---------------------------------------------------------------------------------

    def join(self, member: str) -> list[str]:
        return self._member_set().join(member)

    def cluster_state(self) -> tuple[list[str], int]:
        return self._member_set().live(), self._documents().version

    # -- topics ----------------------------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int) -> None:
        self._admin.create_partitioned_topic(self.tenant, self.namespace, topic, partitions)

    def delete_topic(self, topic: str) -> None:
        with self._lock:
            mine = [key for key in self._partitions if key[0] == topic]
            closing = [self._partitions.pop(key) for key in mine]
            self._retention.pop(topic, None)
        for p in closing:
            p.close("topic deleted", checkpoint=False)
        self._compacted.delete_topic(topic)
        self._admin.delete_partitioned_topic(self.tenant, self.namespace, topic)

    # -- partitions ------------------------------------------------------------------------------

    def open_partition(self, topic: str, partition: int, tail_bytes: int) -> OpenedPartition:
        io = self._client()
        self._check_still_serving()
        key = (topic, partition)
        with self._lock:
            previous = self._partitions.pop(key, None)
        if previous is not None:
            previous.close("taken over again")
        name = partition_topic(self.tenant, self.namespace, topic, partition)
        checkpoints = self._checkpoint_store()
        checkpoint = load_checkpoint(checkpoints, name)
        if checkpoint is None and first_message_is_native(io, name):
            return self._open_native(key, io, name)
        won = take_over(io, name, tail_bytes, checkpoint, self.entry_format == "pulsar")
        scan = won.scan
        compacted = self._compacted.opened(topic, partition, scan)
        opened = Partition(
            io,
            name,
            scan.index,
            producer=won.producer,
            epoch=won.epoch,
            producers=scan.producers,
            checkpoints=checkpoints,
            tail_bytes=tail_bytes,
            entry_format=self.entry_format,
        )
        opened.opened_by(scan)
        with self._lock:
            raced = self._partitions.pop(key, None)
            self._partitions[key] = opened
        if raced is not None:
            raced.close("replaced")
        log.info(
            "%s: taken over with epoch %d, offsets %d..%d, read %d messages (%s)",
            name,
            won.epoch,
            scan.log_start,
            scan.next_offset,
            scan.messages_read,
            "from an index checkpoint" if scan.checkpoint else "from the start",
        )
        if compacted is not None:  # below its end the partition is its compacted generation
            log_start, headers, tail = compacted
            return (won.epoch, log_start, scan.next_offset, headers, tail)
        return (won.epoch, scan.log_start, scan.next_offset, scan.headers, list(scan.tail))

    def _open_native(self, key: tuple[str, int], io: PulsarIO, name: str) -> OpenedPartition:
        """A Pulsar-format partition (docs/pulsar-native-records.md): positioned through the
        broker entry index (or scanned without one), not taken over (no producer, no marker:
        Pulsar applications keep writing it)."""
        started = time.monotonic()
        native = NativePartition(io, name, self._broker_index(name)).open()
        read = native.scan_reads
        with self._lock:
            raced = self._partitions.pop(key, None)
            self._partitions[key] = native
        if raced is not None:
            raced.close("replaced")
        log.info(
            "%s: Pulsar-format partition (written by Pulsar producers), offsets %d..%d, "
            "read-only for Kafka clients; opened in %d ms, read %d messages (%s)",
            name,
            native.log_start,
            native.next_offset,
            (time.monotonic() - started) * 1000,
            read,
            "positions from the broker entry index" if native.indexed else "a full scan",
        )
        return (native.epoch, native.log_start, native.next_offset, [], [])

    def follow_partition(self, topic: str, partition: int, end: Callable[[int], object]) -> bool:
        """Whether Pulsar producers write the partition just opened (a Pulsar-format one); if
        so, its new messages are indexed as they come and each new end offset reported to
        ``end`` (Rust's high watermark) until it is closed or opened again."""
        with self._lock:
            p = self._partitions.get((topic, partition))
        if not isinstance(p, NativePartition):
            return False
        p.follow(end)
        return True

    def _broker_index(self, name: str) -> BrokerIndex:
        """Where a Pulsar-format partition's offsets are: the broker entry index."""
        return BrokerIndex(self._admin, self.tenant, self.namespace, name.rsplit("/", 1)[-1])

    def apply_retention(
        self, topic: str, partition: int, retention_ms: int, retention_bytes: int
    ) -> int:
        """Set the topic's Pulsar retention (when it changed) and return the partition's log
        start offset after what Pulsar deleted (-1: no batch left)."""
        readable = self._readable(topic, partition)
        if isinstance(readable, NativePartition):
            # The Pulsar application's retention governs its topic; offsets count from the
            # earliest stored message (docs/pulsar-native-records.md).
            return readable.trim_to_stored()
        policy = self._compacted.retention(topic, retention_policy(retention_ms, retention_bytes))
        if self._retention.get(topic) != policy:
            self._admin.set_topic_policy(self.tenant, self.namespace, topic, "retention", policy)
            self._retention[topic] = policy
        start = readable.trim_to_stored()
        # Compacted: the log starts in the generation, whatever Pulsar trimmed below its end.
        return -1 if self._compacted.end(topic, partition) > 0 else start

    def storage_size(self, topic: str, partition: int) -> int:
        """The bytes Pulsar stores of a partition (DescribeLogDirs); -1 when it cannot tell.
        Called off kop's request path."""
        name = partition_topic(self.tenant, self.namespace, topic, partition).rsplit("/", 1)[-1]
        size = self._admin.storage_size(self.tenant, self.namespace, name)
        return -1 if size is None else size

    def close_partition(self, topic: str, partition: int) -> None:
        with self._lock:
            p = self._partitions.pop((topic, partition), None)
        if p is not None:
            p.close()

    def append(
        self,
        topic: str,
        partition: int,
        epoch: int,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        payload: bytes,
        done: Callable[..., object],
    ) -> None:
        with self._lock:
            p = self._partitions.get((topic, partition))
        if p is None:
            try:
                done(f"Pulsar {self.service_url}: {topic}-{partition} is not open for writing")
            except Exception:
                log.exception("append completion callback failed")
            return
        p.append(epoch, base_offset, record_count, max_timestamp, payload, done)

    def append_batches(self, batches: list[AppendArgs]) -> None:
        """``append`` of each batch, in order: Rust hands over every batch queued since its
        last call at once (a produce request's batches of all partitions together), so that
        they are all sent before any receipt is waited for."""
        with self._lock:
            found = [self._partitions.get((b[0], b[1])) for b in batches]
        for p, (topic, partition, epoch, base_offset, count, max_ts, payload, done) in zip(
            found, batches, strict=True
        ):
            if p is None:
                self.append(topic, partition, epoch, base_offset, count, max_ts, payload, done)
            else:
                p.append(epoch, base_offset, count, max_ts, payload, done)

    def read(
        self, topic: str, partition: int, offset: int, max_bytes: int, upper: int
    ) -> list[bytes]:
        view = self._compacted.view(topic, partition)
        if view is not None and offset < view.end:
            found = view.read(offset, max_bytes, upper)
            if found or view.end >= upper:
                return found
            offset = view.end  # a gap up to the end of the generation
        return self._readable(topic, partition, offset).read(offset, max_bytes, upper)

    def batch_at_timestamp(self, topic: str, partition: int, ts: int) -> bytes | None:
        view = self._compacted.view(topic, partition)
        found = None if view is None else view.batch_at_timestamp(ts)
        return (
            found if found is not None else self._readable(topic, partition).batch_at_timestamp(ts)
        )

    def batch_with_max_timestamp(self, topic: str, partition: int) -> bytes | None:
        view = self._compacted.view(topic, partition)
        newer = self._readable(topic, partition).batch_with_max_timestamp()
        older = None if view is None else view.max_timestamp_batch()
        if older is None or (
            newer is not None and parse_batch_header(newer).max_timestamp >= older[0]
        ):
            return newer
        return older[1]

    def compacted_end(self, topic: str, partition: int) -> int:
        """Offsets below this are read from the partition's compacted generation (0: none)."""
        return self._compacted.end(topic, partition)

    def write_compacted(
        self,
        topic: str,
        partition: int,
        epoch: int,
        end: int,
        batches: list[bytes],
        delete_delay_ms: int,
    ) -> bool:
        """Store Rust's cleaned batches below ``end`` as the partition's next compacted
        generation and switch readers to it (kop.pulsar.compacted); False when this instance
        does not own the partition at ``epoch`` any more or another switch came first. The
        previous generation is deleted ``delete_delay_ms`` later (file.delete.delay.ms)."""
        with self._lock:
            owner = self._partitions.get((topic, partition))
        return self._compacted.write(
            topic, partition, epoch, end, batches, owner, delete_delay_ms / 1000
        )

    def _readable(
        self, topic: str, partition: int, offset: int | None = None
    ) -> Partition | NativePartition:
        """The partition's index. One this instance does not own is scanned (again, when asked
        for an offset beyond what the last scan saw)."""
        key = (topic, partition)
        with self._lock:
            p = self._partitions.get(key)
        if p is not None and (p.owned or (offset is not None and p.covers(offset))):
            return p
        if isinstance(p, NativePartition) and offset is None:
            return p  # time look-ups answer from what the last scan saw
        if isinstance(p, NativePartition) and p.indexed:
            p.refresh()  # the latest entry's index: no scan
            return p
        io = self._client()
        name = partition_topic(self.tenant, self.namespace, topic, partition)
        checkpoint = load_checkpoint(self._checkpoint_store(), name)
        scanned: Partition | NativePartition
        if checkpoint is None and first_message_is_native(io, name):
            scanned = NativePartition(io, name, self._broker_index(name)).open()
        else:
            scan = scan_partition(io, name, checkpoint)
            scanned = Partition(io, name, scan.index)
            scanned.opened_by(scan)
        with self._lock:
            current = self._partitions.get(key)
            if current is p:
                self._partitions[key] = scanned
            else:  # opened meanwhile: use that
                scanned.close()
                return current if current is not None else scanned
        if p is not None:
            p.close()
        return scanned

    # -- group records ---------------------------------------------------------------------------

    def load_group_records(self, shard: int) -> list[bytes]:
        return self._group_records(shard).load()

    def append_group_records(self, shard: int, records: list[bytes]) -> None:
        self._group_records(shard).append(records)

    def rewrite_group_records(self, shard: int, records: list[bytes]) -> None:
        self._group_records(shard).rewrite(records)

    def release_group_records(self, shard: int) -> None:
        self._group_records(shard).release()

    # -- helpers ---------------------------------------------------------------------------------

    def _check_still_serving(self) -> None:
        """Raise if another process took this node id over since this one started (its fencing
        closed our instance producer): taking partitions back would only fight it."""
        if self._instance is None:
            raise PulsarStorageError(f"Pulsar {self.service_url}: backend not started")
        try:
            self._instance.send(b"", properties={"kop.type": "instance-check"})
        except Exception as err:
            raise PulsarStorageError(
                f"Pulsar {self.service_url}: this kop instance no longer serves node "
                f"{self.node_id} on {self.tenant}/{self.namespace} (another process took it "
                f"over, or Pulsar is unreachable): {type(err).__name__}: {err}"
            ) from err

    def _checkpoint_store(self) -> CheckpointStore:
        if self._checkpoints is None:  # a race only opens a second, equivalent store
            self._checkpoints = open_store(self._admin, self._client(), self.tenant, self.namespace)
        return self._checkpoints

    def _internal(self, name: str) -> str:
        return pulsar_topic(self.tenant, self.namespace, name)

    def _client(self) -> PulsarIO:
        if self._io is None:
            raise PulsarStorageError(f"Pulsar {self.service_url}: backend not started")
        return self._io

    def _documents(self) -> DocumentStore:
        if self._docs is None:
            raise PulsarStorageError(f"Pulsar {self.service_url}: backend not started")
        return self._docs

    def _member_set(self) -> Members:
        if self._members is None:
            raise PulsarStorageError(f"Pulsar {self.service_url}: backend not started")
        return self._members

    def _group_records(self, shard: int) -> GroupRecordStore:
        # Shards 0.. are group records, TXN_SHARD_BASE.. transaction state (format.py).
        if 0 <= shard < GROUP_SHARDS:
            name, index = GROUPS_TOPIC, shard
        elif TXN_SHARD_BASE <= shard < TXN_SHARD_BASE + GROUP_SHARDS:
            name, index = TRANSACTIONS_TOPIC, shard - TXN_SHARD_BASE
        else:
            raise PulsarStorageError(f"Pulsar {self.service_url}: no record-log shard {shard}")
        io = self._client()
        with self._lock:
            store = self._groups.get(shard)
            if store is None:
                topic = partition_topic(self.tenant, self.namespace, name, index)
                store = self._groups[shard] = GroupRecordStore(io, topic)
            return store


if TYPE_CHECKING:
    # Never run: mypy checks that PulsarBackend satisfies each seam's Protocol (naming what
    # differs when it does not).
    _documents: DocumentSeam = PulsarBackend("", "")
    _logs: LogSeam = PulsarBackend("", "")
    _group_logs: GroupLogSeam = PulsarBackend("", "")
    _members: MemberSeam = PulsarBackend("", "")
    _bridge: PulsarBridge = PulsarBackend("", "")
