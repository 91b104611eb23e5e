"""Produce throughput with a trivial Python authorizer vs allow-all (issue 5's bench check).

    .venv/bin/python bench/auth_overhead.py [--records 400000] [--repeats 3]

Starts an embedded kop per authorizer on loopback (memory storage), produces the same records
with one librdkafka producer (acks=all, lz4 off, 100-byte values) and prints records/s. The
Python hook decides once per (principal, topic, operation) per cache TTL, so after the first
request it is never asked again: the overhead measured is the Rust cache lookup per request.
Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from confluent_kafka import Producer

import kop

HOST = "127.0.0.1"


def trivial_authorizer(ctx: Any, op: Any, resource: Any) -> bool:
    return True


def run_once(authorizer: str, records: int) -> float:
    hook = trivial_authorizer if authorizer == "python-hook" else None
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0"],
        storage="memory://",
        num_partitions=1,
        authorizer="allow-all" if hook else authorizer,
        log_level="warn",
    )
    with kop.Server(cfg, authorizer=hook) as server:
        p = Producer(
            {
                "bootstrap.servers": server.bootstrap_servers,
                "acks": "all",
                "linger.ms": 5,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 1000000,
            }
        )
        value = b"x" * 100
        p.produce("bench", value)  # warm up: metadata, topic creation, first decisions
        p.flush(30)
        started = time.perf_counter()
        for _ in range(records):
            while True:
                try:
                    p.produce("bench", value)
                    break
                except BufferError:
                    p.poll(0.01)
        assert p.flush(120) == 0
        elapsed = time.perf_counter() - started
        calls = server.authorizer_hook_calls
    rate = records / elapsed
    print(f"{authorizer:12s} {rate:12,.0f} records/s  (hook crossings: {calls})")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"allow-all": [], "python-hook": []}
    for _ in range(args.repeats):
        for name in results:
            results[name].append(run_once(name, args.records))
    base = statistics.median(results["allow-all"])
    hook = statistics.median(results["python-hook"])
    print(f"median allow-all {base:,.0f}/s, python hook {hook:,.0f}/s: {100 * hook / base:.1f}%")


if __name__ == "__main__":
    main()
