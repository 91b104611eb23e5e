#!/usr/bin/env python3
"""Share-consumer throughput (KIP-932): kop against Apache Kafka 4.4, measured the same way.

    .venv/bin/python bench/share_groups.py                       # kop-cli and kafka, 200k records
    .venv/bin/python bench/share_groups.py --targets kop-cli --records 50000 --consumers 2

For each target a fresh server is started (the test helpers' `start_server`), a one-partition
topic is filled with N 100-byte records (librdkafka, before the consumers start), and
`tests/clients/java/ShareClient.java`'s `bench` command runs C KafkaShareConsumers (implicit
acknowledgement, kafka-clients 4.4) in one JVM until they accepted N records between them.
Reported: records/s from the first record received to the last. The share group starts at the
earliest offset (kop: `share_auto_offset_reset`; Kafka: the group config). Not a test: nothing
asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from helpers import ck, java, txn  # noqa: E402
from helpers.data import Rec  # noqa: E402
from helpers.servers import start_server  # noqa: E402


def run(target: str, records: int, consumers: int, work: Path) -> dict[str, object]:
    options: dict[str, object] = {}
    if target != "kafka":
        options["share_auto_offset_reset"] = "earliest"
    srv = start_server(target, work / f"{target}-data", **options)
    client = None
    try:
        topic = ck.create_topic(srv.bootstrap, ck.unique("share-bench"), 1)
        ck.produce(srv.bootstrap, topic, [Rec(0, None, b"x" * 100) for _ in range(records)])
        from test_e2e_share_groups import ShareServe

        classes = txn.JavaClasses(work / "classes")
        client = ShareServe(classes, srv.bootstrap, work / f"{target}-client.log")
        group = ck.unique("share-bench")
        client.call("earliest", group)
        out = client.call("bench", group, topic, records, consumers)
        return {"target": target, **out}
    finally:
        if client is not None:
            client.close()
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="kop-cli,kafka")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--consumers", type=int, default=2)
    args = ap.parse_args()
    java.fetch()
    with tempfile.TemporaryDirectory(prefix="kop-share-bench-") as tmp:
        for target in args.targets.split(","):
            print(json.dumps(run(target, args.records, args.consumers, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
