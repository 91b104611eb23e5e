#!/usr/bin/env python3
"""Offset-commit throughput: G groups committing concurrently, each as fast as it is answered.

    .venv/bin/python bench/offset_commits/run.py [--systems kop-pulsar,kop,kafka] \\
        [--groups 50] [--seconds 20] [--repeats 1] [--label before]

For each system (started and stopped by bench/harness, as bench/run.py does): creates one
topic of 8 partitions, then runs one thread per group, each with a librdkafka consumer of its
own group (`assign`-free, manual commits, no group membership: the simple commits of
`Consumer.commit(offsets=..., asynchronous=False)`). After one warm-up commit per group (the
coordinator lookup), every thread commits one partition's offset in a loop for `--seconds`;
the next commit starts when the previous one is answered. Prints commits/s and the commit
latency percentiles per system as JSON lines and a Markdown table, and writes them to
bench/results/offset-commits-<time>[-label]/summary.json. Not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))

from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: E402
from harness import machine, systems  # noqa: E402
from run import create_topic, free_port, start_and_probe  # noqa: E402

TOPIC = "bench-commits"
PARTITIONS = 8


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def quiet(*_a: object) -> None:
    pass


def commit(c: Consumer, partition: int, offset: int) -> list[TopicPartition]:
    """A synchronous commit of one offset; per-partition errors are in the result."""
    return c.commit(offsets=[TopicPartition(TOPIC, partition, offset)], asynchronous=False)  # type: ignore[no-any-return]


def drive(bootstrap: str, groups: int, seconds: float) -> dict[str, Any]:
    """One thread per group; each commits in a loop. Latencies in seconds."""
    consumers = [
        Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-commit-{i}",
                "enable.auto.commit": False,
                "client.id": f"bench-commit-{i}",
                "log_level": 0,
                "error_cb": quiet,
            }
        )
        for i in range(groups)
    ]
    latencies: list[list[float]] = [[] for _ in range(groups)]
    failed_count = [0]
    errors: list[str] = []
    stop_at = [0.0]

    def set_window() -> None:
        stop_at[0] = time.perf_counter() + seconds

    # The barrier's action runs before any thread is released: every worker sees the deadline.
    start = threading.Barrier(groups + 1, action=set_window)

    def worker(i: int) -> None:
        c = consumers[i]
        tp = i % PARTITIONS
        offset = 1
        # Warm-up: until the coordinator answers (Kafka creates __consumer_offsets first).
        deadline = time.monotonic() + 120
        while True:
            try:
                failed = [p for p in commit(c, tp, offset) if p.error is not None]
                why = str(failed[0].error) if failed else None
            except KafkaException as e:
                why = str(e)
            if why is None:
                break
            if time.monotonic() > deadline:
                errors.append(f"warm-up {i}: {why}")
                break
            time.sleep(0.2)
        start.wait()
        lat = latencies[i]
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            offset += 1
            try:
                failed = [p for p in commit(c, tp, offset) if p.error is not None]
            except KafkaException as e:
                failed_count[0] += 1
                if len(errors) < 10:
                    errors.append(str(e))
                continue
            if failed:
                failed_count[0] += 1
                if len(errors) < 10:
                    errors.append(str(failed[0].error))
                continue
            lat.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(groups)]
    for t in threads:
        t.start()
    start.wait()
    t_start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    for c in consumers:
        c.close()
    all_lat = sorted(x for per in latencies for x in per)
    per_group = [len(x) for x in latencies]

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {
        "groups": groups,
        "seconds": round(elapsed, 2),
        "commits": len(all_lat),
        "commits_per_s": round(len(all_lat) / elapsed, 1),
        "p50_ms": ms(percentile(all_lat, 50)),
        "p99_ms": ms(percentile(all_lat, 99)),
        "max_ms": ms(all_lat[-1] if all_lat else None),
        "slowest_group_commits": min(per_group) if per_group else 0,
        "failed_commits": failed_count[0],
        "errors": errors,
    }


def run_system(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sysobj = systems.ALL[name]()
    why = sysobj.unavailable()
    if why:
        return {"system": name, "error": why}
    data = work / name
    port = free_port()
    launch, _pid, info = start_and_probe(sysobj, data, port, args.start_timeout)
    try:
        if "error" in info:
            return {"system": name, "label": sysobj.label, "error": info["error"]}
        bootstrap = f"127.0.0.1:{port}"
        err = create_topic(bootstrap, TOPIC, PARTITIONS)
        if err:
            return {"system": name, "label": sysobj.label, "error": f"create topic: {err}"}
        runs = [drive(bootstrap, args.groups, args.seconds) for _ in range(args.repeats)]
        best = max(runs, key=lambda r: r["commits_per_s"])
        return {"system": name, "label": sysobj.label, **best, "runs": runs}
    finally:
        sysobj.stop(launch)
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default="kop-pulsar,kop,kafka")
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="runs per system; the best is reported")
    ap.add_argument("--start-timeout", type=float, default=240)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = BENCH / "results" / f"offset-commits-{stamp}{'-' + args.label if args.label else ''}"
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"machine": machine.describe(), "args": vars(args), "systems": []}
    with tempfile.TemporaryDirectory(prefix="kop-bench-commits-") as tmp:
        for name in args.systems.split(","):
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
            row = run_system(name, args, Path(tmp))
            row["loadavg_after"] = machine.loadavg()
            summary["systems"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"\n{args.groups} groups committing concurrently, {args.seconds:.0f} s"
        + (f" ({args.label})" if args.label else "")
    )
    print("| system | commits/s | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for r in summary["systems"]:
        if "error" in r:
            print(f"| {r.get('label', r['system'])} | error: {r['error'][:80]} | | | |")
        else:
            print(
                f"| {r['label']} | {r['commits_per_s']:,.0f} | {r['p50_ms']} | {r['p99_ms']} "
                f"| {r['max_ms']} |"
            )
    print(f"\nresults: {out.relative_to(BENCH.parent)}/summary.json  (pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
