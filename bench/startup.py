#!/usr/bin/env python3
"""Start-up of `kop serve` (embedded log) against Apache Kafka's, measured the same way.

    .venv/bin/python bench/startup.py                        # kop x20, Kafka x5
    .venv/bin/python bench/startup.py --repeat 20 --kafka-repeat 0
    .venv/bin/python bench/startup.py --kop-cmd '.venv/bin/python -m kop'   # another entry point
    .venv/bin/python bench/startup.py --kafka-repeat 0 \
        --kop-cmd 'old=env PYTHONPATH=/tmp/old/python .venv/bin/kop' --kop-cmd new=.venv/bin/kop

Each start: a free port, a fresh data directory, then the server's command is spawned. From the
moment just before the spawn (t0) the script polls a TCP connect every ~1 ms; once the port
accepts it sends ApiVersions v0 and waits for the answer (= "ready": port accepting and storage
open, kop binds only after storage is open), then Metadata (auto-create) and a Produce of one
1-byte record with acks=1 to partition 0 of a new topic, repeated until it is acknowledged
without error (= "first produce"). The client is a raw minimal Kafka client in this file (no
librdkafka back-off or metadata timers in the figure). Kafka is started with
`scripts/kafka.sh start DIR PORT` (its launcher script counts, as `kop serve` counts its
interpreter). Prints median, min-max per phase and the ratio of the medians; `--json` writes all
samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.net import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KAFKA_SH = REPO / "scripts" / "kafka.sh"

API_PRODUCE, API_METADATA, API_VERSIONS = 0, 3, 18


# ---------------------------------------------------------------- a minimal Kafka client


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(value: bytes) -> bytes:
    """One record (null key, no headers) in a v2 record batch."""
    body = b"\x00" + _varint(0) + _varint(0) + _varint(-1) + _varint(len(value)) + value
    record = _varint(len(body) + 1) + body + _varint(0)  # + headers count
    now = int(time.time() * 1000)
    after_crc = (
        struct.pack(">hiqqqhii", 0, 0, now, now, -1, -1, -1, 1)  # attrs..record count
        + record
    )
    crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.corr = 0

    def call(self, api: int, version: int, body: bytes) -> bytes:
        self.corr += 1
        header = struct.pack(">hhi", api, version, self.corr) + _string("startup-bench")
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self._read(4))[0]
        resp = self._read(size)
        if struct.unpack(">i", resp[:4])[0] != self.corr:
            raise RuntimeError("correlation id mismatch")
        return resp[4:]

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        return bytes(buf)


def api_versions(conn: Conn) -> None:
    resp = conn.call(API_VERSIONS, 0, b"")
    if struct.unpack(">h", resp[:2])[0] != 0:
        raise RuntimeError(f"ApiVersions error {struct.unpack('>h', resp[:2])[0]}")


def metadata(conn: Conn, topic: str) -> None:
    # v4: topics, allow_auto_topic_creation=true (the answer is not needed: the produce retries)
    conn.call(API_METADATA, 4, struct.pack(">i", 1) + _string(topic) + b"\x01")


def produce(conn: Conn, topic: str, batch: bytes) -> int:
    """Produce v3, acks=1; returns the partition's error code."""
    body = struct.pack(">hhi", -1, 1, 10_000) + struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    resp = conn.call(API_PRODUCE, 3, body)
    # [responses: name, [index, error_code, base_offset, log_append_time]], throttle
    name_len = struct.unpack(">h", resp[4:6])[0]
    at = 6 + name_len + 4 + 4
    return int(struct.unpack(">h", resp[at : at + 2])[0])


# ---------------------------------------------------------------- one start


def sched_times(pid: int, label: str) -> dict[str, float]:
    """CPU time of the process so far and its time spent waiting for a CPU (run queue), summed
    over its live threads, from /proc/PID/task/*/schedstat (ns). On a loaded machine the wait
    says how much of the wall time other work took."""
    cpu = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns, _ = f.read().split()
        except (OSError, ValueError):
            continue
        cpu += int(run_ns)
        wait += int(wait_ns)
    return {f"{label}_cpu_s": cpu / 1e9, f"{label}_runq_s": wait / 1e9}


def connect_when_open(port: int, t0: float, deadline: float) -> tuple[socket.socket, float]:
    while True:
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.connect(("127.0.0.1", port))
            return s, time.perf_counter() - t0
        except OSError:
            s.close()
            if time.perf_counter() > deadline:
                raise TimeoutError("port never accepted") from None
            time.sleep(0.001)


def probe(port: int, t0: float, timeout: float, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    deadline = t0 + timeout
    out: dict[str, float] = {}
    batch = record_batch(b"x")
    topic = f"startup-{os.getpid()}-{port}"
    while True:
        if proc.poll() not in (None, 0):
            raise RuntimeError(f"server exited with status {proc.returncode}")
        sock, accepted = connect_when_open(port, t0, deadline)
        sock.settimeout(max(0.5, deadline - time.perf_counter()))
        try:
            conn = Conn(sock)
            api_versions(conn)
            out.setdefault("port_s", accepted)
            out.setdefault("ready_s", time.perf_counter() - t0)
            if "ready_cpu_s" not in out:
                out.update(sched_times(proc.pid, "ready"))
            metadata(conn, topic)
            while (err := produce(conn, topic, batch)) != 0:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"produce kept failing with error {err}")
                time.sleep(0.005)
                metadata(conn, topic)
            out["produce_s"] = time.perf_counter() - t0
            return out
        except (TimeoutError, ConnectionError) as e:
            # a server that accepts before it can answer (none of ours should) is retried
            if time.perf_counter() > deadline:
                raise TimeoutError(str(e)) from None
        finally:
            sock.close()


def one_start(
    system: str, kop_cmd: list[str] | None, timeout: float, env: dict[str, str]
) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix=f"startup-{system}-"))
    port = free_port()
    if kop_cmd is None:
        cmd = [str(KAFKA_SH), "start", str(data), str(port)]
    else:
        cmd = [*kop_cmd, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{port}"]
        cmd += ["--storage", f"file://{data / 'log'}", "--log-level", "warn"]
    log = open(data.parent / f"{data.name}.log", "wb")  # noqa: SIM115 (closed below)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    try:
        return probe(port, t0, timeout, proc)
    finally:
        if kop_cmd is None:
            # kafka.sh's own readiness check (a ListTopics by a JVM tool) finishes first: it
            # would retry for a minute against a stopped broker
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=180)
            subprocess.run([str(KAFKA_SH), "stop", str(data)], capture_output=True, check=False)
            proc.wait(timeout=60)
        else:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        Path(log.name).unlink(missing_ok=True)
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------- report


def spread(xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return f"{statistics.median(ms):7.1f} ms ({min(ms):.1f}-{max(ms):.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=20, help="kop starts (default 20)")
    ap.add_argument("--kafka-repeat", type=int, default=5, help="Kafka starts (default 5; 0: none)")
    ap.add_argument(
        "--kop-cmd",
        action="append",
        help="how to run kop (default .venv/bin/kop; e.g. '.venv/bin/python -m kop'); "
        "repeat as LABEL=CMD to compare builds, their starts interleaved",
    )
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured starts per system first")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per start")
    ap.add_argument("--json", help="write every sample here")
    args = ap.parse_args(argv)

    commands: dict[str, list[str] | None] = {}
    for spec in args.kop_cmd or [str(REPO / ".venv" / "bin" / "kop")]:
        label, eq, cmd = spec.partition("=")
        if not eq or " " in label or not label:
            label, cmd = "kop", spec
        commands[label] = shlex.split(cmd)
    commands["kafka"] = None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = {name: args.repeat for name in commands}
    runs["kafka"] = args.kafka_repeat
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, n in runs.items() if n > 0}
    # interleaved: kop's starts spread over the time Kafka's take, so load changes hit both
    order = [s for i in range(max(runs.values())) for s in runs if i < runs[s]]
    for system in samples:
        for _ in range(args.warmup):
            one_start(system, commands[system], args.timeout, env)
    for system in order:
        samples[system].append(one_start(system, commands[system], args.timeout, env))
        last = samples[system][-1]
        print(
            f"{system:<6} ready {last['ready_s'] * 1000:8.1f} ms, "
            f"first produce {last['produce_s'] * 1000:8.1f} ms",
            file=sys.stderr,
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    phases = (
        ("port_s", "port accepts"),
        ("ready_s", "ApiVersions answered"),
        ("produce_s", "first produce acked"),
    )
    process = (
        ("ready_cpu_s", "CPU time to ready"),
        ("ready_runq_s", "waiting for a CPU"),
    )
    for system, rows in samples.items():
        print(f"{system} ({len(rows)} starts): median (min-max) from spawn")
        for key, text in phases:
            print(f"  {text:<22} {spread([r[key] for r in rows])}")
        for key, text in process:  # the spawned process itself (kop; Kafka's is a script)
            if commands[system] is not None and all(key in r for r in rows):
                print(f"  {text:<22} {spread([r[key] for r in rows])}")
    for name in samples:
        if name == "kafka" or "kafka" not in samples:
            continue
        for key, text in phases:
            kop_m = statistics.median(r[key] for r in samples[name])
            kafka_m = statistics.median(r[key] for r in samples["kafka"])
            print(f"Kafka / {name}, {text}: x{kafka_m / kop_m:.1f}")
    if args.json:
        record = {"commands": commands, "loadavg_end": os.getloadavg(), "samples": samples}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
