"""kop's Rust Pulsar storage over an in-memory bridge (no Pulsar): what kop-py's worker pool
(rust/kop-py/src/blocking.rs) and its generic bridge call (pulsar.rs) promise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

import kop
from helpers.memory_bridge import MemoryBridge
from kop import _native

HOST = "127.0.0.1"


class BridgeDown(OSError):
    """Stands in for a PulsarStorageError."""


class FailingBridge(MemoryBridge):
    def load_doc(self, name: str) -> bytes | None:
        raise BridgeDown(f"no document {name} today")


def _native_server(bridge: Any) -> Any:
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0"],
        storage="pulsar://memory:6650",
        num_partitions=1,
        log_level="warn",
    )
    return _native.NativeServer(cfg.to_json(), storage_backend=bridge)


@pytest.fixture
def served() -> Iterator[tuple[Any, MemoryBridge, str]]:
    bridge = MemoryBridge()
    native = _native_server(bridge)
    native.start()
    _, host, port = native.bound_addresses()[0]
    try:
        yield native, bridge, f"{host}:{port}"
    finally:
        native.stop(10.0)


def test_appends_reach_python_in_offset_order(served: tuple[Any, MemoryBridge, str]) -> None:
    native, bridge, bootstrap = served
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    def produce(n: int) -> None:
        # Batches of 5, several requests in flight: many appends queued at once.
        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 1,
                "batch.num.messages": 5,
            }
        )
        for i in range(300):  # four producers, many small batches, one partition
            p.produce("ordered", f"{n}-{i}".encode(), on_delivery=delivered)
            p.poll(0)
        assert p.flush(30) == 0

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    batches = bridge.logs[("ordered", 0)]
    offsets = [(base, count) for base, count, _ in batches]
    # Every batch was appended in the order Rust gave it offsets: dense, increasing.
    assert [base for base, _ in offsets] == [0] + [b + c for b, c in offsets[:-1]]
    assert sum(c for _, c in offsets) == 1200
    assert len(batches) >= 200, "too few batches to show an order"
    stats = dict(native.bridge_stats())
    assert stats["queued"] == 0 and 1 <= stats["workers"] <= 6, stats
    assert stats["done"] >= len(batches), stats


def test_a_bridge_exception_reaches_start_as_it_was() -> None:
    native = _native_server(FailingBridge())
    with pytest.raises(BridgeDown, match=r"no document .* today"):
        native.start()
    assert not native.is_running()


def test_bridge_stats_before_any_call() -> None:
    stats = dict(_native_server(MemoryBridge()).bridge_stats())
    assert stats == {"queued": 0, "workers": 0, "busy": 0, "done": 0}
    assert json.dumps(stats)  # plain ints
