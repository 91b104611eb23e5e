"""Kafka's own Java perf tools, run through ``scripts/kafka.sh run-class``, and their parsers."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "scripts" / "kafka.sh"

# kafka.sh runs tools with C1 only (fast start for tests); a load generator needs C2, and a
# larger heap than the 512 MiB default for 100 B records at full speed.
TOOL_ENV = {
    "KAFKA_TOOLS_HEAP": "-Xmx1g -Xms256m",
    "KAFKA_OPTS": "-XX:TieredStopAtLevel=4",
    "KAFKA_TOOLS_LOG_LEVEL": "error",
}

PRODUCER_CLASS = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_CLASS = "org.apache.kafka.tools.ConsumerPerformance"
E2E_CLASS = "org.apache.kafka.tools.EndToEndLatency"


def run_class(
    cls: str, args: list[str], timeout: float, log: Path | None, kafka_version: str | None = None
) -> tuple[int, str, str]:
    """``kafka_version``: the tools of another Kafka release (kafka.sh's KAFKA_VERSION), for a
    server that newer clients cannot talk to."""
    env = dict(os.environ)
    env.update(TOOL_ENV)
    if kafka_version:
        env["KAFKA_VERSION"] = kafka_version
    cmd = [str(KAFKA_SH), "run-class", cls, *args]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        rc, out, err = cp.returncode, cp.stdout, cp.stderr
    except subprocess.TimeoutExpired as e:
        rc = -1
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")) + (
            f"\ntimed out after {timeout:.0f}s"
        )
    if log is not None:
        log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{out}\n--- stderr\n{err}\n")
    return rc, out, err


def command_line(cls: str, args: list[str], kafka_version: str | None = None) -> str:
    prefix = [f"KAFKA_VERSION={kafka_version}"] if kafka_version else []
    return " ".join([*prefix, "scripts/kafka.sh run-class", cls, *args])


_PP_FINAL = re.compile(
    r"(?P<n>\d+)(?P<steady> steady state)? records sent, "
    r"(?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)


def producer_args(
    bootstrap: str, topic: str, num: int, size: int, acks: str, throughput: float, warmup: int = 0
) -> list[str]:
    """``warmup``: the first records left out of the steady-state summary (Kafka 4.x tools)."""
    extra = ["--warmup-records", str(warmup)] if warmup > 0 else []
    return [
        *extra,
        "--topic",
        topic,
        "--num-records",
        str(num),
        "--record-size",
        str(size),
        "--throughput",
        str(int(throughput)) if throughput > 0 else "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        f"acks={acks}",
    ]


def parse_producer(out: str, size: int) -> dict[str, object]:
    """The final summary. With --warmup-records the latencies are the steady state's (after the
    warm-up), and the whole run's are kept as ``lat_*_all_ms``."""
    matches = list(_PP_FINAL.finditer(out))
    whole = [m for m in matches if not m["steady"]]
    if not whole:
        raise ValueError("no final summary line in ProducerPerformance output")
    m = whole[-1]
    rps = float(m["rps"])
    row: dict[str, object] = {
        "records": int(m["n"]),
        "rec_per_s": rps,
        # the tool's MB is 2^20 bytes; report 10^6 bytes like the other drivers
        "mb_per_s": round(rps * size / 1e6, 3),
        **_latencies(m),
    }
    steady = [m for m in matches if m["steady"]]
    if steady:
        row.update({f"{k[:-3]}_all_ms": v for k, v in _latencies(m).items()})
        row.update(_latencies(steady[-1]))
        row["steady_records"] = int(steady[-1]["n"])
    return row


def _latencies(m: re.Match[str]) -> dict[str, float]:
    return {
        "lat_avg_ms": float(m["avg"]),
        "lat_p50_ms": float(m["p50"]),
        "lat_p99_ms": float(m["p99"]),
        "lat_p999_ms": float(m["p999"]),
        "lat_max_ms": float(m["max"]),
    }


def consumer_args(bootstrap: str, topic: str, num: int, group: str, timeout_ms: int) -> list[str]:
    return [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        str(num),
        "--group",
        group,
        "--timeout",
        str(timeout_ms),
    ]


def parse_consumer(out: str) -> dict[str, object]:
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("start.time") and i + 1 < len(lines):
            keys = [k.strip() for k in ln.split(",")]
            vals = [v.strip() for v in lines[i + 1].split(",")]
            row = dict(zip(keys, vals, strict=False))
            n = int(row["data.consumed.in.nMsg"])
            mib = float(row["data.consumed.in.MB"])
            fetch_ms = float(row["fetch.time.ms"])
            total_rps = float(row["nMsg.sec"])
            fetch_rps = float(row["fetch.nMsg.sec"])
            return {
                "records": n,
                # fetch.* excludes the group join (rebalance.time.ms); that is the consume rate
                "rec_per_s": fetch_rps,
                "mb_per_s": round(mib * 1048576 / (fetch_ms / 1000) / 1e6, 3) if fetch_ms else None,
                "rec_per_s_incl_join": total_rps,
                "rebalance_ms": float(row["rebalance.time.ms"]),
                "fetch_ms": fetch_ms,
            }
    raise ValueError("no stats header in ConsumerPerformance output")


def e2e_args(bootstrap: str, topic: str, num: int, acks: str, size: int) -> list[str]:
    return [bootstrap, topic, str(num), acks, str(size)]  # the tool wants "1" or "all"


_E2E_AVG = re.compile(r"Avg latency: (?P<avg>[\d.]+) ms")
_E2E_PCT = re.compile(
    r"Percentiles: 50th = (?P<p50>\d+), 99th = (?P<p99>\d+), 99\.9th = (?P<p999>\d+)"
)


def parse_e2e(out: str, num: int) -> dict[str, object]:
    a, p = _E2E_AVG.search(out), _E2E_PCT.search(out)
    if not a or not p:
        raise ValueError("no latency summary in EndToEndLatency output")
    return {
        "records": num,
        "lat_avg_ms": float(a["avg"]),
        "lat_p50_ms": float(p["p50"]),
        "lat_p99_ms": float(p["p99"]),
        "lat_p999_ms": float(p["p999"]),
    }
