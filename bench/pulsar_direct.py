#!/usr/bin/env python3
"""kop on Pulsar against Pulsar's own clients, on ONE Pulsar standalone (issue #19's Pulsar goal:
kop at >= 70% of what Pulsar's producers and consumers achieve directly, same record size and
durability).

    .venv/bin/python bench/pulsar_direct.py          # 2 repeats x 2 workloads x 40,000, ~10 min
    .venv/bin/python bench/pulsar_direct.py --repeat 3 --records 100000 --label quiet
    .venv/bin/python bench/pulsar_direct.py fetch-perf      # only resolve pulsar-perf (Maven)
    .venv/bin/python bench/pulsar_direct.py report bench/results/pulsar-direct-<time>/summary.json
    .venv/bin/python bench/pulsar_direct.py --ab before=/path/kop,after=.venv/bin/kop \
        --tests java-produce,rdkafka-produce --repeat 3     # kop builds side by side

Starts a Pulsar standalone of its own (scripts/pulsar.sh, free ports, its own data dir) and
`kop serve --storage pulsar://` on it (bench/harness/systems.py's kop-pulsar command line, plus a
metrics listener), warms both up, then per repeat and workload (1 KiB records, 1 and 8
partitions; acks=all on the Kafka side = a Pulsar receipt, i.e. the entry is on the bookie
journal) runs, each on a fresh topic:

  Pulsar directly
    perf-produce          pulsar-perf produce, its default batching (1 ms, 1,000 msgs, 4 MiB)
    perf-produce-matched  pulsar-perf produce with the Kafka Java producer's window: 16 KiB
                          batches, 5 ms linger, at most 5 batches in flight per partition
    py-produce            pulsar-client (Python) send_async, batching on
                          (bench/harness/pulsarload.py)
    perf-consume          pulsar-perf consume of perf-produce's topic
    py-consume            pulsar-client receive() of the same topic
    perf-latency          pulsar-perf produce at 10,000 records/s with librdkafka's batching
                          (5 ms, 1,000,000 bytes): send-to-receipt latency after 2 s of warm-up
  kop on the same Pulsar
    java-produce          Kafka's ProducerPerformance, acks=all (bench/harness/javaload.py)
    rdkafka-produce       librdkafka, acks=all (bench/harness/rdload.py)
    java-consume          ConsumerPerformance of rdkafka-produce's topic (1 MB batches, like
                          perf-produce's)
    rdkafka-consume       librdkafka assign() from offset 0 of the same topic
    rdkafka-latency       librdkafka at 10,000 records/s, acks=all: send-to-ack latency after
                          2 s of warm-up (the pair of perf-latency: kop's p99 minus Pulsar's)

Per test: records/s, MB/s (10^6 bytes of values), the tool's p50/p99 latency where it gives one,
server CPU seconds (the Pulsar JVM and kop separately) and the load average; for kop's produce
tests, the per-stage means from kop's and Pulsar's metrics (request read -> response, kop's
append -> Pulsar receipt, the broker's publish -> bookie persisted). The order of "direct" and
"kop" alternates between repeats. Results: bench/results/pulsar-direct-<time>[-label]/summary.json
(tool logs in logs/, not committed); `report` prints the Markdown tables for docs/benchmarks.md.

pulsar-perf: Maven Central serves org.apache.pulsar:pulsar-testclient only as 2.x, 3.3.5-3.3.6,
4.0.6, 4.0.8 and 5.0.1 -- not 4.2.4, the Pulsar scripts/pulsar.sh runs. The nearest served
release of the same line, 4.0.8, is fetched alone (no dependencies) into
$KOP_CACHE/pulsar-testclient-4.0.8 and run on the classpath of the cached Pulsar 4.2.4 jars, so
its producer and consumer are Pulsar 4.2.4's Java client (PULSAR_PERF_VERSION overrides 4.0.8).
--ab NAME=KOP_BIN,...: one kop per build on the same Pulsar (each in its own namespace
public/ab-NAME, so they do not form one cluster); every repeat runs the kop tests on each build,
the builds' order rotating per repeat, and the report adds a table of the builds side by side
(the other tables are of the last build).

Not a test: nothing here asserts a speed. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import javaload, machine, procmon, systems  # noqa: E402
from harness.net import free_port, wait_port  # noqa: E402
from run import create_topic, rdload  # noqa: E402

REPO = HERE.parent
PY = sys.executable
PULSAR_SH = REPO / "scripts" / "pulsar.sh"
PULSARLOAD = HERE / "harness" / "pulsarload.py"
CACHE = Path(os.environ.get("KOP_CACHE", str(Path.home() / ".cache" / "kop")))
PERF_VERSION = os.environ.get("PULSAR_PERF_VERSION", "4.0.8")
PERF_MAIN = "org.apache.pulsar.testclient.PulsarPerfTestTool"
SIZE = 1024
# perf-produce's cap on unacknowledged messages (-o/-p): 4 of its default 1,000-message batches
PERF_CAP = 4000
NS = "public/default"

DIRECT_TESTS = (
    "perf-produce",
    "perf-produce-matched",
    "py-produce",
    "perf-consume",
    "py-consume",
    "perf-latency",
)
KOP_TESTS = (
    "java-produce",
    "rdkafka-produce",
    "java-consume",
    "rdkafka-consume",
    "rdkafka-latency",
)
# The fixed-rate tests: records/s both sides reach on this box (kop's librdkafka produce and
# pulsar-perf both run several times faster), seconds measured, and seconds of warm-up before
# (left out of the latencies: pulsar-perf's JVM compiles, both clients connect).
LATENCY_RATE = 10_000
LATENCY_S = 10
LATENCY_WARMUP_S = 2
# (kop test, Pulsar-direct test) pairs whose p99 difference is reported (the goal: kop's p99 at
# most 1 ms above Pulsar's own client's)
LATENCY_PAIRS = (("rdkafka-latency", "perf-latency"),)
# (kop test, Pulsar-direct test) pairs whose ratio is reported
PAIRS = (
    ("java-produce", "perf-produce-matched"),
    ("java-produce", "perf-produce"),
    ("rdkafka-produce", "perf-produce"),
    ("rdkafka-produce", "py-produce"),
    ("java-consume", "perf-consume"),
    ("rdkafka-consume", "perf-consume"),
    ("rdkafka-consume", "py-consume"),
)


# ------------------------------------------------------------------------------ pulsar-perf


def fetch_perf() -> str:
    """The classpath of pulsar-perf: the testclient jar plus the cached Pulsar broker's jars."""
    lib = subprocess.run(
        ["bash", str(PULSAR_SH), "lib"], capture_output=True, text=True, check=True
    ).stdout.strip()
    d = CACHE / f"pulsar-testclient-{PERF_VERSION}"
    jar = d / f"pulsar-testclient-{PERF_VERSION}.jar"
    if not jar.exists():
        tmp = Path(tempfile.mkdtemp(prefix="pulsar-perf-", dir=CACHE))
        cp = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(REPO / "scripts" / "pulsar" / "pom.xml"),
                "dependency:copy",
                f"-Dartifact=org.apache.pulsar:pulsar-testclient:{PERF_VERSION}:jar",
                f"-DoutputDirectory={tmp}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if cp.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SystemExit(
                f"maven could not resolve pulsar-testclient {PERF_VERSION}: {cp.stdout[-800:]}"
            )
        d.mkdir(parents=True, exist_ok=True)
        (tmp / jar.name).rename(jar)
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{jar}:{lib}/*"


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3})")
_LAT = re.compile(
    r"Aggregated latency stats --- Latency: mean:\s*([\d.]+) ms - med:\s*([\d.]+) - "
    r"95pct:\s*([\d.]+) - 99pct:\s*([\d.]+)"
)


def _when(out: str, marker: str) -> float | None:
    for line in out.splitlines():
        if marker in line and (m := _TS.match(line)):
            t = dt.datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S,%f")
            return t.timestamp()
    return None


def parse_perf(out: str, mode: str, num: int) -> dict[str, Any]:
    """Rate over the tool's own log timestamps: producers created -> the N-th message sent
    (up to the outstanding cap may still wait for receipts then: this is an upper bound, and
    ``rec_per_s_at_least`` counts only N - cap messages; pulsar-perf logs no time for its last
    receipt, so the cap is what bounds the end), or subscribed -> the N-th message received.
    pulsar-perf's own "Aggregated throughput" divides by a time that includes its shutdown, so
    it is not used."""
    if mode == "produce":
        t0, t1 = _when(out, "producers"), _when(out, "DONE (reached the maximum number")
    else:
        t0, t1 = _when(out, "Start receiving from"), _when(out, "------- DONE")
    if t0 is None or t1 is None or t1 <= t0:
        raise ValueError(f"no start/DONE lines in pulsar-perf {mode} output")
    res: dict[str, Any] = {
        "records": num,
        "elapsed_s": round(t1 - t0, 3),
        "rec_per_s": round(num / (t1 - t0), 1),
        "mb_per_s": round(num * SIZE / (t1 - t0) / 1e6, 3),
    }
    if mode == "produce" and (m := _LAT.search(out)):
        res.update(lat_p50_ms=float(m[2]), lat_p99_ms=float(m[4]))
    return res


# ------------------------------------------------------------------------------ the systems


class Bed:
    """One Pulsar standalone and one kop on it (or one per build of ``builds``: name -> kop
    binary; ``select`` picks the one the tests use)."""

    def __init__(self, root: Path, logs: Path, builds: dict[str, str] | None = None) -> None:
        self.root, self.logs = root, logs
        self.broker, self.web = free_port(), free_port()
        self.kop_port, self.metrics_port = free_port(), free_port()
        self.pulsar_dir = root / "pulsar"
        self.kop_proc: subprocess.Popen[bytes] | None = None
        self.pulsar_pid = 0
        self.builds = builds or {}
        # build name -> (process, Kafka port, metrics port)
        self.kops: dict[str, tuple[subprocess.Popen[bytes], int, int]] = {}

    def select(self, build: str) -> None:
        self.kop_proc, self.kop_port, self.metrics_port = self.kops[build]

    @property
    def service_url(self) -> str:
        return f"pulsar://127.0.0.1:{self.broker}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.web}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kop_port}"

    def start(self) -> None:
        env = dict(os.environ, PULSAR_BROKER_PORT=str(self.broker), PULSAR_WEB_PORT=str(self.web))
        t0 = time.monotonic()
        subprocess.run(["bash", str(PULSAR_SH), "start", str(self.pulsar_dir)], env=env, check=True)
        self.pulsar_pid = int((self.pulsar_dir / "pulsar.pid").read_text().strip())
        print(f"Pulsar ready in {time.monotonic() - t0:.1f} s (pid {self.pulsar_pid})", flush=True)
        if not self.builds:
            self.kop_proc = self._start_kop(self.kop_port, self.metrics_port, "kop.log", [])
            return
        for build, binary in self.builds.items():
            ns = f"ab-{build}"
            req = urllib.request.Request(
                f"{self.admin_url}/admin/v2/namespaces/public/{ns}",
                data=b"{}",
                method="PUT",
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=60).close()
            port, metrics = free_port(), free_port()
            extra = ["--pulsar-namespace", ns]
            proc = self._start_kop(port, metrics, f"kop-{build}.log", extra, binary)
            self.kops[build] = (proc, port, metrics)
        self.select(next(iter(self.builds)))

    def _start_kop(
        self, port: int, metrics: int, log: str, extra: list[str], binary: str | None = None
    ) -> subprocess.Popen[bytes]:
        kop = systems.KopOnPulsar()
        if binary:
            kop.bin = binary
        args = kop.serve_args(port, self.broker, self.web)
        args += ["--metrics-listener", f"127.0.0.1:{metrics}", *extra]
        with open(self.logs / log, "wb") as f:
            proc = subprocess.Popen(
                args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO
            )
        wait_port(port, 120)
        print(f"kop ready (pid {proc.pid}): {' '.join(args)}", flush=True)
        return proc

    def stop(self) -> None:
        for proc, _, _ in self.kops.values():
            systems.stop_process(proc)
        if self.kop_proc is not None and not self.kops:
            systems.stop_process(self.kop_proc)
        subprocess.run(
            ["bash", str(PULSAR_SH), "stop", str(self.pulsar_dir)],
            capture_output=True,
            timeout=120,
            check=False,
        )

    def cpu(self) -> tuple[float, float]:
        kop_pid = self.kop_proc.pid if self.kop_proc else 0
        return procmon.tree_cpu_seconds([self.pulsar_pid]), procmon.tree_cpu_seconds([kop_pid])

    def create_pulsar_topic(self, name: str, partitions: int) -> str:
        req = urllib.request.Request(
            f"{self.admin_url}/admin/v2/persistent/{NS}/{name}/partitions",
            data=str(partitions).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=60).close()
        return f"persistent://{NS}/{name}"

    def stage_metrics(self) -> dict[str, float]:
        """Cumulative sums (seconds) and counts of kop's Produce request duration, kop's
        append -> receipt, and the broker's publish latency (ms in Pulsar's summary)."""
        out: dict[str, float] = {}
        for url, names in (
            (
                f"http://127.0.0.1:{self.metrics_port}/metrics",
                {
                    'kop_request_duration_seconds_sum{api="Produce"}': "kop_request_sum",
                    'kop_request_duration_seconds_count{api="Produce"}': "kop_request_count",
                    "kop_pulsar_send_duration_seconds_sum": "kop_send_sum",
                    "kop_pulsar_send_duration_seconds_count": "kop_send_count",
                },
            ),
            (
                f"{self.admin_url}/metrics/",
                {
                    'pulsar_broker_publish_latency_sum{cluster="standalone"}': "broker_sum_ms",
                    'pulsar_broker_publish_latency_count{cluster="standalone"}': "broker_count",
                },
            ),
        ):
            try:
                text = urllib.request.urlopen(url, timeout=30).read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, val = line.rpartition(" ")
                if key in names:
                    out[names[key]] = out.get(names[key], 0.0) + float(val)
        return out


def stages(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def mean(s: str, c: str, scale: float) -> float | None:
        n = after.get(c, 0.0) - before.get(c, 0.0)
        return round((after.get(s, 0.0) - before.get(s, 0.0)) / n * scale, 2) if n > 0 else None

    return {
        "kop_produce_request_mean_ms": mean("kop_request_sum", "kop_request_count", 1000),
        "kop_produce_requests": after.get("kop_request_count", 0)
        - before.get("kop_request_count", 0),
        "kop_append_to_receipt_mean_ms": mean("kop_send_sum", "kop_send_count", 1000),
        "kop_pulsar_sends": after.get("kop_send_count", 0) - before.get("kop_send_count", 0),
        "broker_publish_mean_ms": mean("broker_sum_ms", "broker_count", 1),
        "broker_publishes": after.get("broker_count", 0) - before.get("broker_count", 0),
    }


# ------------------------------------------------------------------------------ the tests


def run_perf(cp: str, argv: list[str], log: Path, timeout: float) -> tuple[int, str]:
    conf = log.parent / "client.conf"
    conf.touch()
    cmd = ["java", "-Xmx1g", "-Xms256m", "-cp", cp, PERF_MAIN, str(conf), *argv]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        rc, out = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else ""
    log.write_text(f"$ {' '.join(cmd)}\n{out}")
    return rc, out


def run_test(
    bed: Bed,
    cp: str,
    test: str,
    parts: int,
    num: int,
    topics: dict[str, str],
    log: Path,
    tmo: float,
) -> dict[str, Any]:
    svc = bed.service_url
    if test in ("perf-produce", "perf-produce-matched"):
        topic = bed.create_pulsar_topic(f"direct-{uuid.uuid4().hex[:8]}", parts)
        topics[test] = topic
        argv = ["produce", "-u", svc, "-au", bed.admin_url, "-r", "100000000", "-m", str(num)]
        argv += ["-s", str(SIZE), "--warmup-time", "0"]
        if test == "perf-produce":
            cap = PERF_CAP  # ~4 default batches (1,000 messages) in flight; see parse_perf
            argv += ["-o", str(cap), "-p", str(cap)]
        else:  # Kafka Java producer: batch.size 16 KiB, linger 5 ms, 5 requests in flight
            cap = 80 * parts
            argv += ["-bb", "16384", "-b", "5", "-o", "80", "-p", str(cap)]
        rc, out = run_perf(cp, [*argv, topic], log, tmo)
        try:
            res = parse_perf(out, "produce", num)
            # at DONE at most `cap` messages are unacknowledged (blockIfQueueFull)
            res["rec_per_s_at_least"] = round((num - cap) / res["elapsed_s"], 1)
            return {**res, "cmd": " ".join(["pulsar-perf", *argv])}
        except ValueError as e:
            return {"error": f"{e} (rc {rc})"}
    if test == "perf-latency":
        topic = bed.create_pulsar_topic(f"direct-{uuid.uuid4().hex[:8]}", parts)
        n = LATENCY_RATE * (LATENCY_S + LATENCY_WARMUP_S)
        argv = ["produce", "-u", svc, "-au", bed.admin_url, "-r", str(LATENCY_RATE), "-m", str(n)]
        argv += ["-s", str(SIZE), "--warmup-time", str(LATENCY_WARMUP_S)]
        # librdkafka's defaults: linger 5 ms, batches up to 1,000,000 bytes / 10,000 messages
        argv += ["-b", "5", "-bb", "1000000", "-bm", "10000"]
        rc, out = run_perf(cp, [*argv, topic], log, tmo)
        try:
            return {**parse_perf(out, "produce", n), "cmd": " ".join(["pulsar-perf", *argv])}
        except ValueError as e:
            return {"error": f"{e} (rc {rc})"}
    if test == "perf-consume":
        argv = ["consume", "-u", svc, "-m", str(num), "-sp", "Earliest", "-ss", "perf"]
        rc, out = run_perf(cp, [*argv, topics["perf-produce"]], log, tmo)
        try:
            return {**parse_perf(out, "consume", num), "cmd": " ".join(["pulsar-perf", *argv])}
        except ValueError as e:
            return {"error": f"{e} (rc {rc})"}
    if test in ("py-produce", "py-consume"):
        if test == "py-produce":
            topic = bed.create_pulsar_topic(f"direct-{uuid.uuid4().hex[:8]}", parts)
            topics[test] = topic
        else:
            topic = topics["perf-produce"]
        mode = test.split("-")[1]
        argv = [mode, "--service-url", svc, "--topic", topic, "--num", str(num)]
        cmd = [PY, str(PULSARLOAD), *argv, "--size", str(SIZE)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=tmo, check=False)
        log.write_text(f"$ {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
        try:
            return {**json.loads(res.stdout.strip().splitlines()[-1]), "cmd": " ".join(argv)}
        except (ValueError, IndexError):
            return {"error": f"pulsarload: {res.stderr.strip()[-400:]}"}
    if test in ("java-produce", "rdkafka-produce", "rdkafka-latency"):
        topic = f"kop-{uuid.uuid4().hex[:8]}"
        if err := create_topic(bed.bootstrap, topic, parts):
            return {"error": f"create topic: {err}"}
        if test == "java-produce":
            topics[test] = topic
            args = javaload.producer_args(bed.bootstrap, topic, num, SIZE, "all", -1)
            rc, out, err = javaload.run_class(javaload.PRODUCER_CLASS, args, tmo, log)
            try:
                return {**javaload.parse_producer(out, SIZE), "cmd": " ".join(args)}
            except ValueError as e:
                return {"error": f"{e} (rc {rc}): {err[-300:]}"}
        if test == "rdkafka-latency":
            num = LATENCY_RATE * (LATENCY_S + LATENCY_WARMUP_S)
        args = ["produce", "--bootstrap", bed.bootstrap, "--topic", topic, "--num", str(num)]
        args += ["--size", str(SIZE), "--acks", "all"]
        if test == "rdkafka-latency":
            args += ["--rate", str(LATENCY_RATE), "--warmup-s", str(LATENCY_WARMUP_S)]
        else:
            topics[test] = topic
        return {**rdload(args, tmo, log), "cmd": " ".join(args)}
    topic = topics["rdkafka-produce"]
    if test == "java-consume":
        args = javaload.consumer_args(bed.bootstrap, topic, num, f"g-{uuid.uuid4().hex[:6]}", 60000)
        rc, out, err = javaload.run_class(javaload.CONSUMER_CLASS, args, tmo, log)
        try:
            return {**javaload.parse_consumer(out), "cmd": " ".join(args)}
        except ValueError as e:
            return {"error": f"{e} (rc {rc}): {err[-300:]}"}
    args = ["consume", "--bootstrap", bed.bootstrap, "--topic", topic, "--num", str(num)]
    args += ["--size", str(SIZE)]
    return {**rdload(args, tmo, log), "cmd": " ".join(args)}


def warm_up(bed: Bed, cp: str, logs: Path, num: int) -> None:
    """Unmeasured: JIT-compile the broker's and kop's produce and read paths."""
    topics: dict[str, str] = {}
    for test in ("perf-produce", "perf-consume", "rdkafka-produce", "rdkafka-consume"):
        r = run_test(bed, cp, test, 1, num, topics, logs / f"warmup-{test}.log", 300)
        print(f"  warm-up {test}: {r.get('rec_per_s') or r.get('error')}", flush=True)


# ------------------------------------------------------------------------------ summary


STATS = (
    "rec_per_s",
    "mb_per_s",
    "lat_p50_ms",
    "lat_p99_ms",
    "pulsar_cpu_s",
    "kop_cpu_s",
    "cpu_s_per_m_records",
)


def _med(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for wl in sorted({r["workload"] for r in results}):
        rows = [r for r in results if r["workload"] == wl]
        tests: dict[str, Any] = {}
        for test in (*DIRECT_TESTS, *KOP_TESTS):
            rs = [r for r in rows if r["test"] == test and r.get("rec_per_s")]
            if not rs:
                continue
            tests[test] = {
                k: _med([float(r[k]) for r in rs if r.get(k) is not None]) for k in STATS
            }
            tests[test]["repeats"] = len(rs)
        p99_over = {
            f"{k} - {d}": m
            for k, d in LATENCY_PAIRS
            if (m := _per_repeat(rows, k, d, "lat_p99_ms", lambda a, b: a - b))
        }
        ratios = {
            f"{k} / {d}": m
            for k, d in PAIRS
            if (m := _per_repeat(rows, k, d, "rec_per_s", lambda a, b: a / b))
        }
        out[wl] = {"tests": tests, "ratios": ratios, "p99_over": p99_over}
    return out


def _per_repeat(
    rows: list[dict[str, Any]],
    kop_test: str,
    direct: str,
    key: str,
    combine: Callable[[float, float], float],
) -> dict[str, float] | None:
    """``combine(kop's key, direct's key)`` per repeat where both have it; median (min-max)."""
    per_rep = []
    for rep in sorted({r["repeat"] for r in rows}):
        k = [r for r in rows if r["repeat"] == rep and r["test"] == kop_test]
        d = [r for r in rows if r["repeat"] == rep and r["test"] == direct]
        if k and d and k[0].get(key) and d[0].get(key):
            per_rep.append(combine(k[0][key], d[0][key]))
    return _med(per_rep)


def _f(x: dict[str, float] | None, fmt: str = "{:,.0f}") -> str:
    if not x:
        return "-"
    m, lo, hi = x["median"], x["min"], x["max"]
    return f"{fmt.format(m)} ({fmt.format(lo)}-{fmt.format(hi)})"


def report(summary: dict[str, Any]) -> str:
    lines = []
    for wl, s in summary["summary"].items():
        lines += [
            f"**{wl}**",
            "",
            "| side | test | records/s | MB/s | p50 ms | p99 ms | CPU s Pulsar | CPU s kop "
            "| CPU s / M rec |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for test, t in s["tests"].items():
            side = "Pulsar direct" if test in DIRECT_TESTS else "kop"
            lines.append(
                f"| {side} | {test} | {_f(t['rec_per_s'])} | {_f(t['mb_per_s'], '{:.1f}')} "
                f"| {_f(t['lat_p50_ms'], '{:.0f}')} | {_f(t['lat_p99_ms'], '{:.0f}')} "
                f"| {_f(t['pulsar_cpu_s'], '{:.1f}')} | {_f(t['kop_cpu_s'], '{:.1f}')} "
                f"| {_f(t['cpu_s_per_m_records'], '{:.0f}')} |"
            )
        if s["ratios"]:
            lines += [
                "",
                "| kop / Pulsar direct (records/s) | ratio | >= 0.70 |",
                "| --- | ---: | --- |",
            ]
        for pair, r in s["ratios"].items():
            ok = "yes" if r["median"] >= 0.7 else "no"
            lines.append(f"| {pair} | {_f(r, '{:.2f}')} | {ok} |")
        if s.get("p99_over"):
            lines += [
                "",
                f"| at {LATENCY_RATE:,} records/s: kop p99 - Pulsar p99 (ms) | difference "
                "| <= +1 ms |",
                "| --- | ---: | --- |",
            ]
            for pair, r in s["p99_over"].items():
                ok = "yes" if r["median"] <= 1.0 else "no"
                lines.append(f"| {pair} | {_f(r, '{:+.1f}')} | {ok} |")
        lines.append("")
    st = [r for r in summary["results"] if r.get("stages", {}).get("kop_produce_requests")]
    if st:
        lines += [
            "Per-stage means of kop's produce tests (kop and Pulsar metrics, deltas per test):",
            "",
            "| workload | test | repeat | Produce requests | request read -> response ms "
            "| kop append -> receipt ms | broker publish -> persisted ms |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in st:
            g = r["stages"]
            lines.append(
                f"| {r['workload']} | {r['test']} | {r['repeat']} "
                f"| {g['kop_produce_requests']:.0f} "
                f"| {g['kop_produce_request_mean_ms']} | {g['kop_append_to_receipt_mean_ms']} "
                f"| {g['broker_publish_mean_ms']} |"
            )
    return "\n".join(lines)


def ab_report(summary: dict[str, Any]) -> str:
    """The builds side by side: per workload and kop test, median (min-max) over the repeats."""
    rows = [r for r in summary["results"] if r.get("build") and r.get("rec_per_s")]
    if not rows:
        return ""
    records = summary["records"]
    lines = [
        "Builds side by side (median (min-max) over the repeats; kop CPU per M records from "
        "/proc):",
        "",
        "| workload | test | build | records/s | p50 ms | kop CPU s / M rec "
        "| request ms | append -> receipt ms | broker ms |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted({(r["workload"], r["test"]) for r in rows})
    for wl, test in keys:
        for build in summary["builds"]:
            rs = [r for r in rows if (r["workload"], r["test"], r["build"]) == (wl, test, build)]
            if not rs:
                continue

            def col(get: Any, fmt: str, rs: list[dict[str, Any]] = rs) -> str:
                vals = [v for v in (get(r) for r in rs) if v is not None]
                return _f(_med([float(v) for v in vals]), fmt)

            lines.append(
                f"| {wl} | {test} | {build} | {col(lambda r: r['rec_per_s'], '{:,.0f}')} "
                f"| {col(lambda r: r.get('lat_p50_ms'), '{:.0f}')} "
                f"| {col(lambda r: r['kop_cpu_s'] / records * 1e6, '{:.1f}')} "
                f"| {col(lambda r: r['stages'].get('kop_produce_request_mean_ms'), '{:.2f}')} "
                f"| {col(lambda r: r['stages'].get('kop_append_to_receipt_mean_ms'), '{:.2f}')} "
                f"| {col(lambda r: r['stages'].get('broker_publish_mean_ms'), '{:.2f}')} |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=["run", "fetch-perf", "report"])
    ap.add_argument("summary", nargs="?", help="report: the summary.json to print")
    ap.add_argument("--records", type=int, default=40_000, help="records per test (1 KiB)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--partitions", default="1,8")
    ap.add_argument("--tests", default=",".join((*DIRECT_TESTS, *KOP_TESTS)))
    ap.add_argument("--warmup-records", type=int, default=20_000)
    ap.add_argument("--tool-timeout", type=float, default=240)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ab", default="", help="NAME=KOP_BIN,...: kop builds side by side")
    args = ap.parse_args()
    if args.command == "report":
        summary = json.loads(Path(args.summary).read_text())
        print(report(summary))
        print(ab_report(summary))
        return 0
    cp = fetch_perf()
    print(f"pulsar-perf classpath: {cp}", flush=True)
    if args.command == "fetch-perf":
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or HERE / "results" / (
        f"pulsar-direct-{stamp}" + (f"-{args.label}" if args.label else "")
    )
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    tests = [t for t in args.tests.split(",") if t]
    parts_list = [int(p) for p in args.partitions.split(",")]
    root = Path(tempfile.mkdtemp(prefix="kop-pulsar-direct-"))
    builds = dict(b.split("=", 1) for b in args.ab.split(",") if b)
    bed = Bed(root, logs, builds)
    summary: dict[str, Any] = {
        "command": " ".join([".venv/bin/python bench/pulsar_direct.py", *sys.argv[1:]]),
        "machine": machine.describe(),
        "pulsar_perf": f"org.apache.pulsar:pulsar-testclient:{PERF_VERSION} on Pulsar's jars",
        "kop": systems.Kop().version(),
        "records": args.records,
        "record_bytes": SIZE,
        "builds": builds,
        "results": [],
    }
    t_start = time.monotonic()
    try:
        bed.start()
        for build in builds or [""]:
            if build:
                bed.select(build)
            warm_up(bed, cp, logs, args.warmup_records)
        for rep in range(args.repeat):
            for parts in parts_list:
                wl = f"1KB-{parts}p-acksall"
                direct = [("", t) for t in tests if t in DIRECT_TESTS]
                names = list(builds) or [""]
                names = names[rep % len(names) :] + names[: rep % len(names)]
                kop = [(b, t) for b in names for t in tests if t in KOP_TESTS]
                order = direct + kop if rep % 2 == 0 else kop + direct
                topics: dict[str, str] = {}
                for build, test in order:
                    if build:
                        bed.select(build)
                    load = machine.loadavg()
                    cpu0, m0 = bed.cpu(), bed.stage_metrics()
                    log = logs / f"r{rep}-{wl}-{test}{'-' + build if build else ''}.log"
                    r = run_test(bed, cp, test, parts, args.records, topics, log, args.tool_timeout)
                    cpu1, m1 = bed.cpu(), bed.stage_metrics()
                    r.update(
                        repeat=rep,
                        workload=wl,
                        test=test,
                        build=build,
                        loadavg=load,
                        pulsar_cpu_s=round(cpu1[0] - cpu0[0], 2),
                        kop_cpu_s=round(cpu1[1] - cpu0[1], 2),
                        stages=stages(m0, m1),
                    )
                    n = r.get("records") or args.records  # the fixed-rate tests send more
                    r["cpu_s_per_m_records"] = round(
                        (r["pulsar_cpu_s"] + r["kop_cpu_s"]) / n * 1e6, 1
                    )
                    summary["results"].append(r)
                    print(
                        f"r{rep} {wl} {test:22} {build:8} {r.get('rec_per_s') or r.get('error')}"
                        " rec/s"
                        f"  CPU Pulsar {r['pulsar_cpu_s']} s kop {r['kop_cpu_s']} s  load {load}",
                        flush=True,
                    )
    finally:
        bed.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary["seconds"] = round(time.monotonic() - t_start, 1)
    summary["loadavg_at_end"] = machine.loadavg()
    last = list(builds)[-1] if builds else ""
    summary["summary"] = summarize([r for r in summary["results"] if r["build"] in ("", last)])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(report(summary))
    print(ab_report(summary))
    print(f"\n{out / 'summary.json'} ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
