"""Server-side resource accounting from /proc: RSS, peak RSS, CPU seconds, process age.

A server may be a process tree (a launcher plus workers), so RSS and CPU are summed over the
process and all of its descendants, sampled on a background thread.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # the command name (field 2) may contain spaces; everything after the last ')' is fixed
    rest = text[text.rfind(")") + 2 :].split()
    return rest  # rest[0] is field 3 (state)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads), in seconds."""
    f = _stat_fields(pid)
    if f is None:
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK  # fields 14 and 15


def start_time_boot_s(pid: int) -> float | None:
    """When the process started, in seconds since boot (CLOCK_BOOTTIME), 1/CLK_TCK resolution."""
    f = _stat_fields(pid)
    if f is None:
        return None
    return int(f[19]) / CLK_TCK  # field 22


def boottime_now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def status_kib(pid: int, key: str) -> int | None:
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f is None:
            continue
        kids.setdefault(int(f[1]), []).append(int(name))
    return kids


def tree(pid: int, *more: int) -> list[int]:
    """``pid`` and the other roots given, with all their descendants."""
    kids = children_map()
    out, todo = [], [pid, *more]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_rss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        text = _read(f"/proc/{p}/statm")
        if text:
            total += int(text.split()[1]) * PAGE_KIB
    return total


@dataclass
class Window:
    """Resource use of the server between two marks."""

    cpu_s: float
    peak_rss_mib: float
    wall_s: float
    # the part of cpu_s spent in the ``also`` trees (kop-pulsar: its Pulsar); None without any
    storage_cpu_s: float | None = None


def rss_kib(pids: list[int]) -> int:
    """The RSS of ``pids`` and all their descendants."""
    return tree_rss_kib(tree(*pids)) if pids else 0


def tree_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` and all their descendants."""
    return sum(c for p in tree(*pids) if (c := cpu_seconds(p)) is not None) if pids else 0.0


@dataclass
class ProcMonitor:
    """Samples a process tree every ``interval`` seconds until stopped. ``also``: more roots
    whose trees count as part of the server (e.g. the Pulsar that kop-pulsar stores in, which
    its launcher started detached, so it is not among kop's descendants)."""

    pid: int
    also: list[int] = field(default_factory=list)
    interval: float = 0.1
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _peak_kib: int = 0  # peak since the last mark
    _life_peak_kib: int = 0  # peak over the whole life
    _cpu_by_pid: dict[int, float] = field(default_factory=dict)
    _pids: list[int] = field(default_factory=list)
    _also_pids: set[int] = field(default_factory=set)
    _thread: threading.Thread | None = None

    def start(self) -> ProcMonitor:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="procmon", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            self._sample(refresh_tree=(n % 10 == 0))
            n += 1

    def _sample(self, refresh_tree: bool = True) -> None:
        refresh = refresh_tree or not self._pids
        pids = tree(self.pid, *self.also) if refresh else self._pids
        also_pids = set(tree(*self.also)) if refresh and self.also else None
        rss = tree_rss_kib(pids)
        cpu = {}
        for p in pids:
            c = cpu_seconds(p)
            if c is not None:
                cpu[p] = c
        with self._lock:
            self._pids = pids
            if also_pids is not None:
                self._also_pids |= also_pids
            self._peak_kib = max(self._peak_kib, rss)
            self._life_peak_kib = max(self._life_peak_kib, rss)
            # keep the last value of exited children so CPU totals never go backwards
            self._cpu_by_pid.update(cpu)

    def cpu_total(self) -> float:
        with self._lock:
            return sum(self._cpu_by_pid.values())

    def storage_cpu_total(self) -> float:
        """CPU seconds of the ``also`` trees alone."""
        with self._lock:
            return sum(c for p, c in self._cpu_by_pid.items() if p in self._also_pids)

    def mark(self) -> tuple[float, float, float]:
        """Start a measurement window; returns an opaque token for ``window``."""
        self._sample()
        with self._lock:
            self._peak_kib = tree_rss_kib(self._pids)
        return (time.monotonic(), self.cpu_total(), self.storage_cpu_total())

    def window(self, token: tuple[float, float, float]) -> Window:
        self._sample()
        t0, cpu0, storage0 = token
        with self._lock:
            peak = self._peak_kib
        return Window(
            cpu_s=round(self.cpu_total() - cpu0, 3),
            peak_rss_mib=round(peak / 1024, 1),
            wall_s=round(time.monotonic() - t0, 3),
            storage_cpu_s=round(self.storage_cpu_total() - storage0, 3) if self.also else None,
        )

    def lifetime(self) -> dict[str, float | None]:
        """Lifetime peak: VmHWM of the main process (summed over the roots: ``also``) and the
        sampled peak of the tree."""
        self._sample()
        hwms = [status_kib(p, "VmHWM") for p in (self.pid, *self.also)]
        hwm = None if None in hwms else sum(h for h in hwms if h is not None)
        with self._lock:
            life = self._life_peak_kib
        return {
            "vmhwm_mib": round(hwm / 1024, 1) if hwm is not None else None,
            "tree_peak_rss_mib": round(life / 1024, 1),
            "cpu_s": round(self.cpu_total(), 3),
        }

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
