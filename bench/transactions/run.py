#!/usr/bin/env python3
"""Transactional produce and read_committed consume, kop vs Apache Kafka, side by side.

    .venv/bin/python bench/transactions/run.py --quick                 # ~1 min per system
    .venv/bin/python bench/transactions/run.py [--systems kafka,kop] [--repeat 3] \\
        [--records 200000] [--per-txn 100] [--size 1024] [--partitions 8] [--label L]
    .venv/bin/python bench/transactions/report.py [SUMMARY] [--plot PNG]   # table + plot

Each repeat starts every selected system in turn (Kafka first) through bench/harness, as
bench/run.py does, warms it up (unmeasured transactional produce and a consume), then on one
fresh topic of --partitions partitions:

- java-txn-produce: TxnPerf.java (kafka-clients) — --records records of --size bytes in
  transactions of --per-txn records, record i to partition i % partitions (each transaction
  writes every partition, so it ends with one COMMIT marker per partition);
- rdkafka-txn-produce: txnload.py (confluent-kafka), the same;
- rdkafka-consume-committed / -uncommitted: bench/harness/rdload.py consume of the topic (both
  produce tests' records) with isolation.level read_committed / read_uncommitted (the same data
  read both ways: the cost of read_committed on the server and in the client; odd repeats
  run them in the other order);
- java-consume-committed: ConsumerPerformance with isolation.level=read_committed.

Per test: the driver's numbers plus server CPU seconds and peak RSS (procmon). Results go to
bench/results/txn-<time>[-label]/summary.json (tool logs in logs/, not committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from harness import javaload, machine, procmon, systems  # noqa: E402
from run import create_topic, free_port, log, rdload, start_and_probe  # noqa: E402

PY = sys.executable
TESTS = (
    "java-txn-produce",
    "rdkafka-txn-produce",
    "rdkafka-consume-committed",
    "rdkafka-consume-uncommitted",
    "java-consume-committed",
)
MODES = {
    "quick": {"records": 20_000, "warmup": 10_000},
    "full": {"records": 200_000, "warmup": 40_000},
}


def compile_txnperf(out: Path) -> str:
    """TxnPerf.java compiled against the Kafka jars; returns the classpath to run it with."""
    cp = subprocess.run(
        [str(javaload.KAFKA_SH), "classpath"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["javac", "-nowarn", "-d", str(out), "-cp", cp, str(HERE / "TxnPerf.java")], check=True
    )
    return f"{out}:{cp}"


def txnperf(classpath: str, args: list[str], timeout: float, logfile: Path) -> dict[str, Any]:
    """TxnPerf with the load generator settings of bench/harness/javaload (C2, 1 GiB heap)."""
    cmd = ["java", "-Xmx1g", "-Xms256m", "-XX:+UseSerialGC"]
    cmd += [f"-Dlog4j2.configurationFile={REPO / 'scripts/kafka/tools-log4j2.properties'}"]
    cmd += ["-Dkop.tools.loglevel=error", "-cp", classpath, "TxnPerf", *args]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        logfile.write_text(f"$ {' '.join(cmd)}\ntimed out after {timeout:.0f}s\n")
        return {"error": f"timed out after {timeout:.0f}s"}
    logfile.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{cp.stdout}\n--- stderr\n{cp.stderr}\n")
    try:
        return dict(json.loads(cp.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": f"TxnPerf exited {cp.returncode}: {cp.stderr.strip()[-500:]}"}


def txnload(args: list[str], timeout: float, logfile: Path) -> dict[str, Any]:
    """txnload.py in its own process (same calling convention as run.rdload)."""
    cmd = [PY, str(HERE / "txnload.py"), *args]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    logfile.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{cp.stdout}\n--- stderr\n{cp.stderr}\n")
    try:
        return dict(json.loads(cp.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": f"txnload produced no result: {cp.stderr.strip()[-500:]}"}


def run_test(
    test: str, a: argparse.Namespace, bootstrap: str, topic: str, state: dict[str, Any], lg: Path
) -> dict[str, Any]:
    n, size, parts = a.records, a.size, a.partitions
    if test == "java-txn-produce":
        args = [bootstrap, topic, str(parts), str(n), str(size), str(a.per_txn)]
        row = txnperf(state["classpath"], [*args, f"bench-{uuid.uuid4().hex[:8]}"], a.timeout, lg)
        row["cmd"] = "java TxnPerf " + " ".join(args)
    elif test == "rdkafka-txn-produce":
        args = ["--bootstrap", bootstrap, "--topic", topic, "--partitions", str(parts)]
        args += ["--num", str(n), "--size", str(size), "--per-txn", str(a.per_txn)]
        row = txnload(args, a.timeout, lg)
        row["cmd"] = "bench/transactions/txnload.py " + " ".join(args)
    elif test.startswith("rdkafka-consume-"):
        isolation = "read_" + test.rsplit("-", 1)[1]
        args = ["consume", "--bootstrap", bootstrap, "--topic", topic, "--num"]
        args += [str(state["produced"]), "--size", str(size)]
        args += ["--prop", f"isolation.level={isolation}"]
        row = rdload(args, a.timeout, lg)
        row["cmd"] = "bench/harness/rdload.py " + " ".join(args)
        if row.get("complete") is False:
            row["error"] = f"consumed {row.get('records')} of {state['produced']} records"
    else:  # java-consume-committed
        args = javaload.consumer_args(
            bootstrap, topic, state["produced"], f"bench-{uuid.uuid4().hex[:8]}", 30000
        )
        args += ["--command-property", "isolation.level=read_committed"]
        row = {"cmd": javaload.command_line(javaload.CONSUMER_CLASS, args)}
        rc, out, err = javaload.run_class(javaload.CONSUMER_CLASS, args, a.timeout, lg)
        try:
            row.update(javaload.parse_consumer(out))
            if int(row["records"]) < state["produced"]:
                row["error"] = f"consumed {row['records']} of {state['produced']} records"
        except (ValueError, KeyError) as e:
            row["error"] = f"{e} (exit status {rc}): {err.strip()[-500:]}"
    if test.endswith("-produce") and "records" in row and not row.get("error"):
        state["produced"] += int(row["records"])
    return row


def ordered(tests: list[str], rep: int) -> list[str]:
    """The tests in their order, except that odd repeats read read_uncommitted before
    read_committed: the two read the same data, and the first read of a topic may differ from
    the second (page cache, client start-up), so the order alternates to cancel that out."""
    pair = ["rdkafka-consume-committed", "rdkafka-consume-uncommitted"]
    out = list(tests)
    if rep % 2 == 1 and all(t in out for t in pair):
        i, j = out.index(pair[0]), out.index(pair[1])
        out[i], out[j] = out[j], out[i]
    return out


def warm_up(a: argparse.Namespace, bootstrap: str, logs: Path, label: str) -> None:
    """Unmeasured transactional produce and a read_committed consume right after start-up."""
    if a.warmup <= 0:
        return
    topic = f"bench-txn-warmup-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, a.partitions)
    base = ["--bootstrap", bootstrap, "--topic", topic, "--num", str(a.warmup), "--size", "1024"]
    r = txnload(
        [*base, "--partitions", str(a.partitions), "--per-txn", str(a.per_txn)],
        a.timeout,
        logs / f"{label}-warmup-produce.log",
    )
    if r.get("error"):
        log(f"  warm-up produce failed: {r['error'][:200]}")
    r = rdload(
        ["consume", *base, "--prop", "isolation.level=read_committed"],
        a.timeout,
        logs / f"{label}-warmup-consume.log",
    )
    if r.get("error"):
        log(f"  warm-up consume failed: {r['error'][:200]}")


def run_system(
    a: argparse.Namespace, sysobj: systems.System, rep: int, summary: dict[str, Any], out: Path
) -> None:
    name = sysobj.name
    data = Path(tempfile.mkdtemp(prefix=f"txn-{name}-"))
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log(f"repeat {rep + 1}: starting {sysobj.label} on {bootstrap}")
    start: dict[str, Any] = {"system": name, "repeat": rep, "loadavg": machine.loadavg()}
    launch, pid, info = start_and_probe(sysobj, data, port, a.start_timeout)
    start.update(info)
    mon = None
    try:
        if "error" in info or pid is None:
            start.setdefault("error", "server pid unknown")
            log(f"  {name} did not start: {start['error'][:300]}")
            return
        mon = procmon.ProcMonitor(pid, also=sysobj.storage_pids(launch)).start()
        warm_up(a, bootstrap, out / "logs", f"r{rep}-{name}")
        topic = f"bench-txn-r{rep}-{uuid.uuid4().hex[:6]}"
        err = create_topic(bootstrap, topic, a.partitions)
        state: dict[str, Any] = {"produced": 0, "classpath": a.classpath}
        for test in ordered(a.tests, rep):
            if err is not None:
                row: dict[str, Any] = {"error": f"create topic: {err}"}
            else:
                tok = mon.mark()
                row = run_test(
                    test, a, bootstrap, topic, state, out / "logs" / f"r{rep}-{name}-{test}.log"
                )
                w = mon.window(tok)
                row.update(
                    server_cpu_s=w.cpu_s, server_peak_rss_mib=w.peak_rss_mib, wall_s=w.wall_s
                )
                row["loadavg1"] = machine.loadavg()[0]
            row.update(system=name, repeat=rep, test=test)
            summary["results"].append(row)
            brief = {
                k: row[k]
                for k in ("rec_per_s", "mb_per_s", "txn_per_s", "commit_p50_ms", "error")
                if k in row
            }
            log(f"  {test:<28} {brief}")
            save(summary, out)
        start.update(mon.lifetime())
    finally:
        if mon is not None:
            mon.stop()
        log(f"  stopping {name}")
        try:
            sysobj.stop(launch)
        finally:
            if pid is not None:
                systems.stop_pid(pid, timeout=5)
            if any(
                r.get("error")
                for r in summary["results"]
                if r["system"] == name and r["repeat"] == rep
            ):
                keep_server_logs(data, out / "logs" / f"r{rep}-{name}-server")
            shutil.rmtree(data, ignore_errors=True)
        summary["starts"].append(start)
        save(summary, out)


def keep_server_logs(data: Path, prefix: Path) -> None:
    """The server's own logs (the *.log files at the top of its data directory: kop's launcher
    log, kafka.sh's kafka.log), kept when a test failed, before the directory is deleted."""
    for f in data.glob("*.log"):
        shutil.copyfile(f, f"{prefix}-{f.name}")


def save(summary: dict[str, Any], out: Path) -> None:
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "summary.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="20,000 records per produce, 1 repeat")
    ap.add_argument("--systems", default="kafka,kop", help="from: " + ", ".join(systems.ALL))
    ap.add_argument("--tests", default=",".join(TESTS), help="from: " + ", ".join(TESTS))
    ap.add_argument("--repeat", type=int, default=None, help="default 3, quick 1")
    ap.add_argument("--records", type=int, default=None, help="records per produce test")
    ap.add_argument("--warmup", type=int, default=None, help="records of the unmeasured warm-up")
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--timeout", type=float, default=600.0, help="per tool run")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=None, help="result dir (default bench/results/txn-<time>)")
    a = ap.parse_args(argv)
    mode = MODES["quick" if a.quick else "full"]
    a.records = a.records or mode["records"]
    a.warmup = mode["warmup"] if a.warmup is None else a.warmup
    repeat = a.repeat if a.repeat is not None else (1 if a.quick else 3)
    a.tests = [t for t in a.tests.split(",") if t]
    for t in a.tests:
        if t not in TESTS:
            ap.error(f"unknown test {t!r}; choose from {', '.join(TESTS)}")
    names = sorted((s for s in a.systems.split(",") if s), key=lambda n: n != "kafka")
    for n in names:
        if n not in systems.ALL:
            ap.error(f"unknown system {n!r}; choose from {', '.join(systems.ALL)}")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (
        Path(a.out)
        if a.out
        else BENCH / "results" / f"txn-{stamp}{'-' + a.label if a.label else ''}"
    )
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kop-bench-txn-") as tmp:
        a.classpath = compile_txnperf(Path(tmp) / "classes")
        summary: dict[str, Any] = {
            "command": " ".join(
                [".venv/bin/python", "bench/transactions/run.py", *(argv or sys.argv[1:])]
            ),
            "machine": machine.describe(),
            "args": {k: v for k, v in vars(a).items() if k != "classpath"},
            "repeat": repeat,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "systems": {},
            "starts": [],
            "results": [],
        }
        chosen = []
        for n in names:
            s = systems.ALL[n]()
            why = s.unavailable()
            summary["systems"][n] = {"label": s.label, "available": why is None, "reason": why}
            if why is None:
                chosen.append(s)
            else:
                log(f"{n}: {why.splitlines()[0]}")
        log(f"results -> {out}")
        t0 = time.monotonic()
        for rep in range(repeat):
            for s in chosen:
                run_system(a, s, rep, summary, out)
        summary["elapsed_s"] = round(time.monotonic() - t0, 1)
        summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        save(summary, out)
    errs = [r for r in summary["results"] if r.get("error")]
    log(
        f"done in {summary['elapsed_s']:.0f}s, {len(errs)} results with errors"
        f" -> {out / 'summary.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
