"""Client-quota measurements shared by the quota tests: how fast a librdkafka producer gets
its records acknowledged, and the throttle times it reports; the same for the Java client,
through Kafka's own perf tools (kafka-producer-perf-test, kafka-consumer-perf-test) and the
client metrics they print."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from typing import Any

from confluent_kafka import Producer

from helpers import java


class ThrottleStats:
    """librdkafka statistics: the largest broker throttle time seen (ms)."""

    def __init__(self) -> None:
        self.max_throttle = 0

    def __call__(self, raw: str) -> None:
        for b in json.loads(raw).get("brokers", {}).values():
            self.max_throttle = max(self.max_throttle, int(b.get("throttle", {}).get("max", 0)))


def produce_for(
    bootstrap: str, topic: str, client_id: str, seconds: float, value: bytes = b"x" * 1024
) -> tuple[float, int]:
    """Produces as fast as the server lets it for `seconds`: (bytes/s acked, max throttle)."""
    stats = ThrottleStats()
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "linger.ms": 5,
            "batch.size": 64 * 1024,
            "queue.buffering.max.kbytes": 1024,
            "statistics.interval.ms": 500,
            "stats_cb": stats,
        }
    )
    acked = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += len(msg.value())

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, value, partition=0, on_delivery=delivered)
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    rate = acked[0] / (time.monotonic() - start)
    p.purge()
    p.flush(30)
    return rate, stats.max_throttle


# ---- the Java client (Kafka 4.4's perf tools) ----

# A `--print-metrics` line: "group:name:{tags}   : value".
_METRIC = re.compile(r"^([\w-]+):([\w-]+):\{(.*)\}\s+:\s+(\S+)\s*$")


class JavaPerf:
    """kafka-producer-perf-test or kafka-consumer-perf-test in the background, as fast as it
    can with ``client_id`` and 1 KiB records; ``finish()`` waits for it and reads the rate it
    reports and the Java client's metrics (``--print-metrics``)."""

    RECORD_SIZE = 1024

    def __init__(self, cls: str, args: list[str], client_id: str) -> None:
        self.cls = cls
        self.client_id = client_id
        self.proc = java.start_class(cls, [*args, "--print-metrics"])
        self.rate = 0.0  # bytes per second
        self.metrics: dict[str, float] = {}  # "group:name" -> value, of this client

    @classmethod
    def producer(cls, bootstrap: str, topic: str, client_id: str, records: int) -> JavaPerf:
        args = ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records)]
        args += ["--record-size", str(cls.RECORD_SIZE), "--throughput", "-1"]
        args += ["--command-property", f"client.id={client_id}", "acks=all"]
        return cls(java.PRODUCER_PERFORMANCE, args, client_id)

    @classmethod
    def consumer(cls, bootstrap: str, topic: str, client_id: str, records: int) -> JavaPerf:
        """Reads ``records`` (of RECORD_SIZE bytes) from the start of ``topic`` in a group."""
        args = ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records)]
        args += ["--group", f"{client_id}-group", "--timeout", "30000"]
        args += ["--command-property", f"client.id={client_id}"]
        return cls(java.CONSUMER_PERFORMANCE, args, client_id)

    def finish(self, timeout: float = 120) -> JavaPerf:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        tool = self.cls.rsplit(".", 1)[-1]
        assert self.proc.returncode == 0, f"{tool} exited {self.proc.returncode}\n{err[-3000:]}"
        for line in out.splitlines():
            m = _METRIC.match(line)
            if m and f"client-id={self.client_id}" in m.group(3):
                with contextlib.suppress(ValueError):  # not a number
                    self.metrics[f"{m.group(1)}:{m.group(2)}"] = float(m.group(4))
        if self.cls == java.PRODUCER_PERFORMANCE:
            # The summary: "N records sent, R records/sec (M MB/sec), ... ms 50th, ...".
            totals = re.findall(r"(\d+) records sent, ([\d.]+) records/sec.*50th", out)
            assert totals, f"no summary from {tool}:\n{out[-3000:]}"
            self.rate = float(totals[-1][1]) * self.RECORD_SIZE
        else:
            # A CSV header, then one row: ..., fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec.
            lines = out.splitlines()
            heads = [i for i, line in enumerate(lines) if line.startswith("start.time")]
            assert heads, f"no summary from {tool}:\n{out[-3000:]}"
            names = [c.strip() for c in lines[heads[0]].split(",")]
            row = dict(zip(names, (c.strip() for c in lines[heads[0] + 1].split(",")), strict=True))
            self.rate = float(row["fetch.nMsg.sec"]) * self.RECORD_SIZE
        return self

    def throttle_times(self) -> dict[str, float]:
        """The client's throttle-time metrics by name (e.g. ``produce-throttle-time-avg``)."""
        return {k.split(":")[1]: v for k, v in self.metrics.items() if "throttle-time" in k}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
