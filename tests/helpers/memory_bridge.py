"""The Pulsar bridge contract (kop.pulsar.seams.PulsarBridge) in memory, for driving kop's Rust
Pulsar storage without Pulsar (tests/pulsar/test_bridge_pool.py, bench/bridge_calls.py).

One process: appends are stored in the order they are called, and their ``done`` called at once
on the calling thread. Like PulsarBackend's partitions, each ``open_partition`` starts a new
epoch and an append of an older epoch (queued before the re-open) is refused, not stored.
"""

from __future__ import annotations

import threading
from typing import Any


class MemoryBridge:
    """The bridge contract (kop.pulsar.seams.PulsarBridge) in memory, for one process."""

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}
        self.version = 0
        self.logs: dict[tuple[str, int], list[tuple[int, int, bytes]]] = {}
        self.epochs: dict[tuple[str, int], int] = {}
        self.member = "{}"
        self.lock = threading.Lock()

    def load_doc(self, name: str) -> bytes | None:
        return self.docs.get(name)

    def save_doc(self, name: str, data: bytes | None) -> None:
        with self.lock:
            if data is None:
                self.docs.pop(name, None)
            else:
                self.docs[name] = data
            self.version += 1

    def save_doc_if(self, name: str, data: bytes | None, expected: bytes | None) -> bool:
        with self.lock:
            if self.docs.get(name) != expected:
                return False
        self.save_doc(name, data)
        return True

    def doc_names(self, prefix: str) -> list[str]:
        return [n for n in self.docs if n.startswith(prefix)]

    def join(self, member: str) -> list[str]:
        self.member = member
        return [member]

    def cluster_state(self) -> tuple[list[str], int]:
        return [self.member], self.version

    def create_topic(self, topic: str, partitions: int) -> None:
        for p in range(partitions):
            self.logs.setdefault((topic, p), [])

    def delete_topic(self, topic: str) -> None:
        for key in [k for k in self.logs if k[0] == topic]:
            del self.logs[key]

    def open_partition(self, topic: str, partition: int, tail_bytes: int) -> Any:
        log = self.logs.setdefault((topic, partition), [])
        end = log[-1][0] + log[-1][1] if log else 0
        epoch = self.epochs[(topic, partition)] = self.epochs.get((topic, partition), 0) + 1
        return (epoch, log[0][0] if log else 0, end, [], [])

    def apply_retention(self, topic: str, partition: int, ms: int, size: int) -> int:
        log = self.logs.get((topic, partition))
        return log[0][0] if log else -1

    def follow_partition(self, topic: str, partition: int, end: Any) -> bool:
        return False  # kop writes every partition here

    def close_partition(self, topic: str, partition: int) -> None:
        pass

    def max_batch_bytes(self) -> int:
        return 5 * 1024 * 1024

    def append(
        self,
        topic: str,
        partition: int,
        epoch: int,
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        payload: bytes,
        done: Any,
    ) -> None:
        if epoch != self.epochs.get((topic, partition)):
            done(f"append with epoch {epoch}, but {topic}-{partition} is at a later one")
            return
        self.logs[(topic, partition)].append((base_offset, record_count, payload))
        done(None)

    def append_batches(self, batches: list[Any]) -> None:
        for args in batches:
            self.append(*args)

    def read(
        self, topic: str, partition: int, offset: int, max_bytes: int, upper: int
    ) -> list[bytes]:
        out: list[bytes] = []
        size = 0
        for base, count, payload in self.logs.get((topic, partition), []):
            if base + count <= offset or base >= upper:
                continue
            if out and size + len(payload) > max_bytes:
                break
            out.append(payload)
            size += len(payload)
        return out

    def batch_at_timestamp(self, topic: str, partition: int, ts: int) -> bytes | None:
        return None

    def batch_with_max_timestamp(self, topic: str, partition: int) -> bytes | None:
        return None

    def storage_size(self, topic: str, partition: int) -> int:
        return -1

    def load_group_records(self, shard: int) -> list[bytes]:
        return []

    def append_group_records(self, shard: int, records: list[bytes]) -> None:
        pass

    def rewrite_group_records(self, shard: int, records: list[bytes]) -> None:
        pass

    def release_group_records(self, shard: int) -> None:
        pass
