"""What machine a run happened on (for the report)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str]) -> str:
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return (cp.stdout + cp.stderr).rstrip()
    except OSError as e:
        return f"({e})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def describe() -> dict[str, str]:
    return {
        "nproc": _run(["nproc"]),
        "cpu_model": cpu_model(),
        "free_h": _run(["free", "-h"]),
        "kernel": _run(["uname", "-srm"]),
        "java": _run(["java", "-version"]).splitlines()[0] if _run(["java", "-version"]) else "?",
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(os.getloadavg().__repr__().strip("()").split(", ")),
        "git_commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dirty_kib() -> int:
    """Page cache waiting to be written back (Dirty + Writeback in /proc/meminfo), KiB."""
    total = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(("Dirty:", "Writeback:")):
                total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total


def settle(drop_caches: bool) -> dict[str, Any]:
    """Before a measured test: write back every dirty page, and (``drop_caches``) free the
    page cache, so that no test pays for what the one before it wrote.

    Two things carried over between tests on this VM (docs/benchmarks.md, "what carried over
    between tests"): Kafka leaves fsync to the OS, so after its produce tests the box held ~600 MB
    of dirty pages per test, written back during whichever test ran next; and memory beyond
    ~4-5 GB in use is slow to touch here (1 GiB into tmpfs: 0.5 s for each of the first four,
    8-12 s for each after), so once the page cache of earlier tests had grown that far, every
    write into the page cache slowed for both servers alike. Dropping needs root; without it
    only the sync happens (the row says which)."""
    out: dict[str, Any] = {"dirty_kib_before": dirty_kib()}
    os.sync()
    if drop_caches:
        try:
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
            out["caches_dropped"] = True
        except OSError:
            out["caches_dropped"] = False
    return out
