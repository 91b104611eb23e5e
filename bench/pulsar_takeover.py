"""Takeover of one Pulsar-stored partition: from the index checkpoint vs from the start.

    .venv/bin/python bench/pulsar_takeover.py --service-url pulsar://127.0.0.1:6650 \\
        --admin-url http://127.0.0.1:8080 [--batches 20000] [--repeats 3] [--tail-bytes N] \\
        [--offload]

Appends N small batches through kop.pulsar.PulsarBackend (as Rust does), closes the partition
(which writes its checkpoint), then times open_partition on a fresh backend with the checkpoint
and with it deleted (a full scan), and prints messages read, seconds and index entries.
With --offload (a broker with an offloader, and ledgers small enough to have closed ones:
managedLedgerMaxEntriesPerLedger, managedLedgerMinLedgerRolloverTimeMinutes=0), it then
offloads every closed ledger of the partition (the admin API's `topics offload`) and times both
takeovers again. Works in a namespace of its own. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

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
    ap.add_argument("--offload", action="store_true", help="then offload, and time again")
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

    takeovers(backend, name, args.repeats, args.tail_bytes, "")
    if args.offload:
        t0 = time.monotonic()
        ledgers = offload(args.admin_url, name)
        print(f"offloaded {ledgers} ledgers in {time.monotonic() - t0:.1f} s")
        takeovers(backend, name, args.repeats, args.tail_bytes, ", offloaded")


def takeovers(backend: Any, name: str, repeats: int, tail_bytes: int, label: str) -> None:
    for mode in ("checkpoint", "full scan"):
        times, reads, entries = [], 0, 0
        for _ in range(repeats):
            b = backend()
            if mode == "full scan":
                b._checkpoint_store().save(name, None, wait=True)
            t0 = time.monotonic()
            b.open_partition("t", 0, tail_bytes)
            times.append(time.monotonic() - t0)
            p = b._partitions[("t", 0)]
            reads, entries = p.scan_reads, len(p.index)
            if mode == "full scan":
                b.close_partition("t", 0)  # leaves a checkpoint for the next round
            b.close()
        print(
            f"{mode + label:>21}: takeover median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}), "
            f"{reads} messages read, {entries} index entries"
        )


def offload(admin_url: str, name: str) -> int:
    """Offload every closed ledger of ``name``; how many are offloaded."""
    path = f"{admin_url}/admin/v2/{name.replace('://', '/')}"

    def call(method: str, suffix: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            path + suffix, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    current = call("GET", "/internal-info")["ledgers"][-1]["ledgerId"]
    call("PUT", "/offload", {"ledgerId": current, "entryId": 0})
    while call("GET", "/offload")["status"] == "RUNNING":
        time.sleep(0.2)
    return sum(1 for lg in call("GET", "/internal-info")["ledgers"] if lg.get("isOffloaded"))


if __name__ == "__main__":
    main()
