"""librdkafka (confluent-kafka) transactional produce driver. Run as a separate process; prints
one JSON object, the same fields as TxnPerf.java:

    python txnload.py --bootstrap H:P --topic T --partitions P --num N --size S --per-txn B

N records of S random bytes in transactions of B records, record i to partition i % P; each
transaction is begin, produce B records, commit (which flushes them). librdkafka's defaults
otherwise (linger 5 ms; a transactional producer is idempotent with acks=all).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Producer


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def produce(args: argparse.Namespace) -> dict[str, object]:
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.txn_id or f"bench-txn-{os.getpid()}",
            "client.id": "kop-bench-rdkafka-txn",
        }
    )
    p.init_transactions(60)
    payload = os.urandom(args.size)
    txns = (args.num + args.per_txn - 1) // args.per_txn
    commit_s: list[float] = []
    txn_s: list[float] = []
    sent = 0
    t0 = time.perf_counter()
    for _ in range(txns):
        begin = time.perf_counter()
        p.begin_transaction()
        for _ in range(min(args.per_txn, args.num - sent)):
            while True:
                try:
                    p.produce(args.topic, payload, partition=sent % args.partitions)
                    break
                except BufferError:
                    p.poll(0.001)
            sent += 1
        commit = time.perf_counter()
        p.commit_transaction(60)
        end = time.perf_counter()
        commit_s.append(end - commit)
        txn_s.append(end - begin)
    elapsed = time.perf_counter() - t0
    commit_s.sort()
    txn_s.sort()
    return {
        "records": sent,
        "transactions": txns,
        "elapsed_s": round(elapsed, 4),
        "rec_per_s": round(sent / elapsed, 1),
        "mb_per_s": round(sent * args.size / elapsed / 1e6, 3),
        "txn_per_s": round(txns / elapsed, 1),
        "commit_p50_ms": _ms(percentile(commit_s, 50)),
        "commit_p99_ms": _ms(percentile(commit_s, 99)),
        "txn_p50_ms": _ms(percentile(txn_s, 50)),
        "txn_p99_ms": _ms(percentile(txn_s, 99)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--num", type=int, required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--txn-id", default="")
    args = ap.parse_args(argv)
    try:
        out = produce(args)
    except Exception as e:  # reported to the harness as data, not a crash
        out = {"error": f"{type(e).__name__}: {e}"}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    sys.exit(main())
