"""A picture of the Grafana dashboard, drawn from its own queries (issue 18).

    .venv/bin/python bench/dashboard_picture.py [--seconds 70] [--out docs/images/dashboard.png]

Grafana is not installable here (AGPL, not packaged), so this draws what the dashboard would
show: it starts `kop serve` (file storage, metrics listener on) and a real Prometheus (Debian's
`prometheus` package, as tests/e2e/test_e2e_metrics.py uses) scraping it every second, runs a
short mixed load, then runs every panel's expressions of docs/grafana/kop-dashboard.json through
Prometheus' `query_range` (Grafana's `$__rate_interval` replaced by a fixed 10s) and draws the
panels where their `gridPos` puts them, with matplotlib.

The load, over `--seconds`: a producer writes to `orders` (3 partitions) and `clicks`
throughout; consumer group `billing` reads `orders` from 10% of the run on (lag builds, then
drains); group `analytics` reads `clicks` until the middle and stops (lag grows); from 35% a
producer with client id `bulk` runs against a 256 KiB/s `producer_byte_rate` quota (throttles);
around 55% connections from 127.0.0.2 exceed its `max_connections_per_ip_overrides` of 1
(refused); at 60% a consumer fetches past the end of a partition (OFFSET_OUT_OF_RANGE) and
CreateTopics asks for a topic that exists (TOPIC_ALREADY_EXISTS). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana" / "kop-dashboard.json"
HOST = "127.0.0.1"
STEP = 2  # seconds between the points of a query_range
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval: at least 4 scrape intervals (1 s here)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start (see its log in the work directory)")
        time.sleep(0.2)


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def start_prometheus(workdir: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("needs Prometheus on PATH (Debian: apt-get install prometheus)")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: kop\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    proc = spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={HOST}:{port}",
        ],
        workdir / "prometheus.log",
    )
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/-/ready", proc, "prometheus")
    return proc, url


def alter_producer_byte_rate(bootstrap: str, client_id: str, rate: float) -> None:
    """AlterClientQuotas v0 (confluent-kafka's admin client has no quota API)."""

    def s(text: str) -> bytes:
        return struct.pack(">h", len(text)) + text.encode()

    body = struct.pack(">ii", 1, 1) + s("client-id") + s(client_id)
    body += struct.pack(">i", 1) + s("producer_byte_rate") + struct.pack(">db", rate, 0)
    body += struct.pack(">b", 0)  # validate_only
    header = struct.pack(">hhi", 49, 0, 1) + s("dashboard-picture")
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        answer = sock.recv(size, socket.MSG_WAITALL)
    # correlation id, throttle, 1 entry, then its error code
    error = struct.unpack(">h", answer[12:14])[0]
    if error:
        raise SystemExit(f"AlterClientQuotas answered error {error}")


def refused_connections(port: int, count: int) -> None:
    """Connections from 127.0.0.2, held open together: all but the first are refused."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect((HOST, port))
        socks.append(s)
    time.sleep(0.5)
    for s in socks:
        s.close()


def fetch_out_of_range(bootstrap: str) -> None:
    """A consumer that asks for an offset far past the end: OFFSET_OUT_OF_RANGE."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    stray = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "stray", "auto.offset.reset": "error"}
    )
    stray.assign([TopicPartition("orders", 0, 10_000_000)])
    for _ in range(4):
        msg = stray.poll(1.0)
        error = msg.error() if msg is not None else None
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            break
    stray.close()


def run_load(bootstrap: str, port: int, seconds: float) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    started = time.monotonic()
    stop_all = threading.Event()

    def at(fraction: float) -> None:
        time.sleep(max(0.0, started + fraction * seconds - time.monotonic()))

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics(
        [NewTopic("orders", 3, 1), NewTopic("clicks", 1, 1), NewTopic("bulk-import", 1, 1)]
    ).values():
        f.result(30)

    def produce_steadily() -> None:
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
        i = 0
        while not stop_all.is_set():
            # A rate that rises and falls, so the graphs have a shape.
            phase = (time.monotonic() - started) / seconds
            burst = 40 + int(160 * abs(((phase * 3) % 2) - 1))
            for _ in range(burst):
                p.produce("orders", key=str(i % 97).encode(), value=b"o" * (100 + i % 400))
                p.produce("clicks", value=b"c" * 60)
                i += 1
            p.poll(0)
            time.sleep(0.05)
        p.flush(30)

    def consume(group: str, topic: str, until: Callable[[], bool]) -> None:
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "auto.commit.interval.ms": 1000,
                "max.partition.fetch.bytes": 50_000,
            }
        )
        c.subscribe([topic])
        while not until():
            c.consume(500, 0.5)
            time.sleep(0.05)  # a slow consumer: lag shows before it drains
        c.close()

    def bulk() -> None:
        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "bulk",
                "linger.ms": 5,
                "queue.buffering.max.kbytes": 1024,
            }
        )
        end = started + 0.6 * seconds
        while time.monotonic() < end:
            try:
                p.produce("bulk-import", value=b"b" * 1024)
            except BufferError:
                p.poll(0.1)
            p.poll(0)
        p.purge()  # what the quota still holds back is not the point
        p.flush(10)

    threads = [threading.Thread(target=produce_steadily)]
    threads[0].start()
    at(0.1)
    threads.append(threading.Thread(target=consume, args=("billing", "orders", stop_all.is_set)))
    threads[-1].start()
    half = started + 0.5 * seconds
    threads.append(
        threading.Thread(
            target=consume, args=("analytics", "clicks", lambda: time.monotonic() > half)
        )
    )
    threads[-1].start()
    at(0.35)
    alter_producer_byte_rate(bootstrap, "bulk", 256 * 1024)
    threads.append(threading.Thread(target=bulk))
    threads[-1].start()
    for k in range(3):
        at(0.52 + 0.03 * k)
        refused_connections(port, 4)
    for k in range(3):
        at(0.6 + 0.05 * k)
        fetch_out_of_range(bootstrap)
    for f in admin.create_topics([NewTopic("orders", 3, 1)]).values():
        with contextlib.suppress(Exception):  # TOPIC_ALREADY_EXISTS is the point
            f.result(30)
    at(1.0)
    stop_all.set()
    for t in threads:
        t.join(120)


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", f"{STEP}s")
    params = {"query": expr, "start": start, "end": end, "step": STEP}
    data = get_json(f"{url}/api/v1/query_range?" + urllib.parse.urlencode(params))["data"]
    return list(data["result"])


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def formatter(unit: str) -> Callable[[float, Any], str]:
    def si(value: float, suffix: str, base: float = 1000.0) -> str:
        for prefix in ["", "k", "M", "G"]:
            if abs(value) < base:
                return f"{value:.3g}{prefix}{suffix}"
            value /= base
        return f"{value:.3g}T{suffix}"

    def fmt(value: float, _pos: Any) -> str:
        if unit == "s":
            return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
        if unit == "bytes":
            return si(value, "B", 1024.0)
        if unit == "Bps":
            return si(value, "B/s", 1024.0)
        if unit in ("reqps", "ops"):
            return si(value, "/s")
        return si(value, "")

    return fmt


def draw(board: dict[str, Any], url: str, start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) // 8
    fig = plt.figure(figsize=(15, 2.7 * rows), dpi=64, facecolor="#111217")
    grid = fig.add_gridspec(rows, 24, hspace=0.7, wspace=1.6, top=0.975, bottom=0.01)
    for panel in panels:
        pos = panel["gridPos"]
        row, col = pos["y"] // 8, pos["x"]
        ax = fig.add_subplot(grid[row : row + pos["h"] // 8, col : col + pos["w"]])
        ax.set_facecolor("#181b1f")
        ax.set_title(panel["title"], color="#d8d9da", fontsize=10, loc="left")
        ax.tick_params(colors="#9fa7b3", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.5)
        lines = 0
        for target in panel["targets"]:
            for series in query_range(url, target["expr"], start, end):
                points = [(float(t) - start, float(v)) for t, v in series["values"]]
                points = [(t, v) for t, v in points if v == v]  # NaN: no histogram data yet
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                name = legend(target.get("legendFormat", ""), series["metric"]) or target["expr"]
                ax.plot(xs, ys, linewidth=1.2, label=name)
                print(f"{panel['title'][:40]:40s} {name[:50]:50s} max {max(ys):.4g}")
                lines += 1
        ax.set_xlim(0, end - start)
        ax.yaxis.set_major_formatter(
            FuncFormatter(formatter(panel["fieldConfig"]["defaults"]["unit"]))
        )
        if lines:
            # Below the graph, as Grafana's bottom legend.
            ax.legend(
                fontsize=6.5,
                loc="upper left",
                bbox_to_anchor=(0, -0.1),
                ncol=3,
                frameon=False,
                labelcolor="#d8d9da",
                borderaxespad=0,
            )
        else:
            ax.text(
                0.5,
                0.5,
                "No data",
                color="#9fa7b3",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    fig.suptitle(
        "kop dashboard (docs/grafana/kop-dashboard.json), drawn by bench/dashboard_picture.py"
        " from its queries against Prometheus (x: seconds since the start)",
        color="#d8d9da",
        fontsize=11,
        y=0.998,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=fig.get_facecolor(), bbox_inches="tight")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=70)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    ap.add_argument("--kop", default=None, help="kop executable (default: this Python's -m kop)")
    args = ap.parse_args()
    board = json.loads(DASHBOARD.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="kop-dashboard-"))
    port, metrics = free_port(), f"{HOST}:{free_port()}"
    kop_cmd = [args.kop] if args.kop else [sys.executable, "-m", "kop"]
    serve = {
        "--listeners": f"PLAINTEXT://{HOST}:{port}",
        "--storage": f"file://{workdir / 'kop-data'}",
        "--metrics-listener": metrics,
        "--max-connections-per-ip-overrides": "127.0.0.2:1",  # refuses the 2nd connection
        "--group-initial-rebalance-delay-ms": "0",
    }
    command = [*kop_cmd, "serve", *(part for item in serve.items() for part in item)]
    kop = spawn(command, workdir / "kop.log")
    prometheus = None
    try:
        wait_http(f"http://{metrics}/ready", kop, "kop serve")
        prometheus, url = start_prometheus(workdir, metrics)
        time.sleep(3)  # a few scrapes before the load
        start = time.time()
        run_load(f"{HOST}:{port}", port, args.seconds)
        time.sleep(6)  # the last scrapes and a few quiet seconds
        draw(board, url, start - 3, time.time(), args.out)
    finally:
        if prometheus is not None:
            stop(prometheus)
        stop(kop)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
