#!/usr/bin/env python3
"""Incremental fetch sessions (KIP-227): request bytes and server CPU per fetch of a consumer
of 1,000 partitions, with sessions and without, on kop and on Apache Kafka 4.4, for the
kafka-python, librdkafka (confluent-kafka) and Java (kafka-clients 4.4) consumers.

    .venv/bin/python bench/fetch_sessions.py [--partitions 1000] [--seconds 20]
        [--targets kop,kafka] [--clients kafka-python,librdkafka,java]

For each target and each setting of the session cache (`max_incremental_fetch_session_cache_slots`
/ `max.incremental.fetch.session.cache.slots` 1000, Kafka's default, and 0, sessions off):
starts the server (kop: `kop serve` on file storage, `KOP_BIN` overrides the binary; Kafka:
scripts/kafka.sh start), puts a counting TCP proxy in front of it (the server advertises the
proxy, so every client connection goes through it), creates a topic of --partitions
partitions, writes one record to each, then runs for --seconds: a kafka-python consumer
(it speaks KIP-227) assigned all partitions from their end, while a producer writes 100
records/s to random partitions. The Java consumer is Kafka's console consumer in a group of
its own (all partitions are its), started from the latest offsets. The proxy counts Fetch
requests, their bytes each way, and reads each request's session epoch: a fetch with epoch > 0
is incremental (the wire check that a client uses sessions). The server's CPU seconds come from
/proc (the kop process, or the Kafka JVM). Prints JSON and writes it to
bench/results/fetch-sessions-<time>.json. Not a test.
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

from confluent_kafka import OFFSET_END, Consumer, Producer
from confluent_kafka import TopicPartition as CkPartition
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
        self.incremental = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)

    def reset(self) -> None:
        self.fetches = self.incremental = self.request_bytes = self.response_bytes = 0

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
                            self.incremental += session_epoch(body) > 0
                    elif keys and keys.popleft() == FETCH:
                        self.response_bytes += size + 4
                    w.write(head + body)
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pump(cr, sw, True), pump(sr, cw, False))


def session_epoch(request: bytes) -> int:
    """The session epoch of a Fetch request (v7+; -1 before), from its frame body."""
    (version,) = struct.unpack_from(">h", request, 2)
    if version < 7:
        return -1
    at = 8  # api key, version, correlation id
    (client_len,) = struct.unpack_from(">h", request, at)
    at += 2 + max(client_len, 0)
    if version >= 12:  # flexible: the header's tagged fields
        count, at = _uvarint(request, at)
        for _ in range(count):
            _, at = _uvarint(request, at)
            size, at = _uvarint(request, at)
            at += size
    if version < 15:
        at += 4  # replica id (a tagged field from v15)
    at += 4 + 4 + 4 + 1  # max wait, min bytes, max bytes, isolation level
    (_session_id, epoch) = struct.unpack_from(">ii", request, at)
    return int(epoch)


def _uvarint(b: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = b[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


class KafkaPythonReader:
    """kafka-python, assigned every partition from its end."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        self.consumer.seek_to_end()

    def poll(self) -> int:
        return sum(len(r) for r in self.consumer.poll(timeout_ms=100).values())

    def close(self) -> None:
        self.consumer.close()


class LibrdkafkaReader:
    """confluent-kafka, assigned every partition from its end."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "fs-rd", "enable.auto.commit": False}
        )
        self.consumer.assign([CkPartition(topic, p, OFFSET_END) for p in range(partitions)])

    def poll(self) -> int:
        return len([m for m in self.consumer.consume(500, 0.1) if m.error() is None])

    def close(self) -> None:
        self.consumer.close()


class JavaReader:
    """Kafka 4.4's console consumer (kafka-clients 4.4) in a group of its own; counts the
    records it prints."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.proc = subprocess.Popen(
            [
                str(KAFKA_SH),
                "run-class",
                "org.apache.kafka.tools.consumer.ConsoleConsumer",
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--group",
                "fs-java",
                "--consumer-property",
                "auto.offset.reset=latest",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.lines = 0
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            self.lines += 1

    def poll(self) -> int:
        time.sleep(0.1)
        seen, self.lines = self.lines, 0
        return seen

    def close(self) -> None:
        os.killpg(self.proc.pid, 15)
        self.proc.wait(30)


READERS = {"kafka-python": KafkaPythonReader, "librdkafka": LibrdkafkaReader, "java": JavaReader}


def run_one(target: str, slots: int, client: str, args: argparse.Namespace) -> dict[str, Any]:
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
        consumer = READERS[client](bootstrap, topic, args.partitions)
        # The first (full) fetches; the Java consumer first joins its group.
        warm_up = time.monotonic() + (15 if client == "java" else 2)
        while time.monotonic() < warm_up:
            consumer.poll()
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
            received += consumer.poll()
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(pid) or 0.0) - cpu0
        consumer.close()
        producer.flush(10)
        del producer, admin  # librdkafka handles: closed before the server stops
        fetches = max(proxy.fetches, 1)
        return {
            "target": target,
            "client": client,
            "session_cache_slots": slots,
            "seconds": round(elapsed, 1),
            "fetches": proxy.fetches,
            "incremental_fetches": proxy.incremental,
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
    ap.add_argument("--clients", default=",".join(READERS))
    args = ap.parse_args()
    runs = []
    for target in args.targets.split(","):
        for client in args.clients.split(","):
            for slots in (1000, 0):
                run = run_one(target, slots, client, args)
                print(json.dumps(run), flush=True)
                runs.append(run)
    result = {"args": vars(args), "runs": runs}
    out = HERE / "results" / f"fetch-sessions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
