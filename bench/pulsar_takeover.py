"""Takeover of one Pulsar-stored partition: from the index checkpoint vs from the start.

    .venv/bin/python bench/pulsar_takeover.py --service-url pulsar://127.0.0.1:6650 \\
        --admin-url http://127.0.0.1:8080 [--batches 20000] [--repeats 3] [--tail-bytes N]

Appends N small batches through kop.pulsar.PulsarBackend (as Rust does), closes the partition
(which writes its checkpoint), then times open_partition on a fresh backend with the checkpoint
and with it deleted (a full scan), and prints messages read, seconds and index entries.
Works in a namespace of its own. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from kop.pulsar import PulsarBackend
from kop.pulsar.format import partition_topic, with_base_offset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.wire import record_batch

RECORD = bytes(range(64))


def make_batch(base_offset: int) -> bytes:
    data = record_batch([(b"k", RECORD)], base_timestamp=1_000 + base_offset)
    return with_base_offset(data, base_offset)


def fill(backend: PulsarBackend, batches: int, tail_bytes: int) -> None:
    epoch, _, next_offset, _, _ = backend.open_partition("t", 0, tail_bytes)
    template = make_batch(0)
    done = threading.Semaphore(0)
    errors: list[str] = []
    window = threading.BoundedSemaphore(2000)

    def on_done(error: str | None) -> None:
        if error:
            errors.append(error)
        window.release()
        done.release()

    for i in range(batches):
        offset = next_offset + i
        window.acquire()
        payload = offset.to_bytes(8, "big") + template[8:]
        backend.append("t", 0, epoch, offset, 1, 1_000 + offset, payload, on_done)
    for _ in range(batches):
        done.acquire()
    if errors:
        raise SystemExit(f"appends failed: {errors[:3]}")
    backend.close_partition("t", 0)  # writes the checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--service-url", required=True)
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--batches", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tail-bytes", type=int, default=1 << 20, help="kop's tail_cache_bytes")
    args = ap.parse_args()
    ns = f"kop-bench-{uuid.uuid4().hex[:8]}"
    req = urllib.request.Request(f"{args.admin_url}/admin/v2/namespaces/public/{ns}", method="PUT")
    urllib.request.urlopen(req, timeout=30).close()

    def backend() -> PulsarBackend:
        b = PulsarBackend(args.service_url, args.admin_url, "public", ns)
        b.start()
        return b

    writer = backend()
    writer.create_topic("t", 1)
    t0 = time.monotonic()
    fill(writer, args.batches, args.tail_bytes)
    print(f"appended {args.batches} batches in {time.monotonic() - t0:.1f} s")
    writer.close()
    name = partition_topic("public", ns, "t", 0)

    for mode in ("checkpoint", "full scan"):
        times, reads, entries = [], 0, 0
        for _ in range(args.repeats):
            b = backend()
            if mode == "full scan":
                b._checkpoint_store().save(name, None, wait=True)
            t0 = time.monotonic()
            b.open_partition("t", 0, args.tail_bytes)
            times.append(time.monotonic() - t0)
            p = b._partitions[("t", 0)]
            reads, entries = p.scan_reads, len(p.index)
            if mode == "full scan":
                b.close_partition("t", 0)  # leaves a checkpoint for the next round
            b.close()
        print(
            f"{mode:>10}: takeover median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}), "
            f"{reads} messages read, {entries} index entries"
        )


if __name__ == "__main__":
    main()
