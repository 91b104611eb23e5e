"""The cost of the ``pulsar`` entry format (one Pulsar message per record) against ``kafka`` (one
message per batch), measured at kop's storage seam.

    .venv/bin/python bench/pulsar_entry_format.py --service-url pulsar://127.0.0.1:6650 \\
        --admin-url http://127.0.0.1:8080 [--batches 2000] [--records 10] [--value-bytes 100]

For each format, in a namespace of its own: appends N batches of R records through
kop.pulsar.PulsarBackend (as Rust does, up to 2000 in flight), timing until every receipt is in;
then reads the partition back from offset 0 on a fresh backend (a cold read: what a consumer
behind the tail cache costs). Prints records/s of both. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

from kop.pulsar import PulsarBackend
from kop.pulsar.format import with_base_offset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.wire import record_batch


def append_all(backend: PulsarBackend, batches: int, records: int, value: bytes) -> float:
    backend.create_topic("t", 1)
    epoch, _, next_offset, _, _ = backend.open_partition("t", 0, 1 << 20)
    template = record_batch(
        [(f"key-{i}".encode(), value) for i in range(records)], base_timestamp=1_700_000_000_000
    )
    done = threading.Semaphore(0)
    window = threading.BoundedSemaphore(2000)
    errors: list[str] = []

    def on_done(error: str | None, too_large: bool = False) -> None:
        if error:
            errors.append(error)
        window.release()
        done.release()

    start = time.monotonic()
    for i in range(batches):
        offset = next_offset + i * records
        window.acquire()
        backend.append(
            "t",
            0,
            epoch,
            offset,
            records,
            1_700_000_000_000,
            with_base_offset(template, offset),
            on_done,
        )
    for _ in range(batches):
        done.acquire()
    seconds = time.monotonic() - start
    if errors:
        raise SystemExit(f"appends failed: {errors[:3]}")
    backend.close_partition("t", 0)
    return seconds


def read_all(backend: PulsarBackend, end: int) -> float:
    start = time.monotonic()
    offset = 0
    while offset < end:
        got = backend.read("t", 0, offset, 1 << 20, end)
        assert got, f"nothing read at {offset}"
        last = got[-1]
        offset = int.from_bytes(last[:8], "big") + int.from_bytes(last[23:27], "big") + 1
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--service-url", default="pulsar://127.0.0.1:6650")
    ap.add_argument("--admin-url", default="http://127.0.0.1:8080")
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--value-bytes", type=int, default=100)
    args = ap.parse_args()
    value = bytes(args.value_bytes)
    total = args.batches * args.records
    for entry_format in ("kafka", "pulsar"):
        ns = f"bench-format-{uuid.uuid4().hex[:8]}"

        def backend(ns: str = ns, entry_format: str = entry_format) -> PulsarBackend:
            b = PulsarBackend(
                args.service_url, args.admin_url, namespace=ns, entry_format=entry_format
            )
            b.start()
            return b

        writer = backend()
        try:
            write_s = append_all(writer, args.batches, args.records, value)
        finally:
            writer.close()
        reader = backend()
        try:
            reader.open_partition("t", 0, 0)  # the takeover scan, not timed
            read_s = read_all(reader, total)
        finally:
            reader.close()
        print(
            f"{entry_format:6} {args.batches} batches x {args.records} records of "
            f"{args.value_bytes} B: append {total / write_s:,.0f} records/s ({write_s:.2f} s), "
            f"cold read {total / read_s:,.0f} records/s ({read_s:.2f} s)"
        )


if __name__ == "__main__":
    main()
