"""The storage seams Rust calls through the bridge, one ``Protocol`` each (the Rust side is
kop-core's ``RemoteBackend``; docs/pulsar-storage.md, "The bridge contract", has the table that
tests/unit/test_pulsar_seams.py holds to these).

``PulsarBackend`` implements all of them; mypy checks that at the end of backend.py. Every method
may block except ``append_batches`` and ``max_batch_bytes``, and raises ``PulsarStorageError`` on
failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = [
    "AppendArgs",
    "DocumentSeam",
    "GroupLogSeam",
    "LogSeam",
    "MemberSeam",
    "OpenedPartition",
    "PulsarBridge",
]

# (epoch, log_start, next_offset, headers, tail)
OpenedPartition = tuple[int, int, int, list[bytes], list[bytes]]
# (topic, partition, epoch, base_offset, record_count, max_timestamp, payload, done): one batch
# to send; done(None) once stored, done(message) or done(message, too_large=True) if not
AppendArgs = tuple[str, int, int, int, int, int, bytes, Callable[..., object]]


class DocumentSeam(Protocol):
    """Small named documents: cluster id, security state, topics, producer-id blocks."""

    def load_doc(self, name: str) -> bytes | None: ...

    def save_doc(self, name: str, data: bytes | None) -> None: ...

    def save_doc_if(self, name: str, data: bytes | None, expected: bytes | None) -> bool: ...

    def doc_names(self, prefix: str) -> list[str]: ...


class LogSeam(Protocol):
    """Topics and the batches of their partitions."""

    def create_topic(self, topic: str, partitions: int) -> None: ...

    def delete_topic(self, topic: str) -> None: ...

    def apply_retention(
        self, topic: str, partition: int, retention_ms: int, retention_bytes: int
    ) -> int: ...

    def open_partition(self, topic: str, partition: int, tail_bytes: int) -> OpenedPartition: ...

    def follow_partition(
        self, topic: str, partition: int, end: Callable[[int], object]
    ) -> bool: ...

    def close_partition(self, topic: str, partition: int) -> None: ...

    def max_batch_bytes(self) -> int: ...

    def append_batches(self, batches: list[AppendArgs]) -> None: ...

    def read(
        self, topic: str, partition: int, offset: int, max_bytes: int, upper: int
    ) -> list[bytes]: ...

    def batch_at_timestamp(self, topic: str, partition: int, ts: int) -> bytes | None: ...

    def batch_with_max_timestamp(self, topic: str, partition: int) -> bytes | None: ...

    def storage_size(self, topic: str, partition: int) -> int: ...

    def compacted_end(self, topic: str, partition: int) -> int: ...

    def write_compacted(
        self,
        topic: str,
        partition: int,
        epoch: int,
        end: int,
        batches: list[bytes],
        delete_delay_ms: int,
    ) -> bool: ...


class GroupLogSeam(Protocol):
    """Opaque consumer-group records per group shard (the encoding is Rust's)."""

    def load_group_records(self, shard: int) -> list[bytes]: ...

    def append_group_records(self, shard: int, records: list[bytes]) -> None: ...

    def rewrite_group_records(self, shard: int, records: list[bytes]) -> None: ...

    def release_group_records(self, shard: int) -> None: ...


class MemberSeam(Protocol):
    """The live kop instances sharing the namespace (member JSON comes from Rust)."""

    def join(self, member: str) -> list[str]: ...

    def cluster_state(self) -> tuple[list[str], int]: ...


class PulsarBridge(DocumentSeam, LogSeam, GroupLogSeam, MemberSeam, Protocol):
    """The object ``kop.Server`` hands to the native server: every seam, started and closed by
    ``kop.Server``."""

    def start(self) -> None: ...

    def close(self) -> None: ...
