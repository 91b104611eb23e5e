"""Smoke test of an installed kop wheel: `kop serve` answers a real Kafka client.

    python tests/wheel_smoke.py [PATH_TO_kop_EXECUTABLE]

Runs `kop serve` (memory storage, a free port read back from its log), produces and consumes a
few records with kafka-python, then stops kop with SIGTERM (Windows: terminate). Used by
cibuildwheel's test-command (pyproject.toml) and by tests/e2e/test_e2e_wheel.py. Exit 0 = ok.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

LISTENING = re.compile(r"kop listening on PLAINTEXT://127\.0\.0\.1:(\d+)")


def find_kop() -> str:
    scripts = Path(sys.executable).parent
    for name in ("kop", "kop.exe"):
        if (scripts / name).exists():
            return str(scripts / name)
    found = shutil.which("kop")
    if found is None:
        raise SystemExit("wheel_smoke: no kop executable next to this Python or on PATH")
    return found


def start(kop: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    proc = subprocess.Popen(
        [kop, "serve", "--storage", "memory://", "--listeners", "PLAINTEXT://127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    port: list[int] = []
    found = threading.Event()

    def read() -> None:  # keeps reading so kop never blocks on a full pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            match = LISTENING.search(line)
            if match and not port:
                port.append(int(match[1]))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(60) or not port:
        proc.kill()
        raise SystemExit("wheel_smoke: kop serve did not start:\n" + "".join(lines))
    return proc, port[0], lines


def round_trip(port: int) -> None:
    bootstrap = f"127.0.0.1:{port}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(10):
        producer.send("wheel-smoke", key=b"k", value=f"record {i}".encode(), partition=0)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000)
    tp = TopicPartition("wheel-smoke", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = []
    for message in consumer:  # ends after consumer_timeout_ms without records
        values.append(message.value)
        if len(values) == 10:
            break
    consumer.close()
    expected = [f"record {i}".encode() for i in range(10)]
    if values != expected:
        raise SystemExit(f"wheel_smoke: read back {values!r}, expected {expected!r}")


def main() -> int:
    kop = sys.argv[1] if len(sys.argv) > 1 else find_kop()
    started = time.monotonic()
    proc, port, lines = start(kop)
    try:
        round_trip(port)
    finally:
        if os.name == "nt":
            proc.terminate()
        else:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    if os.name != "nt" and code != 0:
        raise SystemExit(f"wheel_smoke: kop serve exited {code}:\n" + "".join(lines))
    took = time.monotonic() - started
    print(f"wheel_smoke: kop serve on port {port} stored and served 10 records ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
