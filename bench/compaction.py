#!/usr/bin/env python3
"""Log compaction on kop's local log: how far the log shrinks, how fast the cleaner is, and
what cleaning costs produce throughput.

    .venv/bin/python bench/compaction.py [--records 1000000] [--keys 10000] [--value-bytes 100]

Starts `kop serve` (file storage, in a temporary directory; `KOP_BIN` overrides the binary),
then, on one partition of 1 MiB segments:
1. baseline: fills a `cleanup.policy=delete` topic with --records keyed records, then
   produces --records more and measures records/s of those (no cleaning);
2. compacted: the same on a `compact` topic (10% of the keys deleted by tombstones at the end
   of each half): the cleaner works on the first half while the second is produced (throttled
   by --io-max-bytes-per-second): records/s of the second half, compared with the baseline;
3. waits for the cleaner to finish and reports the partition's bytes on disk before and after,
   against the live set (keys left x record size), plus the cleaner's own numbers from kop's
   "log cleaned" lines (bytes read and rewritten per second).
Prints JSON and writes it to bench/results/compaction-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from harness.net import free_port

HERE = Path(__file__).resolve().parent
VENV_KOP = HERE.parent / ".venv" / "bin" / "kop"


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.log"))


def produce(
    bootstrap: str, topic: str, records: int, keys: int, value: bytes, deletes: int
) -> float:
    """Records/s of producing `records` keyed records, then `deletes` tombstones."""
    p = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 65536, "acks": "all"}
    )
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topic, key=b"key-%08d" % (i % keys), value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
    for k in range(deletes):
        p.produce(topic, key=b"key-%08d" % k, value=None, partition=0)
    assert p.flush(120) == 0
    return (records + deletes) / (time.monotonic() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--io-max-bytes-per-second", type=int, default=33_554_432)
    args = ap.parse_args()
    kop = os.environ.get("KOP_BIN", str(VENV_KOP))
    data = Path(tempfile.mkdtemp(prefix="kop-compaction-bench-"))
    port = free_port()
    log_path = data / "kop.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                kop,
                "serve",
                "--listeners",
                f"PLAINTEXT://127.0.0.1:{port}",
                "--storage",
                f"file://{data / 'kop'}",
                "--log-cleaner-backoff-ms",
                "500",
                "--log-cleaner-io-max-bytes-per-second",
                str(args.io_max_bytes_per_second),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        common = {"segment.bytes": str(1 << 20)}
        topics = {
            "baseline": {**common, "cleanup.policy": "delete"},
            "compacted": {**common, "cleanup.policy": "compact", "delete.retention.ms": "1000"},
        }
        futures = admin.create_topics(
            [
                NewTopic(t, num_partitions=1, replication_factor=1, config=c)
                for t, c in topics.items()
            ]
        )
        for f in futures.values():
            f.result(30)
        value = b"v" * args.value_bytes
        deletes = args.keys // 10
        result: dict[str, Any] = {"args": vars(args)}
        for topic in ("baseline", "compacted"):
            produce(bootstrap, topic, args.records, args.keys, value, deletes)
            time.sleep(1)  # the cleaner's next pass starts on the first half
            result[f"{topic}_records_per_s"] = produce(
                bootstrap, topic, args.records, args.keys, value, deletes
            )
            result[f"{topic}_cleans_after_second_half"] = log_path.read_text().count("log cleaned")
        compacted_dir = data / "kop" / "logs" / "compacted-0"
        result["produce_ratio_during_cleaning"] = (
            result["compacted_records_per_s"] / result["baseline_records_per_s"]
        )
        result["bytes_written"] = dir_bytes(data / "kop" / "logs" / "baseline-0")
        # Let the cleaner finish: no clean under way (no .cleaned file) and the size stable
        # for 5 s.
        waited = time.monotonic()
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 5:
            size = dir_bytes(compacted_dir)
            if size != last or any(compacted_dir.glob("*.cleaned")):
                last, stable_since = size, time.monotonic()
            time.sleep(0.2)
        result["seconds_to_clean_after_producing"] = time.monotonic() - waited - 5
        result["bytes_after_cleaning"] = last
        # Size of one live record in the log: a batch of one record with this key and value.
        record_bytes = 61 + 1 + 1 + 1 + 1 + 12 + 2 + args.value_bytes + 1
        result["live_set_bytes_one_record_batches"] = (args.keys - deletes) * record_bytes
        cleans = []
        for line in log_path.read_text().splitlines():
            if "log cleaned" in line:
                cleans.append({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)})
        result["cleans"] = len(cleans)
        result["cleaner_errors"] = [
            line for line in log_path.read_text().splitlines() if "cleaning failed" in line
        ][:3]
        total_ms = sum(c.get("ms", 0) for c in cleans)
        total_before = sum(c.get("bytes_before", 0) for c in cleans)
        result["cleaner_bytes_rewritten_per_s"] = (
            total_before / (total_ms / 1000) if total_ms else None
        )
        result["cleaner_total_ms"] = total_ms
        result["clean_lines"] = cleans[-5:]
        print(json.dumps(result, indent=2))
        out = HERE / "results" / f"compaction-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
