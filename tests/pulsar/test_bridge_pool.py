"""kop's Rust Pulsar storage over an in-memory bridge (no Pulsar): what kop-py's worker pool
(rust/kop-py/src/blocking.rs) and its generic bridge call (pulsar.rs) promise."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kop
from helpers.memory_bridge import MemoryBridge
from kop import _native

HOST = "127.0.0.1"


class BridgeDown(OSError):
    """Stands in for a PulsarStorageError."""


class CountingBridge(MemoryBridge):
    """Records how many batches each ``append_batches`` call (one crossing into Python)
    carried; with ``gate``, the first call waits for it."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.crossings: list[int] = []
        self.gate = gate

    def append_batches(self, batches: list[Any]) -> None:
        self.crossings.append(len(batches))
        if self.gate is not None and len(self.crossings) == 1:
            self.gate.wait(30)
        super().append_batches(batches)


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
def served() -> Iterator[tuple[Any, CountingBridge, str]]:
    bridge = CountingBridge()
    native = _native_server(bridge)
    native.start()
    _, host, port = native.bound_addresses()[0]
    try:
        yield native, bridge, f"{host}:{port}"
    finally:
        native.stop(10.0)


def test_appends_reach_python_in_offset_order(served: tuple[Any, CountingBridge, str]) -> None:
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
    assert sum(bridge.crossings) == len(batches)
    stats = dict(native.bridge_stats())
    assert stats["queued"] == 0 and 1 <= stats["workers"] <= 6, stats
    assert stats["done"] >= len(bridge.crossings), stats


def test_appends_queued_during_a_crossing_cross_together() -> None:
    """A produce request's batches of all partitions reach Python in one call (~2 s)."""
    gate = threading.Event()
    bridge = CountingBridge(gate)
    native = _native_server(bridge)
    native.start()
    _, host, port = native.bound_addresses()[0]
    bootstrap = f"{host}:{port}"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("wide", 8)])["wide"].result(30)
        conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50}
        first, wide = Producer(conf), Producer(conf)
        first.produce("wide", b"first", partition=0)
        first.poll(0)
        deadline = time.monotonic() + 30
        while not bridge.crossings and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bridge.crossings == [1], "the first batch did not reach the bridge"
        # The first crossing is held: one request with a batch per partition queues behind it.
        for p in range(8):
            wide.produce("wide", b"v%d" % p, partition=p)
        wide.poll(0)
        time.sleep(1.0)
        gate.set()
        assert first.flush(30) == 0 and wide.flush(30) == 0
        assert bridge.crossings == [1, 8]
        assert all(len(bridge.logs[("wide", p)]) == (2 if p == 0 else 1) for p in range(8))
    finally:
        gate.set()
        native.stop(10.0)


def test_a_bridge_exception_reaches_start_as_it_was() -> None:
    native = _native_server(FailingBridge())
    with pytest.raises(BridgeDown, match=r"no document .* today"):
        native.start()
    assert not native.is_running()


def test_bridge_stats_before_any_call() -> None:
    stats = dict(_native_server(MemoryBridge()).bridge_stats())
    assert stats == {"queued": 0, "workers": 0, "busy": 0, "done": 0}
    assert json.dumps(stats)  # plain ints
