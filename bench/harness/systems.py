"""The systems under test: how to start, find, and stop each one on loopback.

Every system is started by a launcher in the background; the harness learns the server's pid
(for /proc accounting) and measures readiness itself with a librdkafka probe (see run.py), so
all systems are timed the same way regardless of how their launcher decides it is "up".
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PULSAR_SH = REPO / "scripts" / "pulsar.sh"


@dataclass
class Launch:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log: Path


class System:
    name = ""
    label = ""
    # CPUs the server runs on (``bench/run.py --pin``); None: wherever the scheduler likes
    cpus: set[int] | None = None
    # Kafka release of the Java tools that drive it; None: scripts/kafka.sh's default
    java_tools_version: str | None = None

    def unavailable(self) -> str | None:
        """None when the system can be run here, else the reason (shown in the report)."""
        return None

    def version(self) -> str:
        return ""

    def command(self, data_dir: str, port: int) -> list[str]:
        raise NotImplementedError

    def launch(self, data_dir: Path, port: int) -> Launch:
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir / "launcher.log"
        cpus = self.cpus
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                self.command(str(data_dir), port),
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                start_new_session=True,
                # inherited by everything the launcher starts (JVMs, a Pulsar of its own)
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        return Launch(proc, data_dir, port, log)

    def server_pid(self, launch: Launch) -> int | None:
        """pid of the server process (may appear some time after launch)."""
        return launch.proc.pid if launch.proc.poll() is None else None

    def storage_pids(self, launch: Launch) -> list[int]:
        """Processes outside the server's own tree that are part of the system (its storage),
        counted in its RSS and CPU."""
        return []

    def launcher_failed(self, launch: Launch) -> str | None:
        """An error text once the launcher has given up, else None."""
        rc = launch.proc.poll()
        if rc is not None and rc != 0:
            return f"launcher exited with status {rc}: {tail(launch.log)}"
        return None

    def stop(self, launch: Launch) -> None:
        stop_process(launch.proc)


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class ScriptSystem(System):
    """A system started by a ``SCRIPT start DATA_DIR PORT`` / ``SCRIPT stop DATA_DIR`` launcher
    that writes the server's pid to ``DATA_DIR/<pidfile>`` and exits 0 once the server is up."""

    script: Path
    pidfile = ""

    def command(self, data_dir: str, port: int) -> list[str]:
        return [str(self.script), "start", data_dir, str(port)]

    def server_pid(self, launch: Launch) -> int | None:
        try:
            return int((launch.data_dir / self.pidfile).read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, launch: Launch) -> None:
        subprocess.run(
            [str(self.script), "stop", str(launch.data_dir)],
            cwd=REPO,
            capture_output=True,
            timeout=120,
            check=False,
        )
        stop_process(launch.proc)


class Kafka(ScriptSystem):
    name = "kafka"
    script = REPO / "scripts" / "kafka.sh"
    pidfile = "kafka.pid"

    def __init__(self) -> None:
        self.label = f"Apache Kafka {self.version()}"

    def unavailable(self) -> str | None:
        if not self.script.exists():
            return "scripts/kafka.sh is missing"
        cp = subprocess.run(
            [str(self.script), "fetch"], capture_output=True, text=True, cwd=REPO, check=False
        )
        if cp.returncode != 0:
            return f"scripts/kafka.sh fetch failed: {cp.stderr.strip()[-800:]}"
        return None

    def version(self) -> str:
        if not self.script.exists():
            return "?"
        cp = subprocess.run(
            [str(self.script), "version"], capture_output=True, text=True, check=False
        )
        return cp.stdout.strip()


class Kop(System):
    """kop on its embedded log (``kop serve --storage file://DIR``)."""

    name = "kop"
    label = "kop (embedded log)"

    def __init__(self) -> None:
        self.bin = os.environ.get("KOP_BIN", str(VENV_BIN / "kop"))
        if self.unavailable() is None:
            self.label = f"{self.version()} (embedded log)"

    def unavailable(self) -> str | None:
        if not shutil.which(self.bin) and not Path(self.bin).exists():
            return f"not measured yet: {self.bin} does not exist (kop is not installed)"
        try:
            cp = subprocess.run(
                [self.bin, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError as e:
            return f"not measured yet: {self.bin} --version: {e}"
        if cp.returncode != 0:
            return f"not measured yet: `kop --version` failed: {(cp.stderr or cp.stdout)[-400:]}"
        return None

    def version(self) -> str:
        try:
            cp = subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=30)
            return cp.stdout.strip()
        except OSError:
            return "?"

    def command(self, data_dir: str, port: int) -> list[str]:
        store = Path(data_dir) / "log"
        store.mkdir(parents=True, exist_ok=True)
        return self.serve_command(port, "--storage", f"file://{store}")

    def serve_command(self, port: int, *storage: str) -> list[str]:
        """``kop serve`` on 127.0.0.1:port with the given storage options. No first-rebalance
        delay, as the Kafka (scripts/kafka.sh) and KoP the harness runs, so a consumer's join
        time compares."""
        return [
            self.bin,
            "serve",
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{port}",
            "--group-initial-rebalance-delay-ms",
            "0",
            *storage,
        ]


class KopOnPulsar(Kop):
    """kop with Apache Pulsar storage: a Pulsar standalone of its own (``scripts/pulsar.sh``,
    started by the launcher, so time-to-first-produce includes Pulsar's start), then
    ``kop serve --storage pulsar://``. pulsar.sh starts the Pulsar JVM detached (it is not
    among kop's descendants), so ``storage_pids`` names it: RSS and CPU are kop's plus its
    Pulsar's (the whole storage system, as for Kafka)."""

    name = "kop-pulsar"

    def __init__(self) -> None:
        super().__init__()
        if self.unavailable() is None:
            self.label = f"{self.version()} (Pulsar storage)"

    @staticmethod
    def _ports(data_dir: str) -> tuple[int, int]:
        """Pulsar's broker and web ports for this run (derived from free ports at launch)."""
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        (Path(data_dir) / "pulsar-ports").write_text(f"{ports[0]} {ports[1]}")
        return ports[0], ports[1]

    def command(self, data_dir: str, port: int) -> list[str]:
        pulsar_dir = Path(data_dir) / "pulsar"
        pulsar_dir.mkdir(parents=True, exist_ok=True)
        broker, web = self._ports(data_dir)
        script = (
            f"PULSAR_BROKER_PORT={broker} PULSAR_WEB_PORT={web} "
            f"{shlex.quote(str(PULSAR_SH))} start {shlex.quote(str(pulsar_dir))} >&2 && "
            f"exec {shlex.join(self.serve_args(port, broker, web))}"
        )
        return ["bash", "-c", script]

    def serve_args(self, port: int, broker: int, web: int) -> list[str]:
        """``kop serve`` on 127.0.0.1:port, storing in the Pulsar at broker/web (also used by
        bench/pulsar_direct.py, which starts kop on a Pulsar it shares with Pulsar's clients)."""
        return self.serve_command(
            port,
            "--storage",
            f"pulsar://127.0.0.1:{broker}",
            "--pulsar-admin-url",
            f"http://127.0.0.1:{web}",
        )

    def storage_pids(self, launch: Launch) -> list[int]:
        try:
            pid = int((launch.data_dir / "pulsar" / "pulsar.pid").read_text().strip())
        except (OSError, ValueError):
            return []
        return [pid] if Path(f"/proc/{pid}").exists() else []

    def stop(self, launch: Launch) -> None:
        stop_process(launch.proc)
        subprocess.run(
            ["bash", str(PULSAR_SH), "stop", str(launch.data_dir / "pulsar")],
            capture_output=True,
            timeout=120,
            check=False,
        )


class StreamNativeKoP(ScriptSystem):
    """StreamNative's KoP protocol handler (NAR) inside a Pulsar standalone broker."""

    name = "koP"
    script = REPO / "bench" / "systems" / "kop_pulsar_plugin.sh"
    pidfile = "pulsar.pid"
    # KoP 3.1.1.1 closes the connection of Kafka Java clients >= 3.9 (ApiVersions v4+)
    java_tools_version = os.environ.get("KOP_JAVA_TOOLS_VERSION", "3.8.1")

    def __init__(self) -> None:
        self.label = f"KoP {self.version().split()[0]} (StreamNative)"

    def unavailable(self) -> str | None:
        cp = subprocess.run(
            [str(self.script), "fetch"], capture_output=True, text=True, cwd=REPO, check=False
        )
        if cp.returncode != 0:
            return f"could not be resolved: {cp.stderr.strip()[-1500:]}"
        tools = subprocess.run(
            [str(Kafka.script), "fetch"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
            env={**os.environ, "KAFKA_VERSION": str(self.java_tools_version)},
        )
        if tools.returncode != 0:
            return f"Kafka {self.java_tools_version} Java tools: {tools.stderr.strip()[-800:]}"
        return None

    def version(self) -> str:
        cp = subprocess.run(
            [str(self.script), "version"], capture_output=True, text=True, check=False
        )
        return cp.stdout.strip()


ALL: dict[str, type[System]] = {
    "kafka": Kafka,
    "kop": Kop,
    "kop-pulsar": KopOnPulsar,
    "koP": StreamNativeKoP,
}
