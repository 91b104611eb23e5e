"""Opening a Pulsar-format partition (written by Pulsar producers) on a new kop instance: through
the broker entry index vs a full scan (docs/pulsar-native-records.md, "Offsets").

    .venv/bin/python bench/pulsar_native_open.py --service-url pulsar://127.0.0.1:6650 \\
        --admin-url http://127.0.0.1:8080 [--messages 100000] [--repeats 3]

Writes N small messages to a one-partition Pulsar topic with the Python client's batching
producer (event time = a fixed base + the message's number), then, on a fresh
kop.pulsar.PulsarBackend each time (as a new kop instance), times open_partition plus the first
read (the first Fetch from offset 0), then reads at the middle and last offsets and a time
look-up, and prints seconds and messages read. Then the same with the broker index hidden from
the partition ("full scan": what kop did before, and does for topics without the index).
Needs a broker with the AppendIndexMetadataInterceptor (kop's test standalone has it). Works in
a namespace of its own. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request
import uuid

import pulsar

from kop.pulsar import PulsarBackend
from kop.pulsar.format import partition_topic
from kop.pulsar.native import NativePartition

BASE_TS = 1_700_000_000_000


def write(service_url: str, topic: str, messages: int) -> None:
    client = pulsar.Client(service_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        producer = client.create_producer(
            topic,
            batching_enabled=True,
            batching_max_publish_delay_ms=10,
            block_if_queue_full=True,  # else send_async drops messages beyond the queue
        )
        for i in range(messages):
            producer.send_async(b"v%d" % i, None, event_timestamp=BASE_TS + i)
        producer.flush()
        producer.close()
    finally:
        client.close()


def ms(times: list[float]) -> str:
    return (
        f"{statistics.median(times) * 1000:.0f} ms "
        f"({min(times) * 1000:.0f}-{max(times) * 1000:.0f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--service-url", required=True)
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fetch-bytes", type=int, default=1 << 20, help="the first read's max bytes")
    args = ap.parse_args()
    ns = f"kop-bench-{uuid.uuid4().hex[:8]}"
    req = urllib.request.Request(f"{args.admin_url}/admin/v2/namespaces/public/{ns}", method="PUT")
    urllib.request.urlopen(req, timeout=30).close()

    def backend() -> PulsarBackend:
        b = PulsarBackend(args.service_url, args.admin_url, "public", ns)
        b.start()
        return b

    setup = backend()
    setup.create_topic("t", 1)
    setup.close()
    t0 = time.monotonic()
    n = args.messages
    write(args.service_url, partition_topic("public", ns, "t", 0), n)
    print(f"wrote {n} messages (Pulsar batching) in {time.monotonic() - t0:.1f} s")

    indexed_open = NativePartition._open_indexed
    for mode in ("broker index", "full scan"):
        if mode == "full scan":
            NativePartition._open_indexed = lambda self, broker: False  # type: ignore[method-assign]
        opens, firsts, others, reads = [], [], [], 0
        for _ in range(args.repeats):
            b = backend()
            try:
                t0 = time.monotonic()
                _, start, end, _, _ = b.open_partition("t", 0, 1 << 20)
                opens.append(time.monotonic() - t0)
                reads = b._partitions[("t", 0)].scan_reads
                got = b.read("t", 0, 0, args.fetch_bytes, end)
                firsts.append(time.monotonic() - t0)
                assert (start, end) == (0, n) and got, (start, end, len(got))
                t0 = time.monotonic()
                for offset in (n // 2, n - 1):
                    assert b.read("t", 0, offset, 1, end)
                assert b.batch_at_timestamp("t", 0, BASE_TS + n // 3) is not None
                others.append(time.monotonic() - t0)
            finally:
                b.close()
        NativePartition._open_indexed = indexed_open  # type: ignore[method-assign]
        print(
            f"{mode:>12}: open median {ms(opens)} ({reads} messages read), open + first read "
            f"({args.fetch_bytes} bytes) {ms(firsts)}; then middle + last + by time {ms(others)}"
        )


if __name__ == "__main__":
    main()
