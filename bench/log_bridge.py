"""Produce throughput of `kop serve` while Rust logs a line per request (issue 18's log check).

    .venv/bin/python bench/log_bridge.py [--records 300000] [--repeats 3]

Rust log records travel through a bounded queue to one Python thread that hands them to
`logging` (kop.logs). This measures what that costs the Kafka path: one librdkafka producer
sends 100-byte records (acks=all) to `kop serve` (memory storage, stderr to a file) while a
second producer sends records too large for topic `spam` (max.message.bytes=100), so every one
of its requests is refused and logged at debug ("produce rejected"). Cases:

- quiet:       --log-level info, no spam producer (the baseline)
- spam-info:   --log-level info, spam producer running (records filtered out in Rust)
- spam-debug:  --log-level debug, spam producer running (every rejection becomes a line)

Prints records/s per case, the log lines written and the records dropped (the queue overflowed).
The spam producer costs CPU of its own, so the logging cost is spam-debug against spam-info.
Cases are interleaved per repeat to spread a shared machine's noise. Not a test: nothing here
asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HOST = "127.0.0.1"
KOP = str(Path(sys.executable).parent / "kop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"kop did not listen on {port}")


class Spammer(threading.Thread):
    """Sends 200-byte records to a topic that accepts 100 bytes, one request per record."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.refused = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 0,
                "batch.num.messages": 1,  # one record, so one refusal and one line, per request
                "acks": 1,
                "retries": 0,
            }
        )

    def _done(self, err: object, msg: object) -> None:
        if err is not None:
            self.refused += 1

    def run(self) -> None:
        value = b"s" * 200
        while not self.stop.is_set():
            with contextlib.suppress(BufferError):  # full: poll below makes room
                self.producer.produce("spam", value, partition=0, on_delivery=self._done)
            self.producer.poll(0.0005)
        self.producer.flush(10)


def run_once(case: str, records: int) -> tuple[float, int, int, int]:
    port = free_port()
    level = "debug" if case == "spam-debug" else "info"
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "kop.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    KOP,
                    "serve",
                    "--listeners",
                    f"PLAINTEXT://{HOST}:{port}",
                    "--storage",
                    "memory://",
                    "--num-partitions",
                    "1",
                    "--log-level",
                    level,
                ],
                stderr=log,
            )
            try:
                wait_port(port)
                bootstrap = f"{HOST}:{port}"
                admin = AdminClient({"bootstrap.servers": bootstrap})
                futures = admin.create_topics(
                    [
                        NewTopic("spam", 1, config={"max.message.bytes": "100"}),
                        NewTopic("bench", 1),
                    ]
                )
                for f in futures.values():
                    f.result(30)
                spammer = Spammer(bootstrap) if case != "quiet" else None
                if spammer:
                    spammer.start()
                    time.sleep(1.0)  # the spam is flowing before the measurement starts
                rate = produce(bootstrap, records)
                refused = 0
                if spammer:
                    spammer.stop.set()
                    spammer.join(30)
                    refused = spammer.refused
            finally:
                proc.terminate()
                proc.wait(30)
        text = log_path.read_text(errors="replace")
    lines = text.count("produce rejected")
    dropped = sum(int(n) for n in re.findall(r"(\d+) Rust log records dropped", text))
    return rate, refused, lines, dropped


def produce(bootstrap: str, records: int) -> float:
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1000000,
        }
    )
    value = b"x" * 100
    p.produce("bench", value)
    p.flush(30)
    started = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce("bench", value)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    return records / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for case in ("quiet", "spam-info", "spam-debug"):
            rate, refused, lines, dropped = run_once(case, args.records)
            results.setdefault(case, []).append(rate)
            print(
                f"repeat {repeat + 1} {case:>10}: {rate:>9,.0f} records/s; spam refused "
                f"{refused:,}, 'produce rejected' lines {lines:,}, dropped {dropped:,}",
                flush=True,
            )
    base = statistics.median(results["quiet"])
    for case, rates in results.items():
        med = statistics.median(rates)
        print(f"{case:>10}: median {med:,.0f} records/s ({(med / base - 1) * 100:+.1f}% vs quiet)")
    info, debug = (statistics.median(results[c]) for c in ("spam-info", "spam-debug"))
    print(f"logging every refusal (spam-debug vs spam-info): {(debug / info - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
