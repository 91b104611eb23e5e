#!/usr/bin/env python3
"""The transactions benchmark as Markdown (stdout) and a plot.

    .venv/bin/python bench/transactions/report.py [bench/results/txn-.../summary.json] \\
        [--plot docs/benchmarks/transactions.png]

Without a path, the newest bench/results/txn-*/summary.json. Per test and system: the median over
repeats with the min-max spread, and each system's median over Apache Kafka's (the ratio: > 1 is
faster for throughput, < 1 is faster for latency); server CPU seconds per million records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"

# (column, key in a result row, digits)
METRICS = {
    "produce": [
        ("records/s", "rec_per_s", 0),
        ("MB/s", "mb_per_s", 2),
        ("txn/s", "txn_per_s", 1),
        ("commit p50 ms", "commit_p50_ms", 1),
        ("commit p99 ms", "commit_p99_ms", 1),
    ],
    "consume": [("records/s", "rec_per_s", 0), ("MB/s", "mb_per_s", 1)],
}
LOWER_IS_BETTER = {"commit_p50_ms", "commit_p99_ms"}


def kind(test: str) -> str:
    return "produce" if test.endswith("-produce") else "consume"


def values(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None and not r.get("error")]


def fmt(x: float, digits: int) -> str:
    return f"{x:,.{digits}f}"


def cell(vals: list[float], digits: int) -> str:
    if not vals:
        return "—"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med, digits)
    return f"{fmt(med, digits)} ({fmt(min(vals), digits)}-{fmt(max(vals), digits)})"


def cpu_per_million(rows: list[dict[str, Any]]) -> list[float]:
    return [
        float(r["server_cpu_s"]) / float(r["records"]) * 1e6
        for r in rows
        if not r.get("error") and r.get("server_cpu_s") is not None and r.get("records")
    ]


def render(summary: dict[str, Any]) -> str:
    results = summary["results"]
    systems = [s for s in summary["systems"] if summary["systems"][s]["available"]]
    labels = {s: summary["systems"][s]["label"] for s in systems}
    tests = list(dict.fromkeys(r["test"] for r in results))
    out = [
        f"`{summary['command']}` — {summary['repeat']} repeat(s); median (min-max); "
        f"ratio = median / Apache Kafka's median.",
        "",
    ]
    for test in tests:
        metrics = METRICS[kind(test)]
        head = ["system", *(m[0] for m in metrics), "server CPU s / 1M records"]
        if "kafka" in systems and len(systems) > 1:
            head.append(f"ratio ({metrics[0][0]})")
        out += [f"**{test}**", "", "| " + " | ".join(head) + " |"]
        out.append("| --- |" + " ---: |" * (len(head) - 1))
        base = values(
            [r for r in results if r["test"] == test and r["system"] == "kafka"], "rec_per_s"
        )
        for s in systems:
            rows = [r for r in results if r["test"] == test and r["system"] == s]
            line = [labels[s], *(cell(values(rows, m[1]), m[2]) for m in metrics)]
            line.append(cell(cpu_per_million(rows), 1))
            if len(head) > len(metrics) + 2:
                mine = values(rows, "rec_per_s")
                ratio = statistics.median(mine) / statistics.median(base) if mine and base else None
                line.append("—" if ratio is None else f"{ratio:.2f}")
            out.append("| " + " | ".join(line) + " |")
        errors = [r for r in results if r["test"] == test and r.get("error")]
        for r in errors:
            lines = str(r["error"]).splitlines()
            # the exception a Java tool died of says more than its first log line
            first = next((ln for ln in reversed(lines) if "Exception" in ln), lines[0])[:240]
            out.append(f"\nrepeat {r['repeat']}, {labels.get(r['system'], r['system'])}: {first}")
        out.append("")
    return "\n".join(out)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = summary["results"]
    systems = [s for s in summary["systems"] if summary["systems"][s]["available"]]
    tests = list(dict.fromkeys(r["test"] for r in results))
    groups = [[t for t in tests if kind(t) == k] for k in ("produce", "consume")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(systems))
    for ax, group, title in zip(axes, groups, ("transactional produce", "consume"), strict=True):
        for i, s in enumerate(systems):
            meds, lo, hi = [], [], []
            for t in group:
                v = values([r for r in results if r["test"] == t and r["system"] == s], "rec_per_s")
                m = statistics.median(v) if v else 0.0
                meds.append(m)
                lo.append(m - min(v) if v else 0.0)
                hi.append(max(v) - m if v else 0.0)
            xs = [j + i * width for j in range(len(group))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=summary["systems"][s]["label"])
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(group))])
        ax.set_xticklabels([t.replace("-", "\n", 1) for t in group], fontsize=8)
        ax.set_ylabel("records/s (median, min-max)")
        ax.set_title(title)
        ax.legend(fontsize=8)
    args = summary["args"]
    fig.suptitle(
        f"{args['per_txn']} x {args['size']} B records per transaction, "
        f"{args['partitions']} partitions, {args['records']:,} records per produce test"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def newest() -> Path | None:
    found = sorted(RESULTS.glob("txn-*/summary.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("summary", nargs="?", type=Path)
    ap.add_argument("--plot", type=Path, help="write the throughput plot (PNG) here")
    a = ap.parse_args(argv)
    path = a.summary or newest()
    if path is None:
        ap.error("no bench/results/txn-*/summary.json; run bench/transactions/run.py first")
    summary = json.loads(path.read_text())
    print(render(summary))
    if a.plot:
        plot(summary, a.plot)
        print(f"plot: {a.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
