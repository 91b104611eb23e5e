"""Calls from Rust into Python, through kop-py's worker pool (rust/kop-py/src/blocking.rs).

    .venv/bin/python bench/bridge_calls.py hooks  [--requests 3000] [--clients 4] [--repeats 3]
    .venv/bin/python bench/bridge_calls.py pulsar [--records 100000] [--repeats 3]
        [--service-url pulsar://127.0.0.1:6650 --admin-url http://127.0.0.1:8080]
    .venv/bin/python bench/bridge_calls.py memory [--records 100000] [--repeats 3]

hooks: an embedded kop (memory storage) with a trivial Python authorizer whose answers are never
cached (hook_cache_ttl_ms=0), so every Produce request crosses into Python once; CLIENTS
librdkafka producers each send REQUESTS one-record requests, one in flight at a time. Prints
requests/s (hook crossings/s).

pulsar: kop on Pulsar (a standalone started here unless URLs are given). produce: RECORDS
100-byte records with acks=all into one partition in 16 KiB batches (every batch goes through
the ordered lane, batches queued meanwhile in one `append_batches` call); cold read: a consumer
reads them back from offset 0 while the tail cache holds 64 KiB, so nearly every fetch is a
blocking `read` call. Prints records/s.

memory: the same produce and cold read, with kop's Rust Pulsar storage over an in-memory
Python bridge (MemoryBridge, below) instead of Pulsar: the bridge crossings without Pulsar's
cost and noise.

Runs against whatever kop the interpreter imports, so the same script measures two builds.
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

import kop

HOST = "127.0.0.1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _stats(server: Any) -> str:
    stats = getattr(server, "bridge_stats", None)  # absent before the pool
    return f"  pool {stats()}" if stats else ""


def _cpu() -> float:
    """CPU seconds of this process (kop and the clients) so far: steadier than wall time on a
    shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def allow(ctx: Any, op: Any, res: Any) -> bool:
    return True


def hooks_once(requests: int, clients: int) -> float:
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0"],
        storage="memory://",
        num_partitions=1,
        authorizer="python",
        hook_cache_ttl_ms=0,
        log_level="warn",
    )
    with kop.Server(cfg, authorizer=allow) as server:
        producers = [
            Producer(
                {
                    "bootstrap.servers": server.bootstrap_servers,
                    "acks": "1",
                    "linger.ms": 0,
                    "batch.num.messages": 1,
                    "max.in.flight.requests.per.connection": 1,
                    "log_level": 0,
                }
            )
            for _ in range(clients)
        ]
        # A topic per client: concurrent misses of one key would share one crossing.
        for i, p in enumerate(producers):  # warm up: metadata, topic creation
            p.produce(f"bench-{i}", b"x")
            p.flush(30)
        calls_before = server.authorizer_hook_calls
        errors: list[str] = []

        def run(p: Producer, topic: str) -> None:
            def delivered(err: Any, _msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))

            for _ in range(requests):
                p.produce(topic, b"x" * 100, on_delivery=delivered)
                p.flush(30)  # one request at a time: the round trip includes the crossing

        threads = [
            threading.Thread(target=run, args=(p, f"bench-{i}")) for i, p in enumerate(producers)
        ]
        started, cpu = time.perf_counter(), _cpu()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = _cpu() - cpu
        if errors:
            raise SystemExit(f"produce failed: {errors[:3]}")
        calls = server.authorizer_hook_calls - calls_before
        rate = calls / elapsed
        print(
            f"hooks: {rate:8,.0f} crossings/s, {cpu / calls * 1e6:.1f} CPU us/crossing ({calls} "
            f"for {requests * clients} requests in {elapsed:.2f} s){_stats(server)}"
        )
    return rate


def pulsar_once(
    records: int, service_url: str | None, admin_url: str | None
) -> tuple[float, float]:
    """Against Pulsar; with no service_url, against a MemoryBridge."""
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0"],
        storage=service_url or "pulsar://memory:6650",
        pulsar_admin_url=admin_url,
        pulsar_namespace=f"bridge-bench-{uuid.uuid4().hex[:8]}",
        num_partitions=1,
        tail_cache_bytes=64 * 1024,
        log_level="warn",
    )
    server: Any = kop.Server(cfg) if service_url else _NativeOnly(cfg)
    with server:
        p = Producer(
            {
                "bootstrap.servers": server.bootstrap_servers,
                "acks": "all",
                "linger.ms": 5,
                "batch.size": 16 * 1024,  # many batches: many appends, and reads of few each
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        p.produce("bench", b"w")  # warm up: topic creation, takeover
        assert p.flush(60) == 0
        value = b"x" * 100
        started, cpu = time.perf_counter(), _cpu()
        for _ in range(records):
            while True:
                try:
                    p.produce("bench", value)
                    break
                except BufferError:
                    p.poll(0.01)
        assert p.flush(120) == 0
        produce_rate = records / (time.perf_counter() - started)
        produce_cpu = (_cpu() - cpu) / records * 1e6

        c = Consumer(
            {
                "bootstrap.servers": server.bootstrap_servers,
                "group.id": f"g-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.max.bytes": 2 * 1024 * 1024,
                "message.max.bytes": 1024 * 1024,
                "max.partition.fetch.bytes": 64 * 1024,
            }
        )
        c.assign([TopicPartition("bench", 0, 0)])
        seen = 0
        started, cpu = time.perf_counter(), _cpu()
        while seen < records + 1:
            for m in c.consume(100, timeout=0.5):
                if m.error() is None:
                    seen += 1
        read_rate = seen / (time.perf_counter() - started)
        read_cpu = (_cpu() - cpu) / seen * 1e6
        c.close()
        name = "pulsar" if service_url else "memory"
        print(
            f"{name}: produce {produce_rate:9,.0f} records/s {produce_cpu:.2f} CPU us/record, "
            f"cold read {read_rate:9,.0f} records/s {read_cpu:.2f} CPU us/record{_stats(server)}"
        )
    return produce_rate, read_rate


class _NativeOnly:
    """Enough of kop.Server over kop._native.NativeServer with a MemoryBridge."""

    def __init__(self, cfg: kop.Config) -> None:
        from helpers.memory_bridge import MemoryBridge
        from kop import _native

        self.native = _native.NativeServer(cfg.to_json(), storage_backend=MemoryBridge())

    def __enter__(self) -> _NativeOnly:
        self.native.start()
        _, host, port = self.native.bound_addresses()[0]
        self.bootstrap_servers = f"{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.native.stop(10.0)

    def bridge_stats(self) -> dict[str, int]:
        stats = getattr(self.native, "bridge_stats", None)
        return dict(stats()) if stats else {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["hooks", "pulsar", "memory"])
    ap.add_argument("--requests", type=int, default=3000, help="hooks: requests per client")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--service-url")
    ap.add_argument("--admin-url")
    args = ap.parse_args()
    if args.what == "hooks":
        rates = [hooks_once(args.requests, args.clients) for _ in range(args.repeats)]
        print(f"median {statistics.median(rates):,.0f} hook crossings/s")
        return
    from helpers.pulsar import pulsar_service, stop_pulsar_service

    started_here = args.what == "pulsar" and not args.service_url
    if started_here:
        svc = pulsar_service()
        args.service_url, args.admin_url = svc.url, svc.admin_url
    try:
        runs = [
            pulsar_once(args.records, args.service_url, args.admin_url) for _ in range(args.repeats)
        ]
    finally:
        if started_here:
            stop_pulsar_service()
    produce = statistics.median(r[0] for r in runs)
    read = statistics.median(r[1] for r in runs)
    print(f"median produce {produce:,.0f} records/s, cold read {read:,.0f} records/s")


if __name__ == "__main__":
    main()
