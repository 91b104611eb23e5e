#!/usr/bin/env python3
"""kop's own cost of serving fetches: CPU seconds per GiB fetched.

    .venv/bin/python bench/fetch_cpu.py [--records 200000] [--value-bytes 1024] [--reads 3]

Starts `kop serve` on the local log (`KOP_BIN` overrides the binary), fills one partition with
--records records, then reads the partition from the start --reads times with a librdkafka
consumer and measures, per read, kop's CPU time (/proc). CPU time depends far less on how busy
the machine is than throughput does, so before/after comparisons of it hold on a shared box
(this one has no hardware counters for `perf stat -e instructions`). Prints JSON and writes
bench/results/fetch-cpu-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from harness.net import free_port, wait_port
from harness.procmon import cpu_seconds

HERE = Path(__file__).resolve().parent
VENV_KOP = HERE.parent / ".venv" / "bin" / "kop"
TOPIC = "fetch-cpu"


def fill(bootstrap: str, records: int, value: bytes) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 262144})
    for _ in range(records):
        while True:
            try:
                p.produce(TOPIC, value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0


def read_all(bootstrap: str, records: int) -> int:
    """Reads the partition from offset 0 to its end; returns the value bytes read."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fetch-cpu",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 1048576,
        }
    )
    c.assign([TopicPartition(TOPIC, 0, 0)])
    seen = nbytes = 0
    try:
        while seen < records:
            for m in c.consume(10000, 1.0):
                if m.error() is None:
                    seen += 1
                    nbytes += len(m.value() or b"")
    finally:
        c.close()
    return nbytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--value-bytes", type=int, default=1024)
    ap.add_argument("--reads", type=int, default=5)
    args = ap.parse_args()
    kop = os.environ.get("KOP_BIN", str(VENV_KOP))
    data = Path(tempfile.mkdtemp(prefix="kop-fetch-cpu-"))
    port = free_port()
    with open(data / "kop.log", "w") as log:
        proc = subprocess.Popen(
            [
                *(kop, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{port}"),
                *("--storage", f"file://{data / 'kop'}"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bootstrap = f"127.0.0.1:{port}"
    runs: list[dict[str, Any]] = []
    try:
        wait_port(port, 30)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        fill(bootstrap, args.records, b"v" * args.value_bytes)
        for _ in range(args.reads):
            cpu0 = cpu_seconds(proc.pid) or 0.0
            t0 = time.monotonic()
            nbytes = read_all(bootstrap, args.records)
            wall = time.monotonic() - t0
            cpu = (cpu_seconds(proc.pid) or 0.0) - cpu0
            gib = nbytes / 2**30
            runs.append(
                {
                    "seconds": round(wall, 3),
                    "kop_cpu_s_per_gib": round(cpu / gib, 3),
                }
            )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    result = {
        "records": args.records,
        "value_bytes": args.value_bytes,
        "runs": runs,
        "median_cpu_s_per_gib": median(r["kop_cpu_s_per_gib"] for r in runs),
    }
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"fetch-cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
