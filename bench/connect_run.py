#!/usr/bin/env python3
"""Kafka Connect (distributed mode) on kop, and on Apache Kafka 4.4 for comparison.

    .venv/bin/python bench/connect_run.py [--target kop|kafka] [--lines 1000]

Starts the target (kop: `kop serve` on file storage in a temporary directory, `KOP_BIN`
overrides the binary; kafka: scripts/kafka.sh start), then one Kafka Connect 4.4 worker in
distributed mode (`org.apache.kafka.connect.cli.ConnectDistributed`, jars from
scripts/kafka.sh, the FileStream connectors from `scripts/kafka.sh fetch-connect-file`).
The worker creates its config, offset and status topics itself, compacted, and checks they
are (it refuses to start otherwise). Then:
1. a FileStreamSource connector copies --lines lines of a file into a topic;
2. the worker is stopped (SIGTERM) once its offsets are committed, --lines more lines are
   appended to the file, the worker is started again: it must resume from the stored offsets,
   so the topic ends with exactly 2 x --lines records, each line once, in order;
3. the internal topics' cleanup.policy is read back (compact) and their sizes reported.
Prints JSON and writes it to bench/results/connect-<target>-<time>.json. Not a test (a
worker takes ~10 s to start on the shared 2-core VM; the run takes about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from harness.net import free_port, wait_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_KOP = ROOT / ".venv" / "bin" / "kop"
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
INTERNAL = ("connect-configs", "connect-offsets", "connect-status")


def rest(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def start_worker(props: Path, log: Path, rest_port: int) -> tuple[subprocess.Popen[bytes], float]:
    start = time.monotonic()
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [
                str(KAFKA_SH),
                "run-class",
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(props),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "KAFKA_TOOLS_LOG_LEVEL": "info", "KAFKA_TOOLS_HEAP": "-Xmx384m"},
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            rest(rest_port, "/connectors")
            return proc, time.monotonic() - start
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Connect worker did not start; see {log}") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def read_topic(bootstrap: str, topic: str) -> list[str]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{time.time()}",
            "enable.auto.commit": False,
        }
    )
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        values: list[str] = []
        while len(values) < high:
            m = c.poll(5)
            if m is None:
                break
            if m.error() is None:
                values.append(json.loads(m.value()))
        return values
    finally:
        c.close()


def wait_count(bootstrap: str, topic: str, count: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            values = read_topic(bootstrap, topic)
        except Exception:  # the topic may not exist yet
            values = []
        if len(values) >= count or time.monotonic() > deadline:
            return values
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["kop", "kafka"], default="kop")
    ap.add_argument("--lines", type=int, default=1000)
    args = ap.parse_args()
    plugins = (
        subprocess.run(
            [str(KAFKA_SH), "fetch-connect-file"], check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()
    )
    plugin_path = plugins[-1]
    data = Path(tempfile.mkdtemp(prefix="kop-connect-run-"))
    port, rest_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"target": args.target, "lines": args.lines}
    try:
        if args.target == "kop":
            kop = os.environ.get("KOP_BIN", str(VENV_KOP))
            with open(data / "kop.log", "w") as log:
                server = subprocess.Popen(
                    [
                        kop,
                        "serve",
                        "--listeners",
                        f"PLAINTEXT://{bootstrap}",
                        "--storage",
                        f"file://{data / 'kop'}",
                        "--log-cleaner-backoff-ms",
                        "1000",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        else:
            subprocess.run(
                [str(KAFKA_SH), "start", str(data / "kafka"), str(port)],
                check=True,
                env={**os.environ, "KAFKA_CONTROLLER_PORT": str(free_port())},
            )
        wait_port(port, 60)
        source = data / "input.txt"
        source.write_text("".join(f"line-{i}\n" for i in range(args.lines)))
        props = data / "worker.properties"
        props.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={bootstrap}",
                    "group.id=kop-connect-run",
                    "config.storage.topic=connect-configs",
                    "offset.storage.topic=connect-offsets",
                    "status.storage.topic=connect-status",
                    "config.storage.replication.factor=1",
                    "offset.storage.replication.factor=1",
                    "status.storage.replication.factor=1",
                    "offset.storage.partitions=5",
                    "status.storage.partitions=3",
                    "key.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    "key.converter.schemas.enable=false",
                    "value.converter.schemas.enable=false",
                    "offset.flush.interval.ms=1000",
                    f"listeners=http://127.0.0.1:{rest_port}",
                    f"plugin.path={plugin_path}",
                    "",
                ]
            )
        )
        # One partition, so the file's lines stay in order in the topic.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("connect-out", num_partitions=1, replication_factor=1)])[
            "connect-out"
        ].result(30)
        wlog = data / "connect.log"
        worker, result["worker_start_s"] = start_worker(props, wlog, rest_port)
        t0 = time.monotonic()
        connector = {
            "name": "file-source",
            "config": {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max": "1",
                "file": str(source),
                "topic": "connect-out",
            },
        }
        # The REST API answers before the worker has joined its group; a create is refused
        # (500/409) until then.
        deadline = time.monotonic() + 90
        while True:
            try:
                rest(rest_port, "/connectors", connector)
                break
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        first = wait_count(bootstrap, "connect-out", args.lines, 90)
        result["first_run_records"] = len(first)
        result["first_run_s"] = time.monotonic() - t0
        time.sleep(4)  # offsets are committed every second
        stop(worker)
        worker = None
        with open(source, "a") as f:
            f.write("".join(f"line-{i}\n" for i in range(args.lines, 2 * args.lines)))
        worker, result["worker_restart_s"] = start_worker(props, wlog, rest_port)
        t1 = time.monotonic()
        both = wait_count(bootstrap, "connect-out", 2 * args.lines, 90)
        time.sleep(3)  # anything re-sent after the restart would show now
        both = read_topic(bootstrap, "connect-out")
        result["second_run_s"] = time.monotonic() - t1
        result["records_after_restart"] = len(both)
        expected = [f"line-{i}" for i in range(2 * args.lines)]
        result["resumed_exactly"] = both == expected
        result["connector_status"] = rest(rest_port, "/connectors/file-source/status")["tasks"]
        res = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in INTERNAL]
        policies = {}
        for r, f in admin.describe_configs(res).items():
            policies[r.name] = f.result(10)["cleanup.policy"].value
        result["internal_cleanup_policy"] = policies
        print(json.dumps(result, indent=2))
        out = HERE / "results" / f"connect-{args.target}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        if not result["resumed_exactly"]:
            sys.exit(1)
    finally:
        if worker is not None:
            stop(worker)
        if server is not None:
            stop(server)
        if args.target == "kafka":
            subprocess.run([str(KAFKA_SH), "stop", str(data / "kafka")], check=False)
        if os.environ.get("KEEP_DATA"):
            print(f"data kept in {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
