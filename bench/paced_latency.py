#!/usr/bin/env python3
"""Produce latency at a fixed rate, kop builds (and Kafka) side by side, runs interleaved.

    .venv/bin/python bench/paced_latency.py --systems kop=/tmp/old/kop,kop=/tmp/new/kop,kafka \\
        [--partitions 1] [--acks 1] [--rate 40000] [--seconds 15] [--rounds 3]

Starts every system once (``kop=PATH`` runs that kop build, as in bench/consume_shape.py), then
per round and system creates a new topic and runs bench/harness/rdload.py's paced produce
(librdkafka's send-to-ack latency, 1 KiB records by default) for --seconds: bench/run.py's
rdkafka-latency test, longer, on one system and topic shape at a time, so two builds compare
on the same load. Prints p50/p99/p99.9/max per system, median (min-max) over the rounds, and
writes bench/results/paced-latency-<time>.json (or --out). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from consume_shape import make
from harness import machine, systems
from harness.net import free_port, wait_port

HERE = Path(__file__).resolve().parent
METRICS = ("lat_p50_ms", "lat_p99_ms", "lat_p999_ms", "lat_max_ms")


def paced_produce(bootstrap: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "harness" / "rdload.py"), "produce"]
    cmd += ["--bootstrap", bootstrap, "--topic", topic, "--size", str(args.size)]
    cmd += ["--acks", args.acks, "--rate", str(args.rate), "--num", str(args.rate * args.seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 120)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--systems", default="kop,kafka")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", default="1", choices=["0", "1", "all"])
    ap.add_argument("--rate", type=int, default=40_000, help="records/s")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", help="result file (default bench/results/paced-latency-<time>.json)")
    args = ap.parse_args()
    names = args.systems.split(",")
    chosen = {n: make(n) for n in names}
    work = Path(tempfile.mkdtemp(prefix="paced-latency-"))
    running: dict[str, tuple[systems.Launch, str]] = {}
    runs: list[dict[str, Any]] = []
    try:
        for name, system in chosen.items():
            port = free_port()
            running[name] = (system.launch(work / str(len(running)), port), f"127.0.0.1:{port}")
            wait_port(port, 120)
        for i in range(args.rounds):
            for name, (_launch, bootstrap) in running.items():
                topic = f"paced-{i}-{len(runs)}"
                admin = AdminClient({"bootstrap.servers": bootstrap})
                admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
                time.sleep(1)
                settled = machine.settle(drop_caches=True)
                r = paced_produce(bootstrap, topic, args)
                r.update(system=name, round=i, loadavg1=os.getloadavg()[0], **settled)
                print(json.dumps(r), file=sys.stderr, flush=True)
                runs.append(r)
    finally:
        for name, (launch, _b) in running.items():
            chosen[name].stop(launch)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.partitions} partition(s), acks={args.acks}, {args.rate} x {args.size} B/s")
    print("| system | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name in names:
        rows = [r for r in runs if r["system"] == name and r.get("lat_p99_ms") is not None]
        cells = []
        for m in METRICS:
            v = [float(r[m]) for r in rows]
            cells.append(f"{median(v):.1f} ({min(v):.1f}-{max(v):.1f})" if v else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or HERE / "results" / f"paced-latency-{stamp}.json")
    out.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
