#!/usr/bin/env python3
"""Before/after table (and plot) from interleaved bench/run.py results of two kop builds.

    # interleave: before, after, before, after, ... (one --repeat 1 run each)
    for i in 1 2 3; do
      KOP_BIN=.venv-base/bin/kop .venv/bin/python bench/run.py --systems kop ... --out R/before-$i
      .venv/bin/python bench/run.py --systems kop ... --out R/after-$i
    done
    .venv/bin/python bench/ab.py --before R/before-* --after R/after-* --plot docs/benchmarks/ab.png

Prints a Markdown table: per system, workload and test, records/s as median (min-max) over the
runs, the ratio of the medians, and server CPU seconds per million records.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

Key = tuple[str, str, str]


def load(dirs: list[str]) -> dict[Key, list[dict[str, Any]]]:
    out: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for d in dirs:
        summary = json.loads((Path(d) / "summary.json").read_text())
        for r in summary["results"]:
            if "rec_per_s" in r and not r.get("error"):
                out[(r["system"], r["workload"], r["test"])].append(r)
    return out


def cell(rows: list[dict[str, Any]]) -> tuple[str, float, str]:
    rates = [float(r["rec_per_s"]) for r in rows]
    med = statistics.median(rates)
    cpu = [
        float(r["server_cpu_s"]) / float(r["records"]) * 1e6
        for r in rows
        if r.get("server_cpu_s") is not None and r.get("records")
    ]
    cpu_s = f"{statistics.median(cpu):.2f}" if cpu else "-"
    return f"{med:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})", med, cpu_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", nargs="+", required=True)
    ap.add_argument("--after", nargs="+", required=True)
    ap.add_argument("--plot", help="write a bar chart of the median ratios here (PNG)")
    args = ap.parse_args()
    before, after = load(args.before), load(args.after)
    print(f"runs: {len(args.before)} before, {len(args.after)} after (interleaved)\n")
    print(
        "| system | workload | test | before rec/s | after rec/s | after/before "
        "| CPU s/M rec before → after |"
    )
    print("|---|---|---|---|---|---|---|")
    labels: list[str] = []
    ratios: list[float] = []
    for key in sorted(set(before) & set(after), key=lambda k: (k[0], k[2], k[1])):
        b, bmed, bcpu = cell(before[key])
        a, amed, acpu = cell(after[key])
        ratio = amed / bmed if bmed else float("nan")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {b} | {a} | x{ratio:.2f} | {bcpu} → {acpu} |")
        labels.append(f"{key[0]} {key[2]} {key[1]}")
        ratios.append(ratio)
    if args.plot and ratios:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 0.35 * len(ratios) + 1.2))
        ax.barh(labels, ratios, color=["tab:green" if r >= 1 else "tab:red" for r in ratios])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("after / before, median records/s")
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
