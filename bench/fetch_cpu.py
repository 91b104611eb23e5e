#!/usr/bin/env python3
"""kop's own cost of serving fetches and produces: CPU seconds per GiB fetched / produced.

    .venv/bin/python bench/fetch_cpu.py [--records 200000] [--value-bytes 1024] [--reads 3]
    .venv/bin/python bench/fetch_cpu.py --fills 5 --reads 0 --batch-bytes 16384   # produce only

Starts `kop serve` on the local log (`KOP_BIN` overrides the binary), fills one partition with
--records records --fills times (a librdkafka producer, acks=all, batches of --batch-bytes),
then reads the partition from the start --reads times with a librdkafka consumer, and measures
kop's CPU time per fill and per read (/proc: the summed schedstat of its threads, in ns, and
utime+stime in 10 ms ticks), and with `perf` on the PATH its system calls per fill. CPU time
depends far less on how busy the machine is than throughput does, so before/after comparisons
of it hold on a shared box (this one has no hardware counters for `perf stat -e instructions`).
Prints JSON and writes bench/results/fetch-cpu-<time>.json. Not a test.
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
from collections.abc import Callable
from functools import partial
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


def thread_cpu_ns(pid: int) -> int:
    """CPU time of the process's live threads so far (schedstat, ns): finer than the 10 ms
    ticks of /proc/PID/stat; kop's runtime threads live as long as the server."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


SYSCALLS = ("raw_syscalls:sys_enter", "syscalls:sys_enter_read", "syscalls:sys_enter_recvfrom")


def count_syscalls(pid: int) -> subprocess.Popen[str] | None:
    """`perf stat` attached to kop for the system calls it makes until stopped (None without
    perf or tracepoint access)."""
    if shutil.which("perf") is None:
        return None
    return subprocess.Popen(
        ["perf", "stat", "-x", ",", "-e", ",".join(SYSCALLS), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def syscalls_counted(perf: subprocess.Popen[str] | None) -> dict[str, int]:
    if perf is None:
        return {}
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=30)
    out = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[2] in SYSCALLS and parts[0].isdigit():
            out[parts[2].split(":")[1]] = int(parts[0])
    return out


def measured(pid: int, work: Callable[[], int]) -> dict[str, Any]:
    """Runs `work` (which returns the value bytes it moved) and reports its wall time and kop's
    CPU seconds per GiB moved: by the threads' schedstat (ns) and by 10 ms ticks."""
    cpu0, ns0, t0 = cpu_seconds(pid) or 0.0, thread_cpu_ns(pid), time.monotonic()
    gib = work() / 2**30
    wall = time.monotonic() - t0
    ns, cpu = thread_cpu_ns(pid) - ns0, (cpu_seconds(pid) or 0.0) - cpu0
    return {
        "seconds": round(wall, 3),
        "kop_cpu_s_per_gib": round(ns / 1e9 / gib, 4),
        "kop_cpu_s_per_gib_ticks": round(cpu / gib, 3),
    }


def fill(bootstrap: str, records: int, value: bytes, batch_bytes: int) -> int:
    """Produces `records` copies of `value`; returns the value bytes written."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": batch_bytes,
            "acks": "all",
        }
    )
    for _ in range(records):
        while True:
            try:
                p.produce(TOPIC, value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return records * len(value)


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
    ap.add_argument("--fills", type=int, default=1, help="produce runs of --records each")
    ap.add_argument("--batch-bytes", type=int, default=262144, help="the producer's batch.size")
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
    fills: list[dict[str, Any]] = []
    try:
        wait_port(port, 30)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        for _ in range(args.fills):
            perf = count_syscalls(proc.pid)
            time.sleep(0.2)  # perf attached
            value = b"v" * args.value_bytes
            cost = measured(
                proc.pid, partial(fill, bootstrap, args.records, value, args.batch_bytes)
            )
            fills.append({**cost, "syscalls": syscalls_counted(perf)})
        for _ in range(args.reads):
            runs.append(measured(proc.pid, partial(read_all, bootstrap, args.records * args.fills)))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    result = {
        "records": args.records,
        "value_bytes": args.value_bytes,
        "batch_bytes": args.batch_bytes,
        "fills": fills,
        "median_produce_cpu_s_per_gib": median(r["kop_cpu_s_per_gib"] for r in fills)
        if fills
        else None,
        "runs": runs,
        "median_cpu_s_per_gib": median(r["kop_cpu_s_per_gib"] for r in runs) if runs else None,
    }
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"fetch-cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
