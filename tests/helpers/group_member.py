"""One confluent-kafka group member in its own process, so a test can SIGKILL it.

    python group_member.py BOOTSTRAP TOPIC GROUP STRATEGY [INSTANCE_ID] [SESSION_MS]

Prints one JSON line per rebalance event: {"event": "assign"|"revoke"|"lost", "partitions":
[...], "owned": [...]} and {"event": "ready"} once subscribed. Reading "close" on stdin (or
EOF) closes the consumer cleanly (LeaveGroup for dynamic members) and exits.
"""

from __future__ import annotations

import json
import sys
import threading

from confluent_kafka import Consumer


def main() -> None:
    bootstrap, topic, group, strategy = sys.argv[1:5]
    instance = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    session_ms = int(sys.argv[6]) if len(sys.argv) > 6 else 6000
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": strategy,
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": 300,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    owned: set[int] = set()
    cooperative = strategy == "cooperative-sticky"

    def emit(event: str, parts: list) -> None:
        print(
            json.dumps(
                {
                    "event": event,
                    "partitions": sorted(p.partition for p in parts),
                    "owned": sorted(owned),
                }
            ),
            flush=True,
        )

    def on_assign(_c: Consumer, parts: list) -> None:
        if not cooperative:
            owned.clear()
        owned.update(p.partition for p in parts)
        emit("assign", parts)

    def on_revoke(_c: Consumer, parts: list) -> None:
        if cooperative:
            owned.difference_update(p.partition for p in parts)
        else:
            owned.clear()
        emit("revoke", parts)

    def on_lost(_c: Consumer, parts: list) -> None:
        owned.clear()
        emit("lost", parts)

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    print(json.dumps({"event": "ready"}), flush=True)
    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not stop.is_set():
        c.consume(num_messages=100, timeout=0.2)
    c.close()


if __name__ == "__main__":
    main()
