"""Transactions in the end-to-end tests: what read_committed and read_uncommitted consumers see,
the scenario every transactional client runs (commit, abort, commit), and the kafka-clients
programs of tests/clients/java (compiled once per session against the jars of scripts/kafka.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from helpers import ck
from helpers.data import Rec
from helpers.servers import KAFKA_SH, ROOT

JAVA_SRC = ROOT / "tests" / "clients" / "java"
TOOLS_LOG4J = ROOT / "scripts" / "kafka" / "tools-log4j2.properties"
TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"
# How a fenced kafka-clients producer is told (transaction version 1 / 2, KIP-890).
FENCED = ("ProducerFencedException", "InvalidProducerEpochException")

PerPartition = dict[int, list[str]]


def end_offsets(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict[int, int]:
    """ListOffsets LATEST per partition: the high watermark (read_uncommitted) or the last stable
    offset (read_committed)."""
    level = {
        "read_committed": IsolationLevel.READ_COMMITTED,
        "read_uncommitted": IsolationLevel.READ_UNCOMMITTED,
    }[isolation]
    tps = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    admin = ck.admin(bootstrap)  # kept referenced until the futures are done
    futures = admin.list_offsets(tps, isolation_level=level, request_timeout=30)
    return {tp.partition: int(f.result(timeout=60).offset) for tp, f in futures.items()}


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Polls ``check`` until it holds; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.3)


def latest_counts(bootstrap: str, topic: str, partitions: int = 2) -> dict[str, int]:
    """Each key's latest value as a count, in a word-count app's output topic (at-least-once:
    the last update per key wins)."""
    last: dict[str, int] = {}
    for recs in read_records(bootstrap, topic, partitions, "read_uncommitted").values():
        for key, value in recs:
            assert key is not None
            last[key] = int(value)
    return last


def read_records(
    bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 60
) -> dict[int, list[tuple[str | None, str]]]:
    """Every (key, value) a librdkafka consumer with ``isolation`` reads from the beginning up to
    that isolation's end offset as of the call, per partition. Control records and aborted
    records are skipped by the client, which still moves its position past them."""
    end = end_offsets(bootstrap, topic, partitions, isolation)
    c = ck.consumer(bootstrap, isolation_level=isolation)
    out: dict[int, list[tuple[str | None, str]]] = {p: [] for p in range(partitions)}
    try:
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        c.assign(tps)
        deadline = time.monotonic() + timeout
        while True:
            positions = {tp.partition: tp.offset for tp in c.position(tps)}
            if all(end[p] == 0 or positions[p] >= end[p] for p in range(partitions)):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} read of {topic} stuck at {positions}, end offsets {end}"
                )
            for m in c.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                key, value = m.key(), m.value()
                out[m.partition()].append(
                    (key.decode() if key is not None else None, (value or b"").decode())
                )
    finally:
        c.close()


def read_values(
    bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 60
) -> PerPartition:
    """The values of ``read_records``."""
    recs = read_records(bootstrap, topic, partitions, isolation, timeout)
    return {p: [v for _, v in rs] for p, rs in recs.items()}


def scenario_values(prefix: str, partitions: int, n: int) -> tuple[PerPartition, PerPartition]:
    """(read_committed, read_uncommitted) views of the commit-abort-commit scenario: three
    transactions of ``n`` records each, record i (value ``{prefix}-c1-{i}``, ``-a-``, ``-c2-``)
    to partition ``i % partitions``; the middle one aborted."""
    committed: PerPartition = {p: [] for p in range(partitions)}
    everything: PerPartition = {p: [] for p in range(partitions)}
    for txn in ("c1", "a", "c2"):
        for i in range(n):
            value = f"{prefix}-{txn}-{i}"
            everything[i % partitions].append(value)
            if txn != "a":
                committed[i % partitions].append(value)
    return committed, everything


def check_scenario(bootstrap: str, topic: str, prefix: str, partitions: int, n: int) -> None:
    """librdkafka consumers of both isolation levels see exactly the scenario's records, and
    with no transaction open the last stable offset is the high watermark."""
    committed, everything = scenario_values(prefix, partitions, n)
    assert read_values(bootstrap, topic, partitions, "read_committed") == committed
    assert read_values(bootstrap, topic, partitions, "read_uncommitted") == everything
    hw = end_offsets(bootstrap, topic, partitions, "read_uncommitted")
    assert end_offsets(bootstrap, topic, partitions, "read_committed") == hw
    # each transaction ends with one marker per partition it wrote to
    assert hw == {p: len(everything[p]) + 3 for p in range(partitions)}


def int_keys(d: dict[str, list[str]]) -> PerPartition:
    """A JSON object keyed by partition numbers, keyed by int."""
    return {int(k): v for k, v in d.items()}


# ---- Java programs ----


def jvm(classpath: str, main: str, args: Sequence[str]) -> list[str]:
    """The command line of a Java main class (C1 only and a small heap: these are short runs)."""
    return [
        "java",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={TOOLS_LOG4J}",
        "-Dkop.tools.loglevel=warn",
        "-cp",
        classpath,
        main,
        *args,
    ]


class JavaClasses:
    """tests/clients/java compiled into ``out``: ``classpath`` runs TxnClient and ShareClient,
    and once ``with_streams()`` has been called, ``streams_classpath`` runs WordCount and
    OrderJoin."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.kafka_cp = _kafka_sh("classpath")
        self._compile(["TxnClient.java", "ShareClient.java"], self.kafka_cp)
        self.classpath = f"{out}:{self.kafka_cp}"
        self.streams_classpath = ""

    def with_streams(self) -> JavaClasses:
        if not self.streams_classpath:
            cp = _kafka_sh("streams-classpath")
            self._compile(["WordCount.java", "OrderJoin.java"], cp)
            self.streams_classpath = f"{self.out}:{cp}"
        return self

    def _compile(self, sources: list[str], classpath: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["javac", "-nowarn", "-d", str(self.out), "-cp", classpath]
            + [str(JAVA_SRC / s) for s in sources],
            check=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )


def _kafka_sh(command: str) -> str:
    return subprocess.run(
        [str(KAFKA_SH), command],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    ).stdout.strip()


def start_java(
    classpath: str, main: str, args: Sequence[str], log: Path, *, stdin: bool = False
) -> subprocess.Popen[str]:
    """A Java program in a process group of its own (so ``kill_group`` reaches the JVM),
    stdout piped, stderr to ``log``."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            jvm(classpath, main, args),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal the process group of ``proc`` (started by ``start_java``) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class TxnServe:
    """A running ``<main> serve`` of the Java test clients (``TxnClient`` by default,
    ``ShareClient``): ``call("cac", topic, ...)`` sends one command and returns its JSON
    answer."""

    def __init__(
        self, classes: JavaClasses, bootstrap: str, log: Path, main: str = "TxnClient"
    ) -> None:
        self.log = log
        self.main = main
        self.proc = start_java(classes.classpath, main, ["serve", bootstrap], log, stdin=True)
        assert self._answer() == {"ready": True}

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"{self.main} exited {self.proc.wait()}:\n{self.stderr_tail()}")
        out: dict[str, Any] = json.loads(line)
        return out

    def call(self, *words: object) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def stderr_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
        kill_group(self.proc)


def transactions_tool(bootstrap: str, *args: str) -> list[dict[str, str]]:
    """``kafka-transactions --bootstrap-server B ARGS``: its table as one dict per row."""
    from helpers import java

    out = java.run_class(
        TRANSACTIONS_COMMAND, ["--bootstrap-server", bootstrap, *args], timeout=60
    ).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return []
    header = [h.strip() for h in lines[0].split("\t")]
    return [
        dict(zip(header, (c.strip() for c in line.split("\t")), strict=False)) for line in lines[1:]
    ]


class Copier:
    """A running TxnClient copier. A thread reads its stdout as it comes, so the test acts on the
    copier's latest line: a readline after a slow step of the test would return lines the copier
    printed long before (it may have finished meanwhile)."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc, self.log = proc, log
        self.lines: queue.Queue[str | None] = queue.Queue()  # None: end of its output
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"copier silent for {timeout} s: {tail(self.log)}") from None

    def wait_open_transaction(self) -> None:
        """Until the copier's latest line says it has a transaction open (its records written)
        past 100 records."""
        while True:
            line = self._next(120)
            assert line is not None, f"copier exited {self.proc.wait()}: {tail(self.log)}"
            if json.loads(line).get("open", 0) > 100 and self.lines.empty():
                return

    def finish(self) -> None:
        """Until the copier exits; it must have printed "done" last."""
        out: list[str] = []
        while (line := self._next(180)) is not None:
            out.append(line)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == 0, f"copier: {out}\n{tail(self.log)}"
        assert out and '"done"' in out[-1], out

    def kill(self) -> None:
        kill_group(self.proc)


class CopyScenario:
    """The consume-transform-produce scenario: ``n`` input records on ``partitions``, copied by
    TxnClient copiers (20 records per transaction, 100 ms pause inside each) of one group and
    transactional id."""

    n = 600

    def __init__(
        self, bootstrap: str, classes: JavaClasses, tmp_path: Path, partitions: int = 2
    ) -> None:
        self.bootstrap, self.classes, self.tmp_path = bootstrap, classes, tmp_path
        self.partitions = partitions
        self.source = ck.create_topic(bootstrap, ck.unique("ctp-in"), self.partitions)
        self.sink = ck.create_topic(bootstrap, ck.unique("ctp-out"), self.partitions)
        recs = [
            Rec(i % self.partitions, f"k{i}".encode(), f"v{i}".encode(), ()) for i in range(self.n)
        ]
        ck.produce(bootstrap, self.source, recs).check_order(recs)
        self.group, self.tx = ck.unique("ctp-group"), ck.unique("ctp-tx")
        self.copiers = 0

    def start(self) -> Copier:
        self.copiers += 1
        log = self.tmp_path / f"copy{self.copiers}.log"
        args = ["copy", self.bootstrap, self.source, self.sink, self.group, self.tx, "20", "100"]
        return Copier(start_java(self.classes.classpath, "TxnClient", args, log), log)

    def check_exactly_once(self) -> PerPartition:
        """Every input record once in the output, in order; the group's offsets at the input's
        ends. Returns what a read_uncommitted reader sees."""
        bootstrap, parts = self.bootstrap, self.partitions
        want = {p: [f"copied:v{i}" for i in range(p, self.n, parts)] for p in range(parts)}
        assert read_values(bootstrap, self.sink, parts, "read_committed") == want
        c = ck.consumer(bootstrap, group_id=self.group)
        try:
            offsets = c.committed([TopicPartition(self.source, p) for p in range(parts)], 30)
        finally:
            c.close()
        assert {tp.partition: tp.offset for tp in offsets} == {
            p: self.n // parts for p in range(parts)
        }
        return read_values(bootstrap, self.sink, parts, "read_uncommitted")


def tail(path: Path, n: int = 30) -> str:
    """The last ``n`` lines of a log file ("" if it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""
