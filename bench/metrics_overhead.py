"""Throughput with and without metrics (issue 18's goal: under 2% overhead).

    .venv/bin/python bench/metrics_overhead.py [--records 300000] [--repeats 5]
        [--baseline-path DIR]   # a `kop` package built without the metrics code (see below)

Each run is a fresh process with an embedded kop on loopback (memory storage, so the storage
costs least and the request path's share is largest): one librdkafka producer sends
`--records` 100-byte records (acks=all), then one consumer reads them back; records/s of each
are printed. Modes, interleaved in every repeat because the machine is shared and its load
drifts:

- `scraped`: `metrics_listener` set and a thread fetching `/metrics` every second (what
  Prometheus does, 15x more often than its default interval);
- `recorded`: no listener; the counters are still recorded (they always are);
- `baseline`: only with `--baseline-path`: the same code without the metrics commits, e.g.
  `git archive <base> | tar -x -C /tmp/base && cd /tmp/base && maturin build --release -o w`
  and the wheel's `kop/` unpacked into DIR (`DIR/kop/__init__.py`, `DIR/kop/_native.abi3.so`).

Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HOST = "127.0.0.1"


def child(mode: str, records: int) -> dict[str, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    import kop

    options: dict[str, str] = {}
    if mode == "scraped":
        options["metrics_listener"] = f"{HOST}:0"
    cfg = kop.Config(
        listeners=[f"PLAINTEXT://{HOST}:0"],
        storage="memory://",
        num_partitions=1,
        log_level="warn",
        **options,
    )
    stop = threading.Event()
    scrapes = [0]
    with kop.Server(cfg) as server:
        if mode == "scraped":
            host, port = server.metrics_address

            def scrape() -> None:
                while not stop.wait(1.0):
                    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
                        r.read()
                    scrapes[0] += 1

            threading.Thread(target=scrape, daemon=True).start()
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
        p.produce("bench", value)  # warm up: metadata, topic creation
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
        produce_rate = records / (time.perf_counter() - started)
        c = Consumer(
            {
                "bootstrap.servers": server.bootstrap_servers,
                "group.id": "bench",
                "enable.auto.commit": False,
            }
        )
        c.assign([TopicPartition("bench", 0, OFFSET_BEGINNING)])  # no group join in the timing
        seen = 0
        started = time.perf_counter()
        while seen < records + 1:
            for msg in c.consume(10000, 1.0):
                if msg.error() is None:
                    seen += 1
        consume_rate = seen / (time.perf_counter() - started)
        c.close()
        stop.set()
    return {"produce": produce_rate, "consume": consume_rate, "scrapes": scrapes[0]}


def run(mode: str, records: int, baseline_path: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if mode == "baseline":
        assert baseline_path
        env["PYTHONPATH"] = baseline_path + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--records", str(records)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{mode:9s} produce {result['produce']:10,.0f}/s  consume {result['consume']:10,.0f}/s"
        f"  (scrapes: {result['scrapes']:.0f})",
        flush=True,
    )
    return result


def summary(name: str, values: list[float], base: float) -> str:
    med = statistics.median(values)
    return (
        f"{name:9s} median {med:10,.0f}/s  min {min(values):10,.0f}  max {max(values):10,.0f}"
        f"  ({100 * (med - base) / base:+.1f}% vs first mode)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-path")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.records)))
        return
    modes = (["baseline"] if args.baseline_path else []) + ["recorded", "scraped"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(args.repeats):
        # Interleaved, and the order rotated, so drifting load hits every mode alike.
        for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
            results[mode].append(run(mode, args.records, args.baseline_path))
    for metric in ("produce", "consume"):
        print(f"\n{metric} records/s over {args.repeats} runs of {args.records:,} records:")
        base = statistics.median(r[metric] for r in results[modes[0]])
        for mode in modes:
            print(summary(mode, [r[metric] for r in results[mode]], base))


if __name__ == "__main__":
    main()
