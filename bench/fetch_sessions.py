#!/usr/bin/env python3
"""Incremental fetch sessions (KIP-227): request bytes and server CPU per fetch of a consumer
of 1,000 partitions, with sessions and without, on kop and on Apache Kafka 4.4.

    .venv/bin/python bench/fetch_sessions.py [--partitions 1000] [--seconds 20]
        [--targets kop,kafka]

For each target and each setting of the session cache (`max_incremental_fetch_session_cache_slots`
/ `max.incremental.fetch.session.cache.slots` 1000, Kafka's default, and 0, sessions off):
starts the server (kop: `kop serve` on file storage, `KOP_BIN` overrides the binary; Kafka:
scripts/kafka.sh start), puts a counting TCP proxy in front of it (the server advertises the
proxy, so every client connection goes through it), creates a topic of --partitions
partitions, writes one record to each, then runs for --seconds: a kafka-python consumer
(it speaks KIP-227) assigned all partitions from their end, while a producer writes 100
records/s to random partitions. The proxy counts Fetch requests and their bytes each way; the
server's CPU seconds come from /proc (the kop process, or the Kafka JVM). Prints JSON and writes
it to bench/results/fetch-sessions-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from harness.net import free_port, wait_port  # noqa: E402
from harness.procmon import cpu_seconds  # noqa: E402

VENV_KOP = ROOT / ".venv" / "bin" / "kop"
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
FETCH = 1


class CountingProxy:
    """Forwards 127.0.0.1:listen to 127.0.0.1:upstream; counts Fetch requests and the bytes of
    Fetch requests and responses (Kafka frames: int32 size, then the request header's api key;
    responses come back in request order on a connection)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.fetches = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)

    def reset(self) -> None:
        self.fetches = self.request_bytes = self.response_bytes = 0

    async def _serve(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            cw.close()
            return
        keys: deque[int] = deque()

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, requests: bool) -> None:
            try:
                while True:
                    head = await r.readexactly(4)
                    (size,) = struct.unpack(">i", head)
                    body = await r.readexactly(size)
                    if requests:
                        key = struct.unpack(">h", body[:2])[0]
                        keys.append(key)
                        if key == FETCH:
                            self.fetches += 1
                            self.request_bytes += size + 4
                    elif keys and keys.popleft() == FETCH:
                        self.response_bytes += size + 4
                    w.write(head + body)
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pump(cr, sw, True), pump(sr, cw, False))


def run_one(target: str, slots: int, args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="kop-fetch-sessions-"))
    port = free_port()
    proxy = CountingProxy(port)
    advertised = f"PLAINTEXT://127.0.0.1:{proxy.port}"
    proc: subprocess.Popen[bytes] | None = None
    try:
        if target == "kop":
            kop = os.environ.get("KOP_BIN", str(VENV_KOP))
            with open(data / "kop.log", "w") as log:
                proc = subprocess.Popen(
                    [
                        kop,
                        "serve",
                        "--listeners",
                        f"PLAINTEXT://127.0.0.1:{port}",
                        "--advertised-listeners",
                        advertised,
                        "--storage",
                        f"file://{data / 'kop'}",
                        "--max-incremental-fetch-session-cache-slots",
                        str(slots),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            pid = proc.pid
        else:
            env = {
                **os.environ,
                "KAFKA_EXTRA_PROPS": (
                    f"advertised.listeners={advertised}\n"
                    f"max.incremental.fetch.session.cache.slots={slots}"
                ),
            }
            env["KAFKA_CONTROLLER_PORT"] = str(free_port())
            subprocess.run(
                [str(KAFKA_SH), "start", str(data / "kafka"), str(port)], check=True, env=env
            )
            pid = int((data / "kafka" / "kafka.pid").read_text())
        wait_port(port, 60)
        bootstrap = f"127.0.0.1:{proxy.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic = "many"
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for p in range(args.partitions):
            producer.produce(topic, value=b"x", partition=p)
        assert producer.flush(60) == 0
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in range(args.partitions)]
        consumer.assign(tps)
        consumer.seek_to_end()
        consumer.poll(timeout_ms=2000)  # the first (full) fetches
        proxy.reset()
        cpu0, t0 = cpu_seconds(pid) or 0.0, time.monotonic()
        received = 0
        next_produce = t0
        while time.monotonic() - t0 < args.seconds:
            now = time.monotonic()
            while next_produce <= now:
                producer.produce(topic, value=b"y", partition=random.randrange(args.partitions))
                next_produce += 0.01
            producer.poll(0)
            for records in consumer.poll(timeout_ms=100).values():
                received += len(records)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(pid) or 0.0) - cpu0
        consumer.close()
        producer.flush(10)
        del producer, admin  # librdkafka handles: closed before the server stops
        fetches = max(proxy.fetches, 1)
        return {
            "target": target,
            "session_cache_slots": slots,
            "seconds": round(elapsed, 1),
            "fetches": proxy.fetches,
            "records_received": received,
            "fetch_request_bytes_avg": round(proxy.request_bytes / fetches),
            "fetch_response_bytes_avg": round(proxy.response_bytes / fetches),
            "server_cpu_ms_per_fetch": round(1000 * cpu / fetches, 2),
            "server_cpu_s": round(cpu, 2),
            "server_cpu_ms_per_record": round(1000 * cpu / max(received, 1), 3),
        }
    finally:
        if proc is not None:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        if target == "kafka":
            subprocess.run([str(KAFKA_SH), "stop", str(data / "kafka")], check=False)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--targets", default="kop,kafka")
    args = ap.parse_args()
    runs = []
    for target in args.targets.split(","):
        for slots in (1000, 0):
            run = run_one(target, slots, args)
            print(json.dumps(run), flush=True)
            runs.append(run)
    result = {"args": vars(args), "runs": runs}
    out = HERE / "results" / f"fetch-sessions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
