"""librdkafka (confluent-kafka) load driver. Run as a separate process; prints one JSON object.

    python rdload.py produce --bootstrap H:P --topic T --num N --size S --acks 1|all [--rate R]
    python rdload.py consume --bootstrap H:P --topic T --num N --size S

produce: unthrottled when --rate is 0, else paced at R records/s. Latency is librdkafka's own
produce()-to-delivery-report time (``Message.latency()``), i.e. the same send-to-ack latency that
Kafka's ProducerPerformance reports; ``--warmup-s W`` leaves out the records sent in the first W
seconds. Client settings are librdkafka's defaults (linger 5 ms, no idempotence) plus ``acks``.

consume: reads N records from offset 0 of every partition with ``assign()`` (no consumer group,
so it also works against servers without a group coordinator). Rates are measured from the first
record received to the N-th. ``fetch.queue.backoff.ms`` is 10 instead of librdkafka's 1000: with
the default, a server faster than this Python loop fills the client's queue and the client then
idles up to 1 s before its next fetch, at random (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def produce(args: argparse.Namespace) -> dict[str, object]:
    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": "-1" if args.acks == "all" else args.acks,
        "client.id": "kop-bench-rdkafka",
    }
    for kv in args.prop:
        k, _, v = kv.partition("=")
        conf[k] = v
    p = Producer(conf)
    payload = os.urandom(args.size)
    lat: list[float] = []
    errors: list[str] = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            if len(errors) < 5:
                errors.append(str(err))
            errors_count[0] += 1
        else:
            delivered[0] += 1
            if time.perf_counter() - msg.latency() >= warm_until:
                lat.append(msg.latency())

    errors_count = [0]
    delivered = [0]
    n, rate = args.num, args.rate
    t0 = time.perf_counter()
    warm_until = t0 + args.warmup_s
    i = 0
    while i < n:
        if rate > 0:
            # paced: send everything that is due, then wait (serving delivery reports) ~1 ms;
            # no busy wait, the server shares the two cores with this process
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            if due <= i:
                p.poll(0.001)
                continue
        else:
            due = n
        while i < due:
            try:
                p.produce(args.topic, payload, on_delivery=on_delivery)
            except BufferError:
                p.poll(0.001)
                continue
            i += 1
            if i % 1000 == 0:
                p.poll(0)
    remaining = p.flush(args.timeout)
    elapsed = time.perf_counter() - t0
    lat.sort()
    ok = delivered[0]
    return {
        "records": ok,
        "failed": errors_count[0] + remaining,
        "errors": errors,
        "elapsed_s": round(elapsed, 4),
        "rec_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
        "mb_per_s": round(ok * args.size / elapsed / 1e6, 3) if elapsed > 0 else None,
        "lat_p50_ms": to_ms(percentile(lat, 50)),
        "lat_p99_ms": to_ms(percentile(lat, 99)),
        "lat_p999_ms": to_ms(percentile(lat, 99.9)),
        "lat_max_ms": to_ms(lat[-1] if lat else None),
    }


def to_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def consume(args: argparse.Namespace) -> dict[str, object]:
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": f"kop-bench-{os.getpid()}",  # required by the client, unused with assign()
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "client.id": "kop-bench-rdkafka",
        "fetch.queue.backoff.ms": 10,
    }
    for kv in args.prop:
        k, _, v = kv.partition("=")
        conf[k] = v
    c = Consumer(conf)
    md = c.list_topics(args.topic, timeout=10)
    tmd = md.topics.get(args.topic)
    if tmd is None or tmd.error is not None or not tmd.partitions:
        raise KafkaException(f"no metadata for topic {args.topic}: {tmd.error if tmd else None}")
    c.assign([TopicPartition(args.topic, p, 0) for p in sorted(tmd.partitions)])
    got = 0
    t_first = None
    t_start = time.perf_counter()
    last = t_start
    while got < args.num:
        # consume() blocks until it has num_messages or the timeout passes: never ask for more
        # than remain, and keep the timeout short so a partial batch does not add idle time
        msgs = c.consume(num_messages=min(10000, args.num - got), timeout=0.05)
        now = time.perf_counter()
        if not msgs:
            if now - last > args.timeout:
                break
            continue
        last = now
        if t_first is None:
            t_first = now
        # keep the per-record Python work minimal: this loop, not the server, is the limit
        # for small records
        bad = sum(1 for m in msgs if m.error() is not None)
        got += len(msgs) - bad
    t_end = last
    c.close()
    return consume_result(got, got * args.size, args.num, t_start, t_first, t_end)


def consume_result(
    got: int, nbytes: int, wanted: int, t_start: float, t_first: float | None, t_end: float
) -> dict[str, object]:
    """A consume run's JSON: the rate runs from the first record received to the last."""
    span = (t_end - t_first) if t_first is not None else 0.0
    return {
        "records": got,
        "bytes": nbytes,
        "elapsed_s": round(span, 4),
        "startup_s": round((t_first or t_start) - t_start, 4),
        "rec_per_s": round(got / span, 1) if span > 0 else None,
        "mb_per_s": round(nbytes / span / 1e6, 3) if span > 0 else None,
        "complete": got >= wanted,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["produce", "consume"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--num", type=int, required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--acks", default="1", choices=["0", "1", "all"])
    ap.add_argument("--rate", type=float, default=0.0, help="records/s; 0 = unthrottled")
    ap.add_argument("--warmup-s", type=float, default=0.0, help="latencies: skip the first seconds")
    ap.add_argument("--timeout", type=float, default=30.0, help="flush / idle timeout, seconds")
    ap.add_argument("--prop", action="append", default=[], help="extra client property k=v")
    args = ap.parse_args(argv)
    return emit(produce if args.mode == "produce" else consume, args)


def emit(run: Callable[[argparse.Namespace], dict[str, object]], args: argparse.Namespace) -> int:
    """Runs a load driver and prints its result as one JSON line (an error too, as data)."""
    try:
        out = run(args)
    except Exception as e:  # reported to the harness as data, not a crash
        out = {"error": f"{type(e).__name__}: {e}"}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    sys.exit(main())
