"""Pulsar's Python client (pulsar-client) as a load driver. Run as a separate process; prints one
JSON object, like rdload.py.

    python pulsarload.py produce --service-url pulsar://H:P --topic T --num N --size S
    python pulsarload.py consume --service-url pulsar://H:P --topic T --num N --size S

produce: ``send_async`` with the client's default batching (on; 10 ms, 1,000 messages, 128 KiB)
and its default ``max_pending_messages`` (1,000, blocking when full), unthrottled. The rate runs
from the first send to the last receipt; latency is send_async() to the receipt callback. A
receipt means the broker has the entry on the bookie journal (the standalone's
``journalSyncData`` default: fsync), the counterpart of Kafka's acks=all.

consume: an exclusive subscription from the earliest message, ``receive()`` until N messages,
no acknowledgements (like the Kafka consumers here, which read with ``assign()`` and commit
nothing). The rate runs from the first message to the N-th.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import pulsar
from rdload import consume_result, emit, percentile, to_ms  # the sibling driver


def produce(args: argparse.Namespace) -> dict[str, object]:
    client = pulsar.Client(args.service_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    producer = client.create_producer(args.topic, batching_enabled=True, block_if_queue_full=True)
    payload = os.urandom(args.size)
    lat: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    acked = [0]
    t_last = [0.0]
    lock = threading.Lock()

    def callback(res, _msg_id, sent: float) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        with lock:
            if res != pulsar.Result.Ok:
                if len(errors) < 5:
                    errors.append(str(res))
            else:
                lat.append(now - sent)
            acked[0] += 1
            t_last[0] = now
            if acked[0] >= args.num:
                done.set()

    t0 = time.perf_counter()
    for _ in range(args.num):
        sent = time.perf_counter()
        producer.send_async(payload, lambda r, m, s=sent: callback(r, m, s))
    producer.flush()
    done.wait(args.timeout)
    elapsed = t_last[0] - t0
    client.close()
    lat.sort()
    ok = len(lat)
    return {
        "records": ok,
        "failed": args.num - ok,
        "errors": errors,
        "elapsed_s": round(elapsed, 4),
        "rec_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
        "mb_per_s": round(ok * args.size / elapsed / 1e6, 3) if elapsed > 0 else None,
        "lat_p50_ms": to_ms(percentile(lat, 50)),
        "lat_p99_ms": to_ms(percentile(lat, 99)),
        "lat_max_ms": to_ms(lat[-1] if lat else None),
    }


def consume(args: argparse.Namespace) -> dict[str, object]:
    client = pulsar.Client(args.service_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    consumer = client.subscribe(
        args.topic,
        f"pyload-{os.getpid()}",
        consumer_type=pulsar.ConsumerType.Exclusive,
        initial_position=pulsar.InitialPosition.Earliest,
    )
    got = 0
    nbytes = 0
    t_start = time.perf_counter()
    t_first: float | None = None
    t_last = t_start
    while got < args.num:
        try:
            msg = consumer.receive(timeout_millis=int(args.timeout * 1000))
        except pulsar.Timeout:
            break
        t_last = time.perf_counter()
        if t_first is None:
            t_first = t_last
        got += 1
        nbytes += len(msg.data())
    client.close()
    return consume_result(got, nbytes, args.num, t_start, t_first, t_last)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["produce", "consume"])
    ap.add_argument("--service-url", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--num", type=int, required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=60.0, help="receipt / idle timeout, seconds")
    args = ap.parse_args(argv)
    return emit(produce if args.mode == "produce" else consume, args)


if __name__ == "__main__":
    sys.exit(main())
