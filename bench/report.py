#!/usr/bin/env python3
"""Turn a bench/run.py result into docs/benchmarks.md and PNG plots in docs/benchmarks/.

    .venv/bin/python bench/report.py [bench/results/<run-id>/summary.json] [--quick RESULT]

Without an argument the newest non-quick result under bench/results/ is used. ``--quick`` adds
the table of a smoke run (e.g. the matching --quick run) as an appendix.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOC = REPO / "docs" / "benchmarks.md"
IMG = REPO / "docs" / "benchmarks"

ORDER = ["kafka", "kop", "kop-pulsar", "koP"]
COLORS = {"kafka": "#4c72b0", "kop": "#dd8452", "kop-pulsar": "#55a868", "koP": "#8172b3"}
THROUGHPUT_TESTS = ["java-produce", "rdkafka-produce", "java-consume", "rdkafka-consume"]
LATENCY_TESTS = ["java-latency", "rdkafka-latency", "e2e-latency"]
TEST_TEXT = {
    "java-produce": "ProducerPerformance, unthrottled",
    "rdkafka-produce": "librdkafka producer, unthrottled",
    "java-consume": "ConsumerPerformance (group, fetch phase)",
    "rdkafka-consume": "librdkafka consumer (assign, from offset 0)",
    "java-latency": "ProducerPerformance at a fixed rate: send-to-ack latency",
    "rdkafka-latency": "librdkafka at a fixed rate: produce-to-delivery-report latency",
    "e2e-latency": "EndToEndLatency: one record at a time, produce to consume",
}


# ---------------------------------------------------------------- aggregation


def spread(values: list[float]) -> tuple[float, float, float] | None:
    v = [x for x in values if x is not None]
    if not v:
        return None
    return min(v), statistics.median(v), max(v)


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def cell(s: tuple[float, float, float] | None, n: int) -> str:
    if s is None:
        return "-"
    lo, med, hi = s
    if n <= 1 or lo == hi:
        return fmt(med)
    return f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})"


class Data:
    def __init__(self, summary: dict[str, Any]) -> None:
        self.s = summary
        kp = summary["systems"].get("koP")
        if kp and "(Pulsar " in kp["label"]:  # older runs stored a longer label
            kp["label"] = f"KoP {kp['label'].split()[1]} (StreamNative)"
        self.systems = [n for n in ORDER if n in summary["systems"]]
        self.measured = [
            n
            for n in self.systems
            if any(r["system"] == n and not r.get("error") for r in summary["results"])
        ]
        # (system, workload, test) -> {repeat: row}
        self.rows: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
        for r in summary["results"]:
            if r.get("error"):
                continue
            self.rows[(r["system"], r["workload"], r["test"])][r["repeat"]] = r
        self.starts: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for r in summary["starts"]:
            if not r.get("error"):
                self.starts[r["system"]][r["repeat"]] = r

    def values(self, system: str, wl: str, test: str, key: str) -> list[float]:
        return [
            r[key] for r in self.rows.get((system, wl, test), {}).values() if r.get(key) is not None
        ]

    def stat(self, system: str, wl: str, test: str, key: str) -> tuple[float, float, float] | None:
        return spread(self.values(system, wl, test, key))

    def ratio(self, system: str, wl: str, test: str, key: str) -> tuple[float, float, float] | None:
        """system / Kafka, paired by repeat (same repeat = same minutes of machine noise)."""
        mine = self.rows.get((system, wl, test), {})
        ref = self.rows.get(("kafka", wl, test), {})
        rs = []
        for rep, row in mine.items():
            a, b = row.get(key), ref.get(rep, {}).get(key)
            if a is not None and b:
                rs.append(a / b)
        return spread(rs)

    def start_stat(self, system: str, key: str) -> tuple[float, float, float] | None:
        return spread([r.get(key) for r in self.starts.get(system, {}).values()])

    def start_ratio(self, system: str, key: str) -> tuple[float, float, float] | None:
        rs = []
        for rep, row in self.starts.get(system, {}).items():
            a, b = row.get(key), self.starts.get("kafka", {}).get(rep, {}).get(key)
            if a is not None and b:
                rs.append(a / b)
        return spread(rs)

    def cpu_per_mrec(self, system: str, wl: str, test: str) -> tuple[float, float, float] | None:
        v = []
        for r in self.rows.get((system, wl, test), {}).values():
            if r.get("server_cpu_s") is not None and r.get("records"):
                v.append(r["server_cpu_s"] / r["records"] * 1e6)
        return spread(v)


# ---------------------------------------------------------------- plots


def bar_groups(ax: Any, d: Data, wls: list[str], test: str, key: str, ylabel: str) -> None:
    systems = d.measured or ["kafka"]
    width = 0.8 / max(1, len(systems))
    for i, sysname in enumerate(systems):
        meds, lo, hi = [], [], []
        for wl in wls:
            s = d.stat(sysname, wl, test, key)
            if s is None:
                meds.append(0.0)
                lo.append(0.0)
                hi.append(0.0)
            else:
                meds.append(s[1])
                lo.append(s[1] - s[0])
                hi.append(s[2] - s[1])
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(wls))]
        for x, m in zip(xs, meds, strict=True):
            if m == 0.0:
                ax.text(x, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=6)
        ax.bar(
            xs,
            meds,
            width,
            yerr=[lo, hi],
            capsize=2,
            label=d.s["systems"][sysname]["label"],
            color=COLORS.get(sysname),
        )
    ax.set_xticks(range(len(wls)))
    ax.set_xticklabels(wls, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"{test}: {TEST_TEXT[test]}", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def plot_throughput(d: Data, path: Path) -> None:
    wls = d.s["workloads"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, test in zip(axes.flat, THROUGHPUT_TESTS, strict=True):
        bar_groups(ax, d, wls, test, "mb_per_s", "MB/s (10^6 B/s)")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Throughput, median of repeats; error bars = min..max", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(d: Data, path: Path) -> None:
    wls = d.s["workloads"]
    fig, axes = plt.subplots(3, 1, figsize=(12, 10))
    for ax, test in zip(axes.flat, LATENCY_TESTS, strict=True):
        these = [w for w in wls if any(d.values(s, w, test, "lat_p99_ms") for s in d.measured)]
        bar_groups(ax, d, these or wls, test, "lat_p99_ms", "p99 latency, ms")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("p99 latency at a fixed rate (half of Kafka's max); min..max bars", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ratios(d: Data, path: Path) -> bool:
    others = [s for s in d.measured if s != "kafka"]
    if not others:
        return False
    metrics = [
        ("java-produce", "rec_per_s", "produce rec/s (java)"),
        ("rdkafka-produce", "rec_per_s", "produce rec/s (rdkafka)"),
        ("java-consume", "rec_per_s", "consume rec/s (java)"),
        ("rdkafka-consume", "rec_per_s", "consume rec/s (rdkafka)"),
        ("java-latency", "lat_p99_ms", "p99 at half load (java)"),
        ("rdkafka-latency", "lat_p99_ms", "p99 at half load (rdkafka)"),
    ]
    fig, ax = plt.subplots(figsize=(12, 5))
    labels = []
    width = 0.8 / len(others)
    for i, sysname in enumerate(others):
        meds, lo, hi = [], [], []
        labels = []
        for test, key, text in metrics:
            vals = [d.ratio(sysname, wl, test, key) for wl in d.s["workloads"]]
            meds_wl = [v[1] for v in vals if v]
            if not meds_wl:
                meds.append(0.0)
                lo.append(0.0)
                hi.append(0.0)
            else:
                g = statistics.geometric_mean(meds_wl)
                meds.append(g)
                # max(0, ...): the geometric mean of one value can differ from it by a rounding
                lo.append(max(0.0, g - min(meds_wl)))
                hi.append(max(0.0, max(meds_wl) - g))
            labels.append(text)
        for key, text in (("startup_s", "start to first produce"), ("vmhwm_mib", "peak RSS")):
            r = d.start_ratio(sysname, key)
            meds.append(r[1] if r else 0.0)
            lo.append(r[1] - r[0] if r else 0.0)
            hi.append(r[2] - r[1] if r else 0.0)
            labels.append(text)
        xs = [j + (i - (len(others) - 1) / 2) * width for j in range(len(labels))]
        for x, m in zip(xs, meds, strict=True):
            if m == 0.0:
                ax.text(x, 1.0, "n/a", ha="center", va="bottom", fontsize=7)
        meds = [m if m > 0 else float("nan") for m in meds]
        ax.errorbar(
            xs,
            meds,
            yerr=[lo, hi],
            fmt="o",
            ms=8,
            capsize=4,
            color=COLORS.get(sysname),
            label=d.s["systems"][sysname]["label"],
        )
        for x, m in zip(xs, meds, strict=True):
            if m == m:  # not NaN
                ax.annotate(
                    f"x{m:.2f}",
                    (x, m),
                    textcoords="offset points",
                    xytext=(8, 0),
                    fontsize=7,
                    va="center",
                )
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ratio to Apache Kafka (same run)")
    ax.set_title(
        "Ratio to Apache Kafka (log scale; throughput: higher is better, latency/start/RSS: "
        "lower is better).\nThroughput/latency: geometric mean over workloads, whiskers span the "
        "per-workload medians; start-up/RSS: median over repeats, whiskers min..max",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_resources(d: Data, path: Path) -> None:
    systems = d.measured or ["kafka"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    items = [
        ("startup_s", "start to first produce, s"),
        ("vmhwm_mib", "peak RSS (VmHWM), MiB"),
        ("rss_ready_mib", "RSS when ready, MiB"),
    ]
    for ax, (key, text) in zip(axes, items, strict=True):
        meds, lo, hi = [], [], []
        for s in systems:
            st = d.start_stat(s, key)
            if st is None:
                meds.append(0.0)
                lo.append(0.0)
                hi.append(0.0)
            else:
                meds.append(st[1])
                lo.append(st[1] - st[0])
                hi.append(st[2] - st[1])
        ax.bar(
            range(len(systems)),
            meds,
            yerr=[lo, hi],
            capsize=3,
            color=[COLORS.get(s) for s in systems],
        )
        for x, m in enumerate(meds):
            ax.annotate(
                f"{fmt(m)}",
                (x, m),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, fontsize=8)
        ax.set_title(text, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- markdown


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def cols(d: Data) -> list[str]:
    return d.measured or ["kafka"]


def section_throughput(d: Data) -> str:
    n = d.s["repeat"]
    parts = []
    for test in THROUGHPUT_TESTS:
        if test not in d.s["tests"]:
            continue
        rows = []
        for wl in d.s["workloads"]:
            row = [wl]
            for s in cols(d):
                rec = d.stat(s, wl, test, "rec_per_s")
                if rec is None:
                    row.append("failed (see Errors)")
                    continue
                c = f"{cell(rec, n)} rec/s<br>{cell(d.stat(s, wl, test, 'mb_per_s'), n)} MB/s"
                if s != "kafka" and (r := d.ratio(s, wl, test, "rec_per_s")):
                    c += f"<br>**x{r[1]:.2f}**"
                    if r[0] != r[2]:
                        c += f" ({r[0]:.2f}-{r[2]:.2f})"
                row.append(c)
            rows.append(row)
        hdr = ["workload", *[d.s["systems"][s]["label"] for s in cols(d)]]
        parts.append(f"### {test} — {TEST_TEXT[test]}\n\n{table(hdr, rows)}")
    return "\n\n".join(parts)


def section_latency(d: Data) -> str:
    parts = []
    for test in LATENCY_TESTS:
        if test not in d.s["tests"]:
            continue
        rows = []
        for wl in d.s["workloads"]:
            if not any(d.values(s, wl, test, "lat_p50_ms") for s in d.measured):
                continue
            rate = d.stat("kafka", wl, test, "target_rate")
            row = [wl + (f" @ {fmt(rate[1])} rec/s" if rate else "")]
            for s in cols(d):
                if d.stat(s, wl, test, "lat_p50_ms") is None:
                    row.append("failed (see Errors)")
                    continue
                p = [d.stat(s, wl, test, k) for k in ("lat_p50_ms", "lat_p99_ms", "lat_p999_ms")]
                c = " / ".join(fmt(x[1]) if x else "-" for x in p)
                p99 = p[1]
                if p99 and p99[0] != p99[2]:
                    c += f"<br>(p99 {fmt(p99[0])}-{fmt(p99[2])})"
                if s != "kafka":
                    r = d.ratio(s, wl, test, "lat_p99_ms")
                    if r:
                        c += f"<br>**p99 x{r[1]:.2f}**"
                row.append(c)
            rows.append(row)
        if not rows:
            continue
        hdr = ["workload", *[d.s["systems"][s]["label"] for s in cols(d)]]
        parts.append(
            f"### {test} — {TEST_TEXT[test]}\n\np50 / p99 / p99.9 in ms (median of repeats)\n\n"
            + table(hdr, rows)
        )
    return "\n\n".join(parts)


def section_server(d: Data) -> str:
    n = d.s["repeat"]
    rows = []
    for s in d.systems:
        if s not in d.measured:
            rows.append([d.s["systems"][s]["label"], "not measured", "-", "-", "-", "-"])
            continue
        vals = []
        for key in ("port_open_s", "startup_s", "rss_ready_mib", "vmhwm_mib", "cpu_to_ready_s"):
            c = cell(d.start_stat(s, key), n)
            if s != "kafka":
                r = d.start_ratio(s, key)
                if r:
                    c += f", **x{r[1]:.2f}**"
            vals.append(c)
        rows.append([d.s["systems"][s]["label"], *vals])
    hdr = [
        "system",
        "start → port accepts, s",
        "start → first produce, s",
        "RSS when ready, MiB",
        "peak RSS (VmHWM) over the run, MiB",
        "CPU s to ready",
    ]
    t1 = table(hdr, rows)
    # CPU per million records, per test, median over workloads
    rows2 = []
    for test in THROUGHPUT_TESTS:
        row = [test]
        for s in cols(d):
            meds = [
                c[1] for wl in d.s["workloads"] if (c := d.cpu_per_mrec(s, wl, test)) is not None
            ]
            peaks = [
                c[2]
                for wl in d.s["workloads"]
                if (c := d.stat(s, wl, test, "server_peak_rss_mib")) is not None
            ]
            row.append(
                f"{fmt(statistics.median(meds))} CPU-s/M rec; peak {fmt(max(peaks))} MiB"
                if meds
                else "failed (see Errors)"
            )
        rows2.append(row)
    hdr2 = ["test", *[d.s["systems"][s]["label"] for s in cols(d)]]
    return (
        t1 + "\n\nServer CPU seconds per million records (median over workloads) and the highest "
        "server RSS sampled during that test (100 ms sampling of the whole process tree):\n\n"
        + table(hdr2, rows2)
    )


def section_status(d: Data) -> str:
    rows = []
    for s in d.systems:
        info = d.s["systems"][s]
        if s in d.measured:
            status = "measured"
        elif info["available"]:
            errs = [r.get("error") for r in d.s["starts"] if r["system"] == s and r.get("error")]
            status = "started but failed: " + (errs[0] if errs else "see results")
        else:
            lines = (info["reason"] or "not available").strip().splitlines()
            keep = [ln for ln in lines if ln.strip() and ln.strip() != "[ERROR]"]
            status = "<br>".join([keep[0], *keep[-1:]] if len(keep) > 1 else keep)
        status = status.replace("\n", "<br>").replace("|", "\\|")
        rows.append([f"`{s}`", info["label"], status])
    return table(["id", "system", "status in this run"], rows)


def geo_ratio(d: Data, system: str, test: str, key: str) -> tuple[float, int] | None:
    meds = [r[1] for wl in d.s["workloads"] if (r := d.ratio(system, wl, test, key))]
    return (statistics.geometric_mean(meds), len(meds)) if meds else None


def section_headline(d: Data) -> str:
    """Per system: the issue's targets next to what this run measured (not a test verdict)."""
    others = [s for s in d.measured if s != "kafka"]
    if "kafka" not in d.measured or not others:
        return "Only Apache Kafka was measured in this run, so there are no ratios yet."
    rows = []
    checks = [
        ("produce rec/s, Java tool", "java-produce", "rec_per_s", ">= 2x", lambda x: x >= 2),
        ("produce rec/s, librdkafka", "rdkafka-produce", "rec_per_s", ">= 2x", lambda x: x >= 2),
        ("consume rec/s, Java tool", "java-consume", "rec_per_s", ">= 2x", lambda x: x >= 2),
        ("consume rec/s, librdkafka", "rdkafka-consume", "rec_per_s", ">= 2x", lambda x: x >= 2),
        ("p99 at half load, Java", "java-latency", "lat_p99_ms", "<= 0.5x", lambda x: x <= 0.5),
        (
            "p99 at half load, librdkafka",
            "rdkafka-latency",
            "lat_p99_ms",
            "<= 0.5x",
            lambda x: x <= 0.5,
        ),
    ]
    for sysname in others:
        label = d.s["systems"][sysname]["label"]
        for text, test, key, target, ok in checks:
            if test not in d.s["tests"]:
                continue
            g = geo_ratio(d, sysname, test, key)
            if g is None:
                rows.append([label, text, target, "not measured (failed, see Errors)", ""])
                continue
            verdict = ("meets" if ok(g[0]) else "short") if sysname == "kop" else ""
            rows.append([label, text, target, f"x{g[0]:.2f} ({g[1]} workloads)", verdict])
        for text, key, target, ok2 in (
            ("peak RSS (VmHWM)", "vmhwm_mib", "<= 0.1x", lambda x: x <= 0.1),
        ):
            r = d.start_ratio(sysname, key)
            if r:
                verdict = ("meets" if ok2(r[1]) else "short") if sysname == "kop" else ""
                rows.append([label, text, target, f"x{r[1]:.2f}", verdict])
        for test in ("java-produce", "rdkafka-produce", "rdkafka-consume"):
            rs = []
            for wl in d.s["workloads"]:
                a, b = d.cpu_per_mrec(sysname, wl, test), d.cpu_per_mrec("kafka", wl, test)
                if a and b and b[1] > 0:
                    rs.append(a[1] / b[1])
            if rs:
                g = statistics.geometric_mean(rs)
                rows.append(
                    [label, f"server CPU s per record, {test}", "(none)", f"x{g:.2f}", "info"]
                )
        # The start-up goals: port accepting (storage open) < 0.1 s, first produce
        # < 0.15 s, both from the process's start.
        for key, text, goal in (
            ("port_open_s", "start to port accepting", 0.1),
            ("startup_s", "start to first produce", 0.15),
        ):
            st = d.start_stat(sysname, key)
            if st:
                verdict = ("meets" if st[1] < goal else "short") if sysname == "kop" else ""
                rows.append([label, text, f"< {goal} s", f"{st[1]:.3f} s", verdict])
    return (
        "Targets from the benchmark issue for kop on its embedded log, next to this run's "
        "numbers (geometric mean over workloads of the per-workload median ratio to Kafka). "
        "This is a reading of noisy measurements, not a pass/fail test. Server CPU seconds per "
        "record is the least noise-sensitive number here: CPU time consumed grows much less "
        "than wall-clock time when other processes take the cores (caches and frequency still "
        "add some noise).\n\n"
        + table(["system", "metric", "target vs Kafka", "measured", ""], rows)
    )


def section_errors(d: Data) -> str:
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in d.s["results"]:
        if r.get("error"):
            first = r["error"].strip().splitlines()[0][:300]
            seen.setdefault((r["system"], r["test"], first), []).append(r["workload"])
    for r in d.s["starts"]:
        for key in ("first_attempt_error", "error"):
            if r.get(key):
                first = r[key].strip().splitlines()[0][:300]
                seen.setdefault((r["system"], f"start ({key})", first), []).append(
                    f"repeat {r['repeat'] + 1}"
                )
    if not seen:
        return "None."
    rows = [
        [f"`{sysname}`", test, f"{len(w)}: {', '.join(sorted(set(w)))}", err.replace("|", "\\|")]
        for (sysname, test, err), w in sorted(seen.items())
    ]
    return table(["system", "test", "failed runs", "error (first line)"], rows)


def section_commands(d: Data) -> str:
    seen: dict[str, str] = {}
    for r in d.s["results"]:
        if r.get("cmd") and r["test"] not in seen:
            seen[r["test"]] = r["cmd"]
    lines = [f"# {t}\n{c}" for t, c in seen.items()]
    return "```\n" + "\n".join(lines) + "\n```"


def section_noise(d: Data) -> str:
    rows = []
    for r in d.s["starts"]:
        la = r.get("loadavg")
        during = [
            x["loadavg1"]
            for x in d.s["results"]
            if x["system"] == r["system"] and x["repeat"] == r["repeat"] and "loadavg1" in x
        ]
        rows.append(
            [
                str(r["repeat"] + 1),
                r["system"],
                " ".join(map(str, la)) if la else "-",
                f"{min(during)}-{max(during)}" if during else "-",
            ]
        )
    hdr = ["repeat", "system", "load average (1/5/15 min) at its start", "1-min load during tests"]
    return (
        table(hdr, rows)
        + "\n\nOn 2 cores, a load average above ~2 means runnable work was queued for the CPU: "
        "part of it was the benchmark's own client and server, the rest other people's builds "
        "and tests."
    )


def order_text(summary: dict[str, Any]) -> str:
    """How the run ordered and placed the systems (runs before --order/--pin: Kafka first)."""
    text = (
        "Kafka first in the first repeat, then the order rotates"
        if summary.get("order") == "rotate"
        else "Kafka first"
    )
    pin = summary.get("pin")
    if pin:
        text += (
            f"; servers pinned to CPU(s) {','.join(map(str, pin['server']))}, load generators to "
            f"{','.join(map(str, pin['client']))}"
        )
    return text


def kop_plugin_note(d: Data) -> str:
    if "koP" not in d.systems or "koP" in d.measured:
        return ""
    return (
        "**About KoP (StreamNative).** KoP's NARs are not on Maven Central; "
        "`bench/systems/kop_pulsar_plugin.sh fetch` builds KoP 3.1.1.1 from source (set "
        "`KOP_GIT` to a clone or mirror of streamnative/kop, or `KOP_NAR` to a NAR) and runs it in "
        "the `io.streamnative` Pulsar 3.1.1.1 standalone it was built for; see bench/README.md.\n"
    )


def render(
    summary: dict[str, Any], quick: dict[str, Any] | None, also: list[dict[str, Any]]
) -> str:
    d = Data(summary)
    IMG.mkdir(parents=True, exist_ok=True)
    plot_throughput(d, IMG / "throughput.png")
    plot_latency(d, IMG / "latency.png")
    plot_resources(d, IMG / "server.png")
    has_ratio = plot_ratios(d, IMG / "ratios.png")
    if not has_ratio:
        (IMG / "ratios.png").unlink(missing_ok=True)
    m = summary["machine"]
    sizes = summary["sizes"]
    kop_note = (
        ""
        if "kop" in d.measured
        else "\n**kop itself is not measured yet** (its column says why); "
        "the harness runs it as soon as `.venv/bin/kop serve` works.\n"
    )
    out = [
        "# Benchmarks: kop vs Apache Kafka vs KoP",
        "",
        "> **Preliminary.** Produced by `bench/run.py` + `bench/report.py` "
        f"(run `{summary['run_id']}`, {summary['mode']} mode, {summary['repeat']} repeat(s)). "
        "This is a **2-core VM**: the load generators and the server share the same two cores, "
        "and other engineers were compiling and testing on the same machine during the run "
        "(load averages below), so absolute numbers are low and noisy. Only the ratios between "
        "systems measured in the same run mean anything, and even those carry the spread shown.",
        kop_note,
        (f"Run note: {summary['note']}.\n" if summary.get("note") else ""),
        (
            "**Read with the appendices.** The targeted runs at the end (two workloads, "
            "measured later while the machine was less loaded) put kop well ahead of Kafka on the "
            "same workloads where this main run has it behind: on this shared 2-core VM the "
            "run-to-run spread is larger than the differences being measured. Re-run on a quiet "
            "machine before quoting any ratio.\n"
            if also
            else ""
        ),
        "## Summary",
        "",
        section_headline(d),
        "",
        "## Systems",
        "",
        section_status(d),
        "",
        kop_plugin_note(d),
        "Every system is started by the harness on a free loopback port with an empty data "
        "directory, driven, stopped, and its data deleted; within a repeat the systems run one "
        f"after another ({order_text(summary)}). Settings: Apache Kafka as `scripts/kafka.sh` "
        "starts it (KRaft combined node, heap 1 GiB, no fsync per write — Kafka's default); "
        "kop with `kop serve --storage file://DIR` and its defaults (`--fsync interval`: a "
        "background fsync every 1 s, writeback started every 100 ms in between (since "
        "2026-12-08), not on the ack path; tokio threads = CPUs); KoP in a Pulsar standalone "
        "broker (heap 1 GiB, `entryFormat=kafka`, bookie journal with its default fsync). "
        "Since 2026-12-08 each test starts on a settled machine (`sync`, page cache dropped "
        "unless a consume test still reads it; bench/README.md).",
        "",
        "## Start-up and memory",
        "",
        "Start-up = first successful librdkafka produce (delivery report) minus the server "
        "process's start time from `/proc/<pid>/stat`. Ratios (**x**) are to Apache Kafka in "
        "the same repeat; cells are median (min-max) over repeats.",
        "",
        section_server(d),
        "",
        "![server](benchmarks/server.png)",
        "",
        "## Throughput",
        "",
        "Workload names: record size, partitions, acks. Each workload uses a fresh topic; "
        f"unthrottled produce sends {sizes['records']['1KB']:,} x 1 KB or "
        f"{sizes['records']['100B']:,} x 100 B records; the consume tests then read the records "
        "the two produce tests wrote. Client settings are each tool's defaults plus `acks` "
        "(Java producer: `batch.size` 16 KiB, `linger.ms` 5; librdkafka: `batch.size` 1 MB, "
        "`linger.ms` 5; librdkafka consumer: `fetch.queue.backoff.ms` 10, see bench/README.md), "
        "the same for every system. MB = 10^6 bytes of record values. "
        "Client-bound case: the Java producer with 16 KiB batches on one partition is bound by "
        "round trips.",
        "",
        "![throughput](benchmarks/throughput.png)",
        "",
        section_throughput(d),
        "",
        "## Latency at a fixed rate",
        "",
        f"Each fixed-rate run lasts ~{sizes['latency_s']} s at half of Apache Kafka's "
        "unthrottled rate for that workload and driver in the same repeat (the same offered load "
        f"for every system; `--latency-basis={summary['latency_basis']}`). EndToEndLatency "
        "sends one record at a time (1-partition workloads only).",
        *(
            [
                "ProducerPerformance's latencies are its steady state: it leaves the records of "
                "its first ~2 s out (`--warmup-records`, the tool's JVM warming up and its first "
                "batches queueing); the whole run's figures are `lat_*_all_ms` in summary.json."
            ]
            if any(r.get("steady_records") for r in summary["results"])
            else []
        ),
        "",
        "![latency](benchmarks/latency.png)",
        "",
        section_latency(d),
        "",
    ]
    if has_ratio:
        out += ["## Ratios to Apache Kafka", "", "![ratios](benchmarks/ratios.png)", ""]
    out += [
        "## Errors",
        "",
        "Tests that failed; their cells above say so. Full tool output is in the run's `logs/`.",
        "",
        section_errors(d),
        "",
    ]
    out += [
        "## Machine",
        "",
        "```",
        f"nproc: {m['nproc']}",
        f"CPU: {m['cpu_model']}",
        f"kernel: {m['kernel']}",
        f"java: {m['java']}",
        f"python: {m['python']}",
        f"git: {m['git_commit']}",
        "free -h:",
        m["free_h"],
        "```",
        "",
        "Load average (other work on the box) when each server started:",
        "",
        section_noise(d),
        "",
        "## Commands",
        "",
        "The run:",
        "",
        "```",
        summary["command"],
        REPORT_COMMAND or f".venv/bin/python bench/report.py {rel(summary)}",
        "```",
        "",
        "What it ran per test (one example each; topic and port vary):",
        "",
        section_commands(d),
        "",
        f"Raw numbers: `bench/results/{summary['run_id']}/summary.json`. "
        "How to run and profile: `bench/README.md`.",
        "",
    ]
    for extra in also:
        e = Data(extra)
        env = " ".join(f"{k}={v}" for k, v in sorted(extra.get("env", {}).items()))
        out += [
            f"## Appendix: targeted run `{extra['run_id']}`",
            "",
            f"`{(env + ' ') if env else ''}{extra['command']}` "
            f"({extra['elapsed_s']:.0f} s, {extra['repeat']} repeat(s)). "
            + (f"Note: {extra['note']}" if extra.get("note") else ""),
            "",
            section_headline(e),
            "",
            section_throughput(e),
            "",
            section_latency(e),
            "",
            "Load average during its tests:",
            "",
            section_noise(e),
            "",
        ]
    if quick is not None:
        q = Data(quick)
        out += [
            "## Appendix: smoke run",
            "",
            f"`{quick['command']}` (run `{quick['run_id']}`, {quick['elapsed_s']:.0f} s). "
            "Tiny runs: the Java tools are still warming up, so these numbers only show that "
            "every path works.",
            "",
            section_status(q),
            "",
            section_throughput(q),
            "",
        ]
    return "\n".join(out)


REPORT_COMMAND = ""


def rel(summary: dict[str, Any]) -> str:
    return f"bench/results/{summary['run_id']}/summary.json"


def newest(quick: bool) -> Path | None:
    # plain runs are named <date>-<time>, smoke runs <date>-<time>-quick; anything else
    # (e.g. renamed targeted runs) is only used when named explicitly
    pat = r"\d{8}-\d{6}-quick" if quick else r"\d{8}-\d{6}"
    cands = sorted(
        p for p in (HERE / "results").glob("*/summary.json") if re.fullmatch(pat, p.parent.name)
    )
    return cands[-1] if cands else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("summary", nargs="?", help="summary.json (default: newest full run)")
    ap.add_argument("--quick", help="summary.json of a smoke run to add as an appendix")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        help="summary.json of a smaller targeted run to append (repeatable)",
    )
    ap.add_argument("--out", default=str(DOC))
    args = ap.parse_args(argv)
    path = Path(args.summary) if args.summary else newest(False) or newest(True)
    if path is None:
        print("no results under bench/results/; run bench/run.py first", file=sys.stderr)
        return 1
    summary = json.loads(path.read_text())
    quick = json.loads(Path(args.quick).read_text()) if args.quick else None
    also = [json.loads(Path(p).read_text()) for p in args.also]
    global REPORT_COMMAND
    REPORT_COMMAND = shlex.join([".venv/bin/python", "bench/report.py", *(argv or sys.argv[1:])])
    Path(args.out).write_text(render(summary, quick, also))
    print(f"wrote {args.out} and {IMG}/*.png from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
