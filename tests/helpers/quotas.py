"""Client-quota measurements shared by the quota tests: how fast a librdkafka producer gets
its records acknowledged, and the throttle times it reports."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import Producer


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
