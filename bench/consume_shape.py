#!/usr/bin/env python3
"""The shape of librdkafka's fetches against kop and Apache Kafka: how many fetches, how large,
how long each takes, and the server's CPU per record.

    .venv/bin/python bench/consume_shape.py [--systems kop,kafka] [--partitions 8] [--reads 5]

Starts each system (bench/harness/systems.py; ``KOP_BIN`` picks the kop build), fills a topic of
--partitions partitions as bench/run.py's 1 KiB workloads do (--records records with
librdkafka's batch.size 16384, as the Java producer's 16 KiB batches, then as many with
librdkafka's defaults), then reads the whole topic --reads times from offset 0 with the
librdkafka consumer loop of bench/harness/rdload.py (assign, consume(10000)), with
``statistics.interval.ms`` and ``debug=fetch`` on. Per read it reports the client's view of
the fetches (Fetch requests sent, bytes received, round-trip times from librdkafka's broker
statistics; bytes per response, partitions with data per response and bytes per partition
from the ``Enqueue`` debug lines between two ``Fetch`` lines) and the server's CPU time per
record (/proc: its threads' schedstat in ns, and its process tree's 10 ms ticks); ``--perf DIR``
also records the server with ``perf record`` during each read. Systems are interleaved read
by read. Writes bench/results/consume-shape-<time>.json (or --out).
``--systems kop=PATH,kop=PATH2`` reads two kop builds in turn; ``--no-shape`` reads without
the statistics and debug logging, as bench/run.py's rdkafka-consume does. Not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fetch_cpu import thread_cpu_ns
from harness import procmon, systems
from harness.net import free_port, wait_port

HERE = Path(__file__).resolve().parent
TOPIC = "consume-shape"
ENQUEUE = re.compile(r"Enqueue (\d+) message\(s\) \((\d+) bytes.* on \S+ \[(\d+)\] fetch queue")
PERF = ("perf", "record", "-q", "-e", "cpu-clock", "-F", "1999")
REQUEST = re.compile(r"Fetch \d+/\d+/\d+ toppar")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def fill(bootstrap: str, records: int, size: int) -> None:
    value = os.urandom(size)
    for conf in ({"batch.size": 16384}, {}):
        p = Producer({"bootstrap.servers": bootstrap, "acks": "1", **conf})
        for i in range(records):
            while True:
                try:
                    p.produce(TOPIC, value)
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        assert p.flush(120) == 0


def read(
    bootstrap: str, partitions: int, num: int, extra: dict[str, str], shape: bool
) -> dict[str, Any]:
    lines = Lines()
    logger = logging.getLogger(f"rd-{time.monotonic_ns()}")
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stats: list[dict[str, Any]] = []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"shape-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.queue.backoff.ms": 10,  # as rdload.py's consumer (bench/README.md)
            **(
                {
                    "statistics.interval.ms": 100,
                    "stats_cb": lambda s: stats.append(json.loads(s)),
                    "debug": "fetch",
                    "logger": logger,
                }
                if shape
                else {}
            ),
            **extra,
        }
    )
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    got = 0
    t_first = None
    t0 = last = time.perf_counter()
    while got < num and time.perf_counter() - last < 30:
        msgs = c.consume(num_messages=min(10000, num - got), timeout=0.05)
        if not msgs:
            continue
        last = time.perf_counter()
        t_first = t_first or last
        got += sum(1 for m in msgs if m.error() is None)
    # one more statistics callback, so the counters cover the whole read
    n = len(stats)
    t_wait = time.perf_counter()
    while shape and len(stats) == n and time.perf_counter() - t_wait < 2:
        c.poll(0.05)
    c.close()
    span = last - (t_first or t0)
    # the partitions' bytes each response brought, grouped by the requests logged between them
    responses: list[list[int]] = []
    for line in lines.lines:
        if REQUEST.search(line):
            responses.append([])
        elif (m := ENQUEUE.search(line)) and responses:
            responses[-1].append(int(m.group(2)))
    parts = [b for r in responses for b in r]
    per_response = [sum(r) for r in responses if r]
    if os.environ.get("SHAPE_DUMP"):
        Path(os.environ["SHAPE_DUMP"]).write_text("\n".join(lines.lines))
    brokers = (
        [b for b in stats[-1]["brokers"].values() if b.get("nodeid", -1) >= 0] if stats else []
    )
    rtts = [
        b["rtt"]["p50"] / 1000 for s in stats for b in s["brokers"].values() if b["rtt"]["cnt"] > 0
    ]
    return {
        "records": got,
        "seconds": round(span, 4),
        "rec_per_s": round(got / span) if span > 0 else None,
        "fetch_requests": sum(b["req"].get("Fetch", 0) for b in brokers),
        "rx_bytes": sum(b["rxbytes"] for b in brokers),
        "responses_with_data": len(per_response),
        "response_bytes_median": median(per_response) if per_response else None,
        "partitions_per_response_median": median(len(r) for r in responses if r) if parts else None,
        "partition_bytes_median": median(parts) if parts else None,
        "partition_bytes_max": max(parts) if parts else None,
        "rtt_p50_ms_windows": [round(r, 2) for r in rtts],
    }


def make(name: str) -> systems.System:
    """kafka, kop, or kop=PATH: a kop build of its own (the KOP_BIN of one system), so that two
    builds can be read in turn in one run."""
    if name == "kafka":
        return systems.Kafka()
    base, _, path = name.partition("=")
    if base != "kop":
        raise SystemExit(f"unknown system {name!r}")
    kop = systems.Kop()
    if path:
        kop.bin = path
        kop.label = f"{kop.version()} ({path})"
    return kop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--systems", default="kop,kafka")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--records", type=int, default=60_000, help="per fill (two fills)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--reads", type=int, default=5)
    ap.add_argument("--prop", action="append", default=[], help="consumer property k=v")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", help="result file (default bench/results/consume-shape-<time>.json)")
    ap.add_argument(
        "--perf",
        metavar="DIR",
        help="perf record (cpu-clock) the server during each read into DIR/<system>-<read>.data",
    )
    ap.add_argument(
        "--no-shape",
        action="store_true",
        help="no statistics or debug logging (throughput and CPU only, as bench/run.py reads)",
    )
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.prop)
    chosen = {n: make(n) for n in args.systems.split(",")}
    work = Path(tempfile.mkdtemp(prefix="consume-shape-"))
    running: dict[str, tuple[systems.Launch, str, int]] = {}
    result: dict[str, Any] = {"args": vars(args), "reads": []}
    try:
        for name, system in chosen.items():
            port = free_port()
            launch = system.launch(work / name, port)
            wait_port(port, 120)
            pid = None
            while pid is None:
                pid = system.server_pid(launch)
                time.sleep(0.1)
            bootstrap = f"127.0.0.1:{port}"
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, args.partitions, 1)])[TOPIC].result(60)
            time.sleep(1)
            fill(bootstrap, args.records, args.size)
            running[name] = (launch, bootstrap, pid)
            result[f"{name}_label"] = system.label
        for i in range(args.reads):
            for name, (_launch, bootstrap, pid) in running.items():
                perf = None
                if args.perf:
                    Path(args.perf).mkdir(parents=True, exist_ok=True)
                    data = Path(args.perf) / f"{name.split('=')[0]}-{i}.data"
                    perf = subprocess.Popen(
                        [*PERF, "-o", str(data), "-p", str(pid)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    time.sleep(0.5)  # attached
                cpu0, ns0 = procmon.tree_cpu_seconds([pid]), thread_cpu_ns(pid)
                r = read(bootstrap, args.partitions, 2 * args.records, extra, not args.no_shape)
                if perf is not None:
                    perf.send_signal(signal.SIGINT)
                    perf.wait(60)
                cpu, ns = procmon.tree_cpu_seconds([pid]) - cpu0, thread_cpu_ns(pid) - ns0
                r.update(
                    system=name,
                    read=i,
                    server_cpu_s=round(cpu, 3),
                    server_cpu_us_per_record=round(cpu / r["records"] * 1e6, 3),
                    # schedstat of the server's threads, ns: finer than the 10 ms ticks
                    server_thread_cpu_us_per_record=round(ns / 1e3 / r["records"], 3),
                    loadavg1=os.getloadavg()[0],
                )
                print(json.dumps(r), file=sys.stderr, flush=True)
                result["reads"].append(r)
    finally:
        for name, (launch, _b, _p) in running.items():
            chosen[name].stop(launch)
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for name in running:
        rows = [r for r in result["reads"] if r["system"] == name]
        summary[name] = {
            k: median([r[k] for r in rows if r[k] is not None] or [-1])
            for k in (
                "rec_per_s",
                "fetch_requests",
                "rx_bytes",
                "responses_with_data",
                "response_bytes_median",
                "partitions_per_response_median",
                "partition_bytes_median",
                "server_cpu_us_per_record",
                "server_thread_cpu_us_per_record",
            )
        }
    result["median"] = summary
    print(json.dumps(summary, indent=1))
    out = Path(
        args.out or HERE / "results" / f"consume-shape-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
