"""A Pulsar writer that runs in its own OS process, for the fencing tests.

It takes an ``ExclusiveWithFencing`` (or another access mode) producer on TOPIC and appends
non-batched messages as fast as it is allowed, keeping up to ``--inflight`` sends outstanding
with ``send_async``. It never gives up on its own: after a failed send it keeps trying, like a
stale partition owner that has not noticed it lost the partition. Every event is one JSON line
on stdout (flushed at once), so the test can freeze it with SIGSTOP, resume it with SIGCONT and
afterwards see exactly which sends the broker acknowledged and when:

    {"ev": "ready", "t": ..., "acquire_s": ...}
    {"ev": "ack", "seq": 17, "id": [ledger, entry, partition, batch], "t": ...}
    {"ev": "err", "seq": 18, "result": "ProducerFenced", "t": ...}
    {"ev": "create_err", "error": "ProducerFenced", "message": "...", "t": ...}
    {"ev": "exit", "t": ...}

``t`` is wall-clock time (``time.time()``) so it can be compared with the test process.
Messages carry the properties ``kb.type=data``, ``kb.writer=NAME`` and ``kb.seq=N``.
SIGTERM makes it stop sending, wait briefly for outstanding callbacks and exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time

import pulsar

_out_lock = threading.Lock()


def emit(**event: object) -> None:
    event.setdefault("t", time.time())
    line = json.dumps(event, separators=(",", ":"))
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def msg_id_list(msg_id: pulsar.MessageId) -> list[int]:
    return [msg_id.ledger_id(), msg_id.entry_id(), msg_id.partition(), msg_id.batch_index()]


def acquire(client: pulsar.Client, args: argparse.Namespace, mode: object) -> pulsar.Producer:
    def create(access_mode: object) -> pulsar.Producer:
        return client.create_producer(
            args.topic,
            access_mode=access_mode,
            batching_enabled=False,
            send_timeout_millis=args.send_timeout_ms,
            max_pending_messages=max(args.inflight, 1),
            block_if_queue_full=True,
        )

    if not args.handoff:
        return create(mode)
    create(pulsar.ProducerAccessMode.ExclusiveWithFencing).close()
    return create(pulsar.ProducerAccessMode.Exclusive)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("topic")
    ap.add_argument("--name", default="A")
    ap.add_argument("--mode", default="ExclusiveWithFencing")
    ap.add_argument(
        "--handoff",
        action="store_true",
        help="acquire with ExclusiveWithFencing, close it, then hold the topic with Exclusive",
    )
    ap.add_argument("--inflight", type=int, default=8, help="max outstanding send_async calls")
    ap.add_argument("--retry-pause", type=float, default=0.02, help="pause after a failed send")
    ap.add_argument("--send-timeout-ms", type=int, default=10_000)
    ap.add_argument("--max-seconds", type=float, default=120.0, help="safety stop")
    ap.add_argument("--log-file", default="/dev/null", help="the C++ client's own log")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    # The C++ client logs to stdout by default; keep stdout for our JSON lines only.
    client = pulsar.Client(
        args.url,
        operation_timeout_seconds=10,
        logger=pulsar.FileLogger(pulsar.LoggerLevel.Info, args.log_file),
    )
    t0 = time.monotonic()
    try:
        producer = acquire(client, args, getattr(pulsar.ProducerAccessMode, args.mode))
    except Exception as exc:  # report every kind of refusal the same way
        emit(ev="create_err", error=type(exc).__name__, message=str(exc))
        client.close()
        return 3
    emit(ev="ready", acquire_s=time.monotonic() - t0, producer=producer.producer_name())

    slots = threading.Semaphore(max(args.inflight, 1))
    failed = threading.Event()

    def on_done(seq: int, res: pulsar.Result, msg_id: pulsar.MessageId) -> None:
        # Runs on a C++ client thread; it must never raise.
        try:
            if res == pulsar.Result.Ok:
                emit(ev="ack", seq=seq, id=msg_id_list(msg_id))
            else:
                emit(ev="err", seq=seq, result=str(res).rsplit(".", 1)[-1])
                failed.set()
        finally:
            slots.release()

    deadline = time.monotonic() + args.max_seconds
    seq = 0
    while not stop.is_set() and time.monotonic() < deadline:
        if not slots.acquire(timeout=0.2):
            continue
        seq += 1
        n = seq
        try:
            producer.send_async(
                f"{args.name}-{n}".encode(),
                lambda res, mid, n=n: on_done(n, res, mid),
                properties={"kb.type": "data", "kb.writer": args.name, "kb.seq": str(n)},
            )
        except Exception as exc:
            slots.release()
            emit(ev="err", seq=n, result=type(exc).__name__, message=str(exc))
            failed.set()
        if failed.is_set():
            # A stale owner keeps trying, but not in a hot loop.
            failed.clear()
            time.sleep(args.retry_pause)

    # Let outstanding callbacks report, then leave.
    for _ in range(max(args.inflight, 1)):
        slots.acquire(timeout=2.0)
    emit(ev="exit")
    with contextlib.suppress(Exception):
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
