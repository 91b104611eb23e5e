"""Throughput with and without metrics (issue 18's goal: under 2% overhead).

    .venv/bin/python bench/metrics_overhead.py [--records 2000000] [--consume 500000] [--repeats 7]
        [--baseline-path DIR]   # a `kop` package built without the metrics code (see below)

Each run is a fresh process with an embedded kop on loopback (memory storage, so the storage
costs least and the request path's share is largest): one librdkafka producer sends
`--records` 100-byte records (acks=all), then one consumer reads the first `--consume` back
(assigned, no group). Printed: records/s of each, and the CPU time kop's I/O threads
(`kop-io`, where every request is handled) spent per record, read from
`/proc/self/task/*/schedstat` — much less sensitive to the machine's load than records/s.
Modes, interleaved in every repeat because the machine is shared and its load drifts:

- `scraped`: `metrics_listener` set and a thread fetching `/metrics` every second (what
  Prometheus does, 15x more often than its default interval);
- `recorded`: no listener; the counters are still recorded (they always are);
- `baseline`: only with `--baseline-path`: the same code without the metrics commits, e.g.
  `git archive <base> | tar -x -C /tmp/base && cd /tmp/base && maturin build --release -o w`
  and the wheel's `kop/` unpacked into DIR (`DIR/kop/__init__.py`, `DIR/kop/_native.abi3.so`).

Besides each mode's median and range, it prints `scraped / recorded` per repeat (the two ran
back to back, so the same drift of the load hits both) with its median, quartiles and range:
the overhead of being scraped, with the noise of the comparison. `--json-out FILE` keeps every
run's numbers. In `scraped` runs, after the load, 50 scrapes back to back measure the kop-io
CPU one scrape costs (with the benchmark's topic and group in place), next to the kop-io CPU a
second of producing takes.

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
SCRAPES_TIMED = 50


def server_cpu_ns() -> int:
    """CPU time so far of this process's tokio worker threads (kop's request path), in ns."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if not f.read().startswith("kop-io"):
                    continue
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue
    return total


def child(mode: str, records: int, to_consume: int) -> dict[str, float]:
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
        cpu = server_cpu_ns()
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
        produce_cpu = (server_cpu_ns() - cpu) / records
        c = Consumer(
            {
                "bootstrap.servers": server.bootstrap_servers,
                "group.id": "bench",
                "enable.auto.commit": False,
            }
        )
        c.assign([TopicPartition("bench", 0, OFFSET_BEGINNING)])  # no group join in the timing
        seen = 0
        cpu = server_cpu_ns()
        started = time.perf_counter()
        while seen < to_consume:
            for msg in c.consume(10000, 1.0):
                if msg.error() is None:
                    seen += 1
        consume_rate = seen / (time.perf_counter() - started)
        consume_cpu = (server_cpu_ns() - cpu) / seen
        c.close()
        stop.set()
        scrape_cpu, scrape_bytes = 0.0, 0
        if mode == "scraped":
            # What one scrape costs kop's threads, measured alone (no load): little noise.
            time.sleep(1.5)  # the scrape thread's last wait ends
            cpu = server_cpu_ns()
            for _ in range(SCRAPES_TIMED):
                with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
                    scrape_bytes = len(r.read())
            scrape_cpu = (server_cpu_ns() - cpu) / SCRAPES_TIMED
    return {
        "produce": produce_rate,
        "consume": consume_rate,
        "produce_cpu_ns": produce_cpu,
        "consume_cpu_ns": consume_cpu,
        "scrapes": scrapes[0],
        "scrape_cpu_ns": scrape_cpu,
        "scrape_bytes": scrape_bytes,
    }


def run(mode: str, records: int, to_consume: int, baseline_path: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if mode == "baseline":
        assert baseline_path
        env["PYTHONPATH"] = baseline_path + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, __file__, "--child", mode, "--records", str(records)]
    command += ["--consume", str(to_consume)]
    out = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{mode:9s} produce {result['produce']:10,.0f}/s  consume {result['consume']:10,.0f}/s"
        f"  server CPU/record produce {result['produce_cpu_ns']:6.0f} ns"
        f" consume {result['consume_cpu_ns']:6.0f} ns  (scrapes: {result['scrapes']:.0f})",
        flush=True,
    )
    return result


def summary(name: str, values: list[float], base: float, unit: str) -> str:
    med = statistics.median(values)
    return (
        f"{name:9s} median {med:10,.0f}{unit}  min {min(values):10,.0f}  max {max(values):10,.0f}"
        f"  ({100 * (med - base) / base:+.1f}% vs first mode)"
    )


def paired_ratios(
    metric: str, scraped: list[dict[str, float]], recorded: list[dict[str, float]]
) -> str:
    """scraped / recorded per repeat: the two ran back to back, so they saw about the same
    load; the spread of these ratios is what the machine's noise does to the comparison."""
    ratios = sorted(s[metric] / r[metric] for s, r in zip(scraped, recorded, strict=True))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else ratios * 3
    return (
        f"scraped/recorded per repeat: median {statistics.median(ratios):.3f}"
        f"  quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}"
        f"  min {ratios[0]:.3f}  max {ratios[-1]:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--consume", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline-path")
    ap.add_argument("--json-out", help="write every run's numbers here")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.records, min(args.consume, args.records))))
        return
    modes = (["baseline"] if args.baseline_path else []) + ["recorded", "scraped"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(args.repeats):
        # Interleaved, and the order rotated, so drifting load hits every mode alike.
        for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
            results[mode].append(run(mode, args.records, args.consume, args.baseline_path))
    for metric, unit in [
        ("produce", "/s"),
        ("consume", "/s"),
        ("produce_cpu_ns", "ns"),
        ("consume_cpu_ns", "ns"),
    ]:
        n = args.consume if metric.startswith("consume") else args.records
        what = "records/s" if unit == "/s" else "kop-io CPU ns per record"
        print(f"\n{metric}: {what} over {args.repeats} runs of {n:,} records:")
        base = statistics.median(r[metric] for r in results[modes[0]])
        for mode in modes:
            print(summary(mode, [r[metric] for r in results[mode]], base, unit))
        print(paired_ratios(metric, results["scraped"], results["recorded"]))
    scraped = results["scraped"]
    per_scrape = statistics.median(r["scrape_cpu_ns"] for r in scraped)
    # kop-io CPU per second at full speed: what one scrape a second adds to.
    busy = statistics.median(r["produce_cpu_ns"] * r["produce"] for r in scraped)
    print(
        f"\none scrape ({scraped[0]['scrape_bytes']:,.0f} bytes): kop-io CPU median"
        f" {per_scrape / 1e6:.3f} ms (min {min(r['scrape_cpu_ns'] for r in scraped) / 1e6:.3f},"
        f" max {max(r['scrape_cpu_ns'] for r in scraped) / 1e6:.3f}); kop-io CPU per second while"
        f" producing: {busy / 1e6:.1f} ms; one scrape a second adds"
        f" {100 * per_scrape / busy:.2f}% to it"
    )
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
