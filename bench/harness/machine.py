"""What machine a run happened on (for the report)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

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
