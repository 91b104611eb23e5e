#!/usr/bin/env python3
"""Run kop, Apache Kafka and KoP side by side on loopback and record the numbers.

    .venv/bin/python bench/run.py --quick                  # ranks the systems in ~10 min
    .venv/bin/python bench/run.py                          # full run (see bench/README.md)
    .venv/bin/python bench/run.py --systems kafka,kop --workloads '1KB-*' --repeat 5
    .venv/bin/python bench/report.py                       # -> docs/benchmarks.md + plots

Each repeat starts every selected system in turn (Kafka first in the first repeat, then the
order rotates), measures its start-up, drives every selected workload against it, stops it and
deletes its data; at the end it prints each system's median (min-max) over the repeats.
Results go to bench/results/<run-id>/summary.json (tool logs in logs/, not committed).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import javaload, machine, procmon, systems  # noqa: E402
from harness.net import free_port  # noqa: E402

REPO = HERE.parent
PY = sys.executable
RDLOAD = HERE / "harness" / "rdload.py"

SIZES = {"1KB": 1024, "100B": 100}
# java-latency: seconds of records at the fixed rate that ProducerPerformance (Kafka 4.x, KIP-1052
# --warmup-records) leaves out of its steady-state latencies: the tool's JVM compiles and its
# first batches queue for ~1 s, which made its p99 a measure of the client's start.
JAVA_WARMUP_S = 2.0
PARTITIONS = (1, 8)
ACKS = ("1", "all")
TESTS = (
    "java-produce",
    "rdkafka-produce",
    "java-consume",
    "rdkafka-consume",
    "java-latency",
    "rdkafka-latency",
    "e2e-latency",
)

# run sizes: records per unthrottled produce, seconds per fixed-rate latency run, e2e round trips
MODES = {
    # --quick: fewer workloads and tests (QUICK_*), runs long enough (~0.2-6 s per run here)
    # to rank the systems, 2 interleaved repeats for a median; ~10 minutes for all four here
    "quick": {
        "records": {"1KB": 60_000, "100B": 300_000},
        "latency_s": 3,
        "e2e": 500,
        "warmup": 20_000,
    },
    "full": {
        "records": {"1KB": 300_000, "100B": 1_500_000},
        "latency_s": 15,
        "e2e": 5000,
        "warmup": 200_000,
    },
}


# what --quick runs unless --workloads / --tests say otherwise: one partition with acks=all
# (bound by the round trip of each batch) and eight with acks=1 (bound by throughput)
QUICK_WORKLOADS = "1KB-1p-acksall,1KB-8p-acks1"
QUICK_TESTS = "java-produce,rdkafka-produce,java-consume,rdkafka-consume,rdkafka-latency"
QUICK_REPEATS = 2


def all_workloads() -> list[str]:
    return [f"{s}-{p}p-acks{a}" for s in SIZES for p in PARTITIONS for a in ACKS]


def parse_workload(w: str) -> tuple[str, int, str]:
    size, parts, acks = w.split("-")
    return size, int(parts.rstrip("p")), acks.removeprefix("acks")


@dataclass
class Ctx:
    args: argparse.Namespace
    mode: dict[str, Any]
    out_dir: Path
    logs: Path
    summary: dict[str, Any]
    # (repeat, workload, driver) -> Kafka's unthrottled rate, the basis of the latency runs
    kafka_max: dict[tuple[int, str, str], float] = field(default_factory=dict)

    def save(self) -> None:
        tmp = self.out_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(self.summary, indent=1) + "\n")
        tmp.replace(self.out_dir / "summary.json")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- start-up


def _quiet(*_a: object) -> None:
    pass


def start_and_probe(
    sysobj: systems.System, data_dir: Path, port: int, timeout: float
) -> tuple[systems.Launch, int | None, dict[str, Any]]:
    """Launch the system and produce one record with librdkafka until it succeeds.

    Start-up time = first successful produce (delivery report) minus the server process's own
    start time from /proc/<pid>/stat, so launcher scripts and JVM wrappers don't count."""
    from confluent_kafka import Producer

    bootstrap = f"127.0.0.1:{port}"
    delivered: dict[str, Any] = {}

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            delivered["at"] = procmon.boottime_now()
        else:
            delivered["err"] = str(err)

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "linger.ms": 0,
            "message.timeout.ms": int(timeout * 1000),
            "reconnect.backoff.ms": 5,
            "reconnect.backoff.max.ms": 20,
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": 20,
            "topic.metadata.refresh.fast.interval.ms": 10,
            "log_level": 0,
            "error_cb": _quiet,
        }
    )
    p.produce("bench-ready", b"ready", on_delivery=on_delivery)
    launch = sysobj.launch(data_dir, port)
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {}
    pid: int | None = None
    port_open_at = None
    while time.monotonic() < deadline:
        p.poll(0.002)
        if pid is None:
            pid = sysobj.server_pid(launch)
        if port_open_at is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
                port_open_at = procmon.boottime_now()
            except OSError:
                pass
        if "at" in delivered or "err" in delivered:
            break
        failed = sysobj.launcher_failed(launch)
        if failed:
            info["error"] = failed
            break
    else:
        info["error"] = f"no successful produce within {timeout:.0f}s: {systems.tail(launch.log)}"
    if "err" in delivered:
        info["error"] = f"probe produce failed: {delivered['err']}"
    p.flush(0)
    del p
    if pid is None:
        pid = sysobj.server_pid(launch)
    if "at" in delivered and pid is not None:
        started = procmon.start_time_boot_s(pid)
        if started is not None:
            info["startup_s"] = round(delivered["at"] - started, 3)
            if port_open_at is not None:
                info["port_open_s"] = round(port_open_at - started, 3)
        roots = [pid, *sysobj.storage_pids(launch)]
        info["cpu_to_ready_s"] = round(procmon.tree_cpu_seconds(roots), 3)
    # let a launcher that does its own readiness check finish before loading the server
    while launch.proc.poll() is None and isinstance(sysobj, systems.ScriptSystem):
        if time.monotonic() > deadline + 60:
            break
        time.sleep(0.1)
    return launch, pid, info


# ---------------------------------------------------------------- tests


def create_topic(bootstrap: str, topic: str, partitions: int) -> str | None:
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": _quiet})
    fut = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        fut[topic].result(timeout=60)
    except Exception as e:
        return str(e)
    # wait until every partition has a leader
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = a.list_topics(topic, timeout=10).topics.get(topic)
        ok = md is not None and md.error is None and len(md.partitions) == partitions
        if ok and all(pm.leader >= 0 for pm in md.partitions.values()):
            return None
        time.sleep(0.1)
    return "partitions did not get leaders within 30s"


def rdload(args: list[str], timeout: float, logfile: Path) -> dict[str, Any]:
    cmd = [PY, str(RDLOAD), *args]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        out, err = cp.stdout, cp.stderr
    except subprocess.TimeoutExpired:
        logfile.write_text(f"$ {' '.join(cmd)}\ntimed out after {timeout:.0f}s\n")
        return {"error": f"timed out after {timeout:.0f}s"}
    logfile.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{out}\n--- stderr\n{err}\n")
    try:
        return dict(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": f"rdload produced no result: {err.strip()[-500:]}"}


def rdload_cmd(args: list[str]) -> str:
    return " ".join([".venv/bin/python bench/harness/rdload.py", *args])


def run_test(
    ctx: Ctx, test: str, bootstrap: str, topic: str, wl: str, rep: int, state: dict[str, Any]
) -> dict[str, Any]:
    size_label, _parts, acks = parse_workload(wl)
    size = SIZES[size_label]
    num = ctx.mode["records"][size_label]
    tmo = ctx.args.tool_timeout
    lg = ctx.logs / f"r{rep}-{state['system']}-{wl}-{test}.log"
    row: dict[str, Any] = {}
    if test in ("java-produce", "java-latency"):
        rate = -1.0
        warmup = 0
        if test == "java-latency":
            rate = latency_rate(ctx, rep, wl, "java", state)
            if rate <= 0:
                return {"error": "no unthrottled java-produce result to derive the rate from"}
            num = max(1000, int(rate * ctx.mode["latency_s"]))
            if state["java_tools"] is None:  # Kafka 4.4's tool leaves its JVM's warm-up out
                warmup = int(rate * JAVA_WARMUP_S)
                num += warmup
            row["target_rate"] = rate
        a = javaload.producer_args(bootstrap, topic, num, size, acks, rate, warmup)
        row["cmd"] = javaload.command_line(javaload.PRODUCER_CLASS, a, state["java_tools"])
        rc, out, err = javaload.run_class(javaload.PRODUCER_CLASS, a, tmo, lg, state["java_tools"])
        try:
            row.update(javaload.parse_producer(out, size))
        except ValueError as e:
            row["error"] = tool_error(e, rc, err)
        if test == "java-produce" and "rec_per_s" in row:
            state["produced"] += int(row["records"])
            state["max_rate"]["java"] = float(row["rec_per_s"])
    elif test in ("rdkafka-produce", "rdkafka-latency"):
        a = ["produce", "--bootstrap", bootstrap, "--topic", topic, "--size", str(size)]
        a += ["--acks", acks]
        if test == "rdkafka-latency":
            rate = latency_rate(ctx, rep, wl, "rdkafka", state)
            if rate <= 0:
                return {"error": "no unthrottled rdkafka-produce result to derive the rate from"}
            num = max(1000, int(rate * ctx.mode["latency_s"]))
            a += ["--rate", str(int(rate))]
            row["target_rate"] = rate
        a += ["--num", str(num)]
        row["cmd"] = rdload_cmd(a)
        row.update(rdload(a, tmo, lg))
        if test == "rdkafka-produce" and "rec_per_s" in row:
            state["produced"] += int(row["records"])
            state["max_rate"]["rdkafka"] = float(row["rec_per_s"])
    elif test == "java-consume":
        n = state["produced"]
        if n <= 0:
            return {"error": "nothing was produced to consume"}
        a = javaload.consumer_args(bootstrap, topic, n, f"bench-{uuid.uuid4().hex[:8]}", 30000)
        row["cmd"] = javaload.command_line(javaload.CONSUMER_CLASS, a, state["java_tools"])
        rc, out, err = javaload.run_class(javaload.CONSUMER_CLASS, a, tmo, lg, state["java_tools"])
        try:
            row.update(javaload.parse_consumer(out))
            if int(row["records"]) < n:
                row["error"] = f"consumed {row['records']} of {n} records"
        except (ValueError, KeyError) as e:
            row["error"] = tool_error(e, rc, err)
    elif test == "rdkafka-consume":
        n = state["produced"]
        if n <= 0:
            return {"error": "nothing was produced to consume"}
        a = ["consume", "--bootstrap", bootstrap, "--topic", topic, "--num", str(n)]
        a += ["--size", str(size)]
        row["cmd"] = rdload_cmd(a)
        row.update(rdload(a, tmo, lg))
        if row.get("complete") is False:
            row["error"] = f"consumed {row.get('records')} of {n} records"
    elif test == "e2e-latency":
        n = ctx.mode["e2e"]
        a = javaload.e2e_args(bootstrap, topic, n, acks, size)
        row["cmd"] = javaload.command_line(javaload.E2E_CLASS, a, state["java_tools"])
        rc, out, err = javaload.run_class(javaload.E2E_CLASS, a, tmo, lg, state["java_tools"])
        try:
            row.update(javaload.parse_e2e(out, n))
        except ValueError as e:
            row["error"] = tool_error(e, rc, out + err)
    return row


def tool_error(parse_error: Exception, rc: int, output: str) -> str:
    """The tool's own complaint first (its first output line), then the details."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    head = lines[0] if lines else str(parse_error)
    return f"{head} (exit status {rc}; {parse_error})\n" + "\n".join(lines[-12:])


def latency_rate(ctx: Ctx, rep: int, wl: str, driver: str, state: dict[str, Any]) -> float:
    """Half of the maximum: Apache Kafka's from the same repeat (same offered load for every
    system) when --latency-basis=kafka and Kafka ran, else this system's own maximum."""
    base = None
    if ctx.args.latency_basis == "kafka":
        # this repeat's, else the latest earlier one's (systems take turns going first)
        for r in range(rep, -1, -1):
            base = ctx.kafka_max.get((r, wl, driver))
            if base is not None:
                break
    if base is None:
        base = state["max_rate"].get(driver)
    return round(0.5 * base) if base else 0.0


def warm_up(ctx: Ctx, bootstrap: str, rep: int, name: str) -> None:
    """Unmeasured produce + consume right after start-up, so JIT-compiled servers are not
    measured while still compiling their hot paths (it costs a native server nothing)."""
    n = ctx.mode["warmup"]
    if n <= 0:
        return
    topic = f"bench-warmup-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, 8)
    base = ["--bootstrap", bootstrap, "--topic", topic, "--num", str(n), "--size", "1024"]
    for mode in ("produce", "consume"):
        r = rdload(
            [mode, *base], ctx.args.tool_timeout, ctx.logs / f"r{rep}-{name}-warmup-{mode}.log"
        )
        if r.get("error"):
            log(f"  warm-up {mode} failed: {r['error'][:200]}")


# ---------------------------------------------------------------- profiling


def start_perf(ctx: Ctx, pid: int, label: str) -> tuple[subprocess.Popen[bytes], Path] | None:
    """With --perf record|stat, attach perf to the server for the length of one test."""
    if ctx.args.perf == "off":
        return None
    pdir = ctx.out_dir / "perf"
    pdir.mkdir(exist_ok=True)
    if ctx.args.perf == "record":
        out = pdir / f"{label}.data"
        cmd = ["perf", "record", *ctx.args.perf_args.split(), "-p", str(pid), "-o", str(out)]
    else:
        out = pdir / f"{label}.stat.txt"
        cmd = ["perf", "stat", "-p", str(pid), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # let perf attach before the load starts
    return proc, out


def stop_perf(prof: tuple[subprocess.Popen[bytes], Path]) -> str:
    proc, out = prof
    proc.send_signal(2)  # SIGINT: perf writes its data/summary and exits
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return str(out.relative_to(REPO)) if out.is_relative_to(REPO) else str(out)


# ---------------------------------------------------------------- one system, one repeat


def run_system(ctx: Ctx, sysobj: systems.System, rep: int, workloads: list[str]) -> None:
    name = sysobj.name
    data = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.args.work_dir))
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log(f"repeat {rep + 1}: starting {sysobj.label} on {bootstrap}")
    start_row: dict[str, Any] = {"system": name, "repeat": rep, "loadavg": machine.loadavg()}
    launch, pid, info = start_and_probe(sysobj, data, port, ctx.args.start_timeout)
    if "error" in info:
        # one retry on a fresh directory and port: a launcher can fail by bad luck (e.g. a
        # random cluster id that its argument parser takes for an option); both are recorded
        start_row["first_attempt_error"] = info["error"]
        log(f"  {name} failed to start, retrying once: {info['error'][:200]}")
        sysobj.stop(launch)
        if pid is not None:
            systems.stop_pid(pid, timeout=5)
        shutil.rmtree(data, ignore_errors=True)
        data = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.args.work_dir))
        port = free_port()
        bootstrap = f"127.0.0.1:{port}"
        launch, pid, info = start_and_probe(sysobj, data, port, ctx.args.start_timeout)
    start_row.update(info)
    mon = None
    try:
        if "error" in info or pid is None:
            start_row.setdefault("error", "server pid unknown")
            log(f"  {name} did not start: {start_row['error'][:300]}")
            return  # the row is recorded (once) in `finally`
        also = sysobj.storage_pids(launch)  # kop-pulsar: its Pulsar counts as its storage
        mon = procmon.ProcMonitor(pid, also=also).start()
        rss = procmon.rss_kib([pid, *also])
        start_row["rss_ready_mib"] = round(rss / 1024, 1) if rss else None
        if also:
            start_row["storage_pids_counted"] = len(also)
        up_s, rss_mib = info.get("startup_s"), start_row["rss_ready_mib"]
        log(f"  up: {up_s} s to first produce, RSS {rss_mib} MiB")
        warm_up(ctx, bootstrap, rep, name)
        for wl in workloads:
            _size, parts, _acks = parse_workload(wl)
            topic = f"bench-{wl}-r{rep}-{uuid.uuid4().hex[:6]}".replace("KB", "kb").lower()
            err = create_topic(bootstrap, topic, parts)
            state: dict[str, Any] = {
                "system": name,
                "produced": 0,
                "max_rate": {},
                "java_tools": sysobj.java_tools_version,
            }
            for i, test in enumerate(ctx.args.tests):
                if test == "e2e-latency" and parts != 1:
                    continue
                if err is not None:
                    row = {"error": f"create topic: {err}"}
                else:
                    # The consume tests read what the produce tests before them wrote: the
                    # cache is dropped before the first test and once no consume test is left.
                    reads_ahead = any(t.endswith("-consume") for t in ctx.args.tests[i:])
                    settled = machine.settle(drop_caches=i == 0 or not reads_ahead)
                    prof = start_perf(ctx, pid, f"r{rep}-{name}-{wl}-{test}")
                    tok = mon.mark()
                    row = run_test(ctx, test, bootstrap, topic, wl, rep, state)
                    row.update(settled)
                    w = mon.window(tok)
                    if prof is not None:
                        row["perf_output"] = stop_perf(prof)
                    row.update(server_cpu_s=w.cpu_s, server_peak_rss_mib=w.peak_rss_mib)
                    if w.storage_cpu_s is not None:  # kop-pulsar: how much of it is Pulsar's
                        row["storage_cpu_s"] = w.storage_cpu_s
                    row["wall_s"] = w.wall_s
                    row["loadavg1"] = machine.loadavg()[0]  # other work on the box (noise)
                row.update(system=name, repeat=rep, workload=wl, test=test)
                ctx.summary["results"].append(row)
                brief = {
                    k: row[k]
                    for k in ("rec_per_s", "mb_per_s", "lat_p50_ms", "lat_p99_ms", "error")
                    if k in row
                }
                log(f"  {wl:<16} {test:<16} {brief}")
            if name == "kafka":
                for drv in ("java", "rdkafka"):
                    if drv in state["max_rate"]:
                        ctx.kafka_max[(rep, wl, drv)] = state["max_rate"][drv]
            ctx.save()
        start_row.update(mon.lifetime())
    finally:
        if mon is not None:
            mon.stop()
        log(f"  stopping {name}")
        try:
            sysobj.stop(launch)
        finally:
            if pid is not None:
                systems.stop_pid(pid, timeout=5)
            shutil.rmtree(data, ignore_errors=True)
        ctx.summary["starts"].append(start_row)
        ctx.save()


# ---------------------------------------------------------------- order, pinning, summary


def run_order(chosen: list[systems.System], rep: int, order: str) -> list[systems.System]:
    """Systems in the order of repeat ``rep``: Kafka first in the first repeat (its maximum
    rates set the load of the latency tests), then each repeat starts one system later."""
    if order == "fixed" or not chosen:
        return chosen
    k = rep % len(chosen)
    return chosen[k:] + chosen[:k]


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def parse_pin(ap: argparse.ArgumentParser, spec: str | None) -> tuple[set[int], set[int]] | None:
    if not spec:
        return None
    try:
        server, client = (_cpu_list(x) for x in spec.split(":"))
    except ValueError:
        ap.error(f"--pin {spec!r}: want SERVER_CPUS:CLIENT_CPUS, e.g. 0:1 or 0-1:2-3")
    usable = os.sched_getaffinity(0)
    if not server or not client or not (server | client) <= usable:
        ap.error(f"--pin {spec!r}: CPUs must be among {sorted(usable)}, both sides non-empty")
    if server & client:
        ap.error(f"--pin {spec!r}: the server and the client CPUs overlap")
    return server, client


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def print_medians(summary: dict[str, Any]) -> None:
    """Per workload and test: each system's median (min-max) over the repeats."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in summary["results"]:
        if not r.get("error"):
            by_sys = groups.setdefault((r["workload"], r["test"]), {})
            by_sys.setdefault(r["system"], []).append(r)
    if not groups:
        return
    log("medians (min-max) over repeats:")
    for (wl, test), by_sys in groups.items():
        for name, rows in by_sys.items():
            rate = _spread([float(x["rec_per_s"]) for x in rows if "rec_per_s" in x], ",.0f")
            p99 = _spread([float(x["lat_p99_ms"]) for x in rows if "lat_p99_ms" in x], ".1f")
            log(f"  {wl:<16} {test:<16} {name:<11} rec/s {rate}  p99 ms {p99}  n={len(rows)}")
    starts: dict[str, list[float]] = {}
    for st in summary["starts"]:
        if "startup_s" in st:
            starts.setdefault(st["system"], []).append(float(st["startup_s"]))
    for name, vals in starts.items():
        log(f"  start to first produce  {name:<11} s {_spread(vals, '.3f')}")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"the quick profile (~10 min for all four systems here): workloads {QUICK_WORKLOADS}, "
        f"tests {QUICK_TESTS}, {QUICK_REPEATS} repeats, shorter runs",
    )
    ap.add_argument(
        "--systems",
        default="kafka,kop,kop-pulsar,koP",
        help="comma list from: " + ", ".join(systems.ALL) + " (default: all)",
    )
    ap.add_argument(
        "--workloads",
        default=None,
        help="comma list of workload names or globs, e.g. '1KB-*,100B-8p-acksall'; "
        "all: " + ", ".join(all_workloads()) + " (default: all; --quick: " + QUICK_WORKLOADS + ")",
    )
    ap.add_argument(
        "--tests", default=None, help="comma list from: " + ", ".join(TESTS) + " (default: all)"
    )
    ap.add_argument(
        "--repeat", type=int, default=None, help=f"repeats (default 3, quick {QUICK_REPEATS})"
    )
    ap.add_argument("--records-1kb", type=int, help="records per unthrottled 1 KB produce")
    ap.add_argument("--records-100b", type=int, help="records per unthrottled 100 B produce")
    ap.add_argument("--latency-seconds", type=float, help="length of each fixed-rate run")
    ap.add_argument("--e2e-records", type=int, help="round trips per EndToEndLatency run")
    ap.add_argument("--warmup-records", type=int, help="1 KB records produced+consumed unmeasured")
    ap.add_argument(
        "--latency-basis",
        choices=["kafka", "self"],
        default="kafka",
        help="fixed rate = half of Kafka's max (same load for all, default) or of each system's",
    )
    ap.add_argument(
        "--pin",
        metavar="SERVER_CPUS:CLIENT_CPUS",
        help="pin the server (and everything its launcher starts) and the load generators to "
        "separate CPUs, e.g. 0:1 or 0-1:2-3 (taskset lists)",
    )
    ap.add_argument(
        "--order",
        choices=["rotate", "fixed"],
        default="rotate",
        help="rotate: each repeat starts with the next system (Kafka first in the first repeat), "
        "so slow drifts of the machine's load do not always hit the same system; fixed: "
        "always --systems order with Kafka first",
    )
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--tool-timeout", type=float, default=600.0)
    ap.add_argument("--work-dir", default=None, help="where server data lives (default: /tmp)")
    ap.add_argument("--out", default=None, help="result dir (default bench/results/<run-id>)")
    ap.add_argument("--note", default="", help="free text stored with the results")
    ap.add_argument(
        "--perf",
        choices=["off", "record", "stat"],
        default="off",
        help="attach `perf record`/`perf stat` to the server during every test "
        "(files in <result dir>/perf/; see bench/README.md)",
    )
    ap.add_argument(
        "--perf-args",
        default="-F 499 -g",
        help="options for perf record (default '-F 499 -g'; '--call-graph dwarf' for Rust "
        "built without frame pointers)",
    )
    args = ap.parse_args(argv)

    mode = json.loads(json.dumps(MODES["quick" if args.quick else "full"]))
    if args.records_1kb:
        mode["records"]["1KB"] = args.records_1kb
    if args.records_100b:
        mode["records"]["100B"] = args.records_100b
    if args.latency_seconds:
        mode["latency_s"] = args.latency_seconds
    if args.e2e_records:
        mode["e2e"] = args.e2e_records
    if args.warmup_records is not None:
        mode["warmup"] = args.warmup_records
    repeat = args.repeat if args.repeat is not None else (QUICK_REPEATS if args.quick else 3)
    if args.workloads is None:
        args.workloads = QUICK_WORKLOADS if args.quick else "*"
    if args.tests is None:
        args.tests = QUICK_TESTS if args.quick else ",".join(TESTS)
    pin = parse_pin(ap, args.pin)

    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    for n in names:
        if n not in systems.ALL:
            ap.error(f"unknown system {n!r}; choose from {', '.join(systems.ALL)}")
    names.sort(key=lambda n: n != "kafka")  # Kafka first: its max rates set the latency load
    pats = [p.strip() for p in args.workloads.split(",") if p.strip()]
    workloads = [w for w in all_workloads() if any(fnmatch.fnmatch(w, p) for p in pats)]
    if not workloads:
        ap.error(f"no workload matches {args.workloads!r}; known: {', '.join(all_workloads())}")
    args.tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    for t in args.tests:
        if t not in TESTS:
            ap.error(f"unknown test {t!r}; choose from {', '.join(TESTS)}")

    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    out_dir = Path(args.out) if args.out else HERE / "results" / run_id
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="kop-bench-", dir=args.work_dir))
    args.work_dir = str(work_root)

    summary: dict[str, Any] = {
        "run_id": run_id,
        "command": shlex.join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])]),
        "note": args.note,
        "mode": "quick" if args.quick else "full",
        "sizes": mode,
        "repeat": repeat,
        "latency_basis": args.latency_basis,
        "pin": {"server": sorted(pin[0]), "client": sorted(pin[1])} if pin else None,
        "order": args.order,
        "workloads": workloads,
        "tests": args.tests,
        "machine": machine.describe(),
        # settings that reach the launchers through the environment (e.g. KOP_FSYNC=never)
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("KOP_", "KAFKA_")) and "PASS" not in k and "TOKEN" not in k
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "systems": {},
        "starts": [],
        "results": [],
    }
    ctx = Ctx(args, mode, out_dir, logs, summary)

    chosen: list[systems.System] = []
    if pin:
        # this process and every load generator it starts run on the client CPUs
        os.sched_setaffinity(0, pin[1])
    for n in names:
        s = systems.ALL[n]()
        if pin:
            s.cpus = pin[0]
        why = s.unavailable()
        summary["systems"][n] = {"label": s.label, "available": why is None, "reason": why}
        if why is None:
            chosen.append(s)
        else:
            log(f"{n}: {why.splitlines()[0] if why else ''}")
    ctx.save()
    log(f"results -> {out_dir}")
    t0 = time.monotonic()
    try:
        for rep in range(repeat):
            for s in run_order(chosen, rep, args.order):
                run_system(ctx, s, rep, workloads)
    except KeyboardInterrupt:
        log("interrupted; servers were stopped, partial results kept")
        summary["interrupted"] = True
    finally:
        summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        summary["elapsed_s"] = round(time.monotonic() - t0, 1)
        summary["machine"]["loadavg_at_end"] = " ".join(map(str, machine.loadavg()))
        ctx.save()
        shutil.rmtree(work_root, ignore_errors=True)
    print_medians(summary)
    errs = [r for r in summary["results"] if r.get("error")]
    log(
        f"done in {summary['elapsed_s']:.0f}s: {len(summary['results'])} results, "
        f"{len(errs)} with errors -> {out_dir / 'summary.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
