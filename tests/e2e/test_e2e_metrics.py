"""The metrics listener under a real Prometheus (Debian's ``prometheus`` package): it scrapes
kop every second while confluent-kafka produces and consumes known records, then the values
Prometheus stored are checked against what the clients did. Also /health and /ready, and that
every metric the Grafana dashboard (docs/grafana/kop-dashboard.json) queries is in a real
scrape. kop targets only (``metrics_listener`` is kop's option)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from helpers import ck
from helpers.servers import HOST, ServerHandle, free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "kop-dashboard.json"
RECORDS = 3000
PARTITIONS = 3
# Per record at most: length, attributes, timestamp and offset deltas, key and value lengths,
# header count (varints); per batch the 61-byte header.
RECORD_OVERHEAD = 20
BATCH_OVERHEAD = 61


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


class Prometheus:
    """A Prometheus server scraping one target every second, on a free port."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: kop\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.log = open(workdir / "prometheus.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while http_get_quiet(f"{self.url}/-/ready") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = http_get(
            f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        assert status == 200, body
        data = json.loads(body)["data"]
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        status, body = http_get(f"{self.url}/api/v1/label/__name__/values")
        assert status == 200, body
        return set(json.loads(body)["data"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def http_get_quiet(url: str) -> int:
    try:
        return http_get(url, timeout=2.0)[0]
    except OSError:
        return 0


def wait_for(what: str, check: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def dashboard_metric_names() -> set[str]:
    """The kop_* series names the dashboard's expressions use (histogram suffixes kept)."""
    board = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            names.update(re.findall(r"\bkop_[a-z_]+\b", target["expr"]))
    return names


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus is required (scripts/test.sh installs Debian's package)")
    return path


@pytest.fixture
def metered(
    target: str, server_factory: Callable[..., ServerHandle], prometheus_binary: str, tmp_path: Path
) -> Iterator[tuple[ServerHandle, Prometheus, str]]:
    if target == "kafka":
        pytest.skip("metrics_listener is a kop option")
    metrics_address = f"{HOST}:{free_port()}"
    srv = server_factory(
        target,
        metrics_listener=metrics_address,
        group_initial_rebalance_delay_ms=0,
        # One connection at a time from 127.0.0.2: the test's extra ones are refused.
        max_connections_per_ip_overrides="127.0.0.2:1",
    )
    prom = Prometheus(prometheus_binary, tmp_path / "prometheus", metrics_address)
    try:
        yield srv, prom, metrics_address
    finally:
        prom.stop()


@pytest.mark.timeout(300)
def test_prometheus_sees_what_the_clients_did(
    metered: tuple[ServerHandle, Prometheus, str],
) -> None:
    srv, prom, address = metered
    assert http_get(f"http://{address}/health") == (200, "ok\n")
    assert http_get(f"http://{address}/ready") == (200, "ready\n")
    assert http_get(f"http://{address}/nope")[0] == 404

    topic = ck.unique("metrics")
    group = ck.unique("metrics-group")
    ck.create_topic(srv.bootstrap, topic, partitions=PARTITIONS)
    producer = ck.producer(srv.bootstrap, **{"linger.ms": 5, "compression.type": "none"})
    payload = 0
    delivered: list[int] = []
    for i in range(RECORDS):
        key = f"key-{i}".encode()
        value = (f"value {i} " + "x" * (i % 200)).encode()
        payload += len(key) + len(value)
        producer.produce(
            topic,
            key=key,
            value=value,
            partition=i % PARTITIONS,
            on_delivery=lambda err, _msg: delivered.append(0 if err is None else 1),
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(delivered) == RECORDS and not any(delivered)

    consumer = Consumer(
        {
            "bootstrap.servers": srv.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + 90
        while seen < RECORDS and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                assert msg.error() is None, msg.error()
                seen += 1
        assert seen == RECORDS
        consumer.commit(asynchronous=False)

        sel = f'{{topic="{topic}"}}'
        wait_for(
            "messages in == N",
            lambda: prom.value(f"sum(kop_topic_messages_in_total{sel})") == RECORDS,
        )
        bytes_in = prom.value(f"sum(kop_topic_bytes_in_total{sel})")
        assert bytes_in is not None
        # The batches the client sent: the payload plus per-record and per-batch overhead.
        batches = prom.value('sum(kop_requests_total{api="Produce"})')
        assert batches is not None and batches >= 1
        assert (
            payload < bytes_in <= payload + RECORDS * RECORD_OVERHEAD + RECORDS * BATCH_OVERHEAD
        ), (
            payload,
            bytes_in,
        )
        wait_for(
            "messages out >= N",
            lambda: (prom.value(f"sum(kop_topic_messages_out_total{sel})") or 0) >= RECORDS,
        )
        assert (prom.value(f"sum(kop_topic_bytes_out_total{sel})") or 0) >= bytes_in
        wait_for(
            "committed offsets sum to N and lag is 0",
            lambda: (
                prom.value(
                    f'sum(kop_consumer_group_committed_offset{{group="{group}",topic="{topic}"}})'
                )
                == RECORDS
                and prom.value(f'max(kop_consumer_group_lag{{group="{group}",topic="{topic}"}})')
                == 0
            ),
        )
        fetches = prom.value('sum(kop_requests_total{api="Fetch"})')
        assert fetches is not None and fetches >= 1
        # Every request counted also has its latency recorded.
        wait_for(
            "histogram counts match request counts",
            lambda: (
                prom.value('sum(kop_request_duration_seconds_count{api="Produce"})')
                == prom.value('sum(kop_requests_total{api="Produce"})')
            ),
        )
        assert (prom.value(f"sum(kop_partition_log_end_offset{sel})") or 0) == RECORDS
        assert (prom.value("sum(kop_connections)") or 0) >= 1
        assert (prom.value("sum(kop_connections_accepted_total)") or 0) >= 2
        assert prom.value('max(kop_groups{state="Stable"})') == 1
    finally:
        consumer.close()

    # A fetch past the end is answered OFFSET_OUT_OF_RANGE, counted by API and error.
    stray = Consumer(
        {
            "bootstrap.servers": srv.bootstrap,
            "group.id": ck.unique("stray"),
            "auto.offset.reset": "error",
            "enable.auto.commit": False,
        }
    )
    try:
        stray.assign([TopicPartition(topic, 0, RECORDS * 10)])
        stray.poll(3.0)
    finally:
        stray.close()
    wait_for(
        "the OFFSET_OUT_OF_RANGE answer counted",
        lambda: (
            (
                prom.value(
                    'sum(kop_request_errors_total{api="Fetch",error="OffsetOutOfRange",code="1"})'
                )
                or 0
            )
            >= 1
        ),
    )
    # Every API's errors are counted, not only Produce's and Fetch's: a topic that is not there
    # cannot be deleted.
    admin = ck.admin(srv.bootstrap)
    deleted = admin.delete_topics([ck.unique("no-such-topic")])
    assert next(iter(deleted.values())).exception(20) is not None
    wait_for(
        "the DeleteTopics error counted",
        lambda: (
            (
                prom.value(
                    'sum(kop_request_errors_total{api="DeleteTopics",'
                    'error="UnknownTopicOrPartition",code="3"})'
                )
                or 0
            )
            >= 1
        ),
    )

    # A connection over its address's limit is closed at once and counted with its reason.
    held = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.connect((srv.host, srv.port))
            held.append(sock)
        wait_for(
            "the two refused connections counted",
            lambda: (
                (
                    prom.value(
                        'sum(kop_connections_refused_total{reason="max_connections_per_ip"})'
                    )
                    or 0
                )
                >= 2
            ),
        )
    finally:
        for sock in held:
            sock.close()

    # Every metric the dashboard queries is in the scrape Prometheus stored.
    stored = prom.metric_names()
    missing = sorted(dashboard_metric_names() - stored)
    if srv.target != "kop-pulsar":
        missing = [m for m in missing if not m.startswith("kop_pulsar_")]
    assert not missing, missing
    # Quota throttles and connection limits are counted even when none happened (0).
    for name in (
        "kop_quota_throttled_responses_total",
        "kop_quota_throttle_time_ms_total",
        "kop_connections_refused_total",
        "kop_connections_limit_waits_total",
        "kop_connections_limit_wait_seconds_total",
    ):
        assert name in stored, name
    assert prom.value('sum(kop_quota_throttled_responses_total{quota="produce"})') == 0
    assert prom.value('sum(kop_hook_calls_total{hook="authenticator"})') == 0
    assert prom.value('sum(kop_hook_calls_total{hook="oauthbearer_validator"})') == 0
    assert http_get(f"http://{address}/ready") == (200, "ready\n")
