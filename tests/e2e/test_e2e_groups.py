"""Consumer groups end to end with real clients: three librdkafka consumers sharing a topic
while a producer writes (each record consumed once), membership churn and a killed member
(session timeout), cooperative-sticky keeping unaffected partitions, a restarted static member
keeping its partitions without a rebalance, offsets surviving restart and kill -9,
kafka-python and aiokafka groups, the Java consumer, the kafka-consumer-groups tool, and bad
input answered with Kafka's error codes."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import TARGETS
from helpers import ck, java, wire
from helpers.servers import ServerHandle, start_server

GROUP_CONFIG: dict[str, Any] = {"group_initial_rebalance_delay_ms": 0}
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"
MEMBER_SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "group_member.py"


@pytest.fixture(scope="module", params=TARGETS)
def gserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One server per target for this module, without the initial rebalance delay."""
    target = request.param
    if target == "kafka":
        java.fetch()
    srv = start_server(target, tmp_path_factory.mktemp(f"{target}-groups"), **GROUP_CONFIG)
    yield srv
    srv.stop()


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def group_consumer(bootstrap: str, group: str, **conf: Any) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Consumer(base)


def produce_n(bootstrap: str, topic: str, n: int, partition: int | None = None, **kw: Any) -> None:
    p: Producer = ck.producer(bootstrap, linger_ms=5)
    for i in range(n):
        args: dict[str, Any] = {"key": b"k%d" % i, "value": b"v%d" % i, **kw}
        if partition is not None:
            args["partition"] = partition
        while True:
            try:
                p.produce(topic, **args)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0


def commit_retrying(c: Consumer, tps: list[TopicPartition], timeout: float = 60) -> None:
    """Commit explicit offsets, retrying while a just-started broker loads its coordinator."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c.commit(offsets=tps, asynchronous=False)
            return
        except KafkaException as err:
            coordinator_moving = err.args[0].code() in (14, 15, 16)
            if not coordinator_moving or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Member:
    """A group member process (helpers/group_member.py) and the events it reported."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        strategy: str,
        instance: str | None = None,
        session_ms: int = 6000,
    ) -> None:
        cmd = [sys.executable, str(MEMBER_SCRIPT), bootstrap, topic, group, strategy]
        cmd += [instance or "-", str(session_ms)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    @property
    def owned(self) -> set[int]:
        for e in reversed(self.events):
            if "owned" in e:
                return set(e["owned"])
        return set()

    def rebalance_events(self) -> int:
        return sum(1 for e in self.events if e["event"] in ("assign", "revoke", "lost"))

    def revoked(self) -> list[int]:
        return [p for e in self.events if e["event"] in ("revoke", "lost") for p in e["partitions"]]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("close\n")
            self.proc.stdin.flush()
            self.proc.wait(30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def converged(members: list[Member], partitions: int) -> bool:
    owned = [m.owned for m in members]
    union = set().union(*owned)
    return (
        all(owned) and union == set(range(partitions)) and sum(len(o) for o in owned) == partitions
    )


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for m in started:
        if m.proc.poll() is None:
            m.kill()


@pytest.mark.timeout(300)
def test_three_consumers_consume_each_record_once(gserver):
    """3 consumers, 6 partitions, 50k records written while they consume, commit after
    processing: every record is consumed exactly once and the commits reach the log end."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("g3"), 6)
    group = ck.unique("g3")
    n = 50_000
    seen: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    assigned: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            c = group_consumer(bootstrap, group)

            def on_assign(_c: Consumer, parts: list[TopicPartition]) -> None:
                assigned[i] = {p.partition for p in parts}

            def on_revoke(_c: Consumer, parts: list[TopicPartition]) -> None:
                assigned[i] = set()

            c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
            while not stop.is_set():
                batch = [m for m in c.consume(num_messages=500, timeout=0.3) if not m.error()]
                with lock:
                    for m in batch:
                        seen[(m.partition(), m.offset())] += 1
                if batch:
                    c.commit(asynchronous=False)
            c.close()
        except BaseException as err:  # surfaced by the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: all(assigned.values()) and sum(len(a) for a in assigned.values()) == 6,
            60,
            "3 consumers sharing 6 partitions",
        )
        produce_n(bootstrap, topic, n)
        wait_until(lambda: len(seen) >= n or bool(errors), 180, f"{n} records consumed")
        time.sleep(1)  # a duplicate would show up now
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(seen) == n
    dupes = {k: v for k, v in seen.items() if v != 1}
    assert not dupes, f"consumed more than once: {list(dupes.items())[:10]}"
    c = group_consumer(bootstrap, group)
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=20)
        assert sum(tp.offset for tp in committed) == n
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_consumers_started_together_share_the_first_generation(gserver):
    """Issue 12, defect 10: with group.initial.rebalance.delay.ms=0 two librdkafka consumers
    started together (each in its own thread, as two processes would) get their partitions
    once, in the same rebalance, and keep them (kop used to give the first one everything,
    then rebalance at its next heartbeat, 3 s later). The heartbeat interval is librdkafka's
    default, so a late rebalance would show within the 8 s watched."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("together"), 4)
    group = ck.unique("together")
    events: list[tuple[float, int, str, list[int]]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        def record(kind: str) -> Callable[[Consumer, list[TopicPartition]], None]:
            def cb(_c: Consumer, parts: list[TopicPartition]) -> None:
                if not stop.is_set():
                    events.append((time.monotonic(), i, kind, sorted(p.partition for p in parts)))

            return cb

        try:
            c = group_consumer(
                bootstrap, group, heartbeat_interval_ms=3000, session_timeout_ms=10000
            )
            c.subscribe([topic], on_assign=record("assign"), on_revoke=record("revoke"))
            while not stop.is_set():
                c.poll(0.05)
            c.close()
        except BaseException as err:  # surfaced by the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: {i for _, i, kind, _ in events if kind == "assign"} == {0, 1} or bool(errors),
            60,
            "both consumers assigned",
        )
        time.sleep(8)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assigns = [(i, parts) for _, i, kind, parts in events if kind == "assign"]
    assert len(assigns) == 2, f"a second rebalance: {events}"
    assert not [e for e in events if e[2] == "revoke"], f"partitions were revoked: {events}"
    owned = [set(parts) for _, parts in sorted(assigns)]
    assert owned[0] and owned[1] and owned[0] | owned[1] == set(range(4)), assigns
    assert not owned[0] & owned[1], assigns
    assert max(t for t, *_ in events) - min(t for t, *_ in events) < 1.0, events


@pytest.mark.timeout(240)
def test_churn_cooperative_sticky_and_killed_member(gserver, members):
    """cooperative-sticky: joins move only the partitions that must move; a clean leave and a
    SIGKILLed member (session timeout) both converge to the survivors owning everything."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("churn"), 6)
    group = ck.unique("churn")
    a = Member(bootstrap, topic, group, "cooperative-sticky")
    members.append(a)
    wait_until(lambda: converged([a], 6), 60, "a owns all 6")
    b = Member(bootstrap, topic, group, "cooperative-sticky")
    members.append(b)
    wait_until(lambda: converged([a, b], 6), 60, "a and b share 6")
    assert set(a.revoked()) == b.owned, "a gave up only what b took"
    a_before, b_before = a.owned, b.owned
    c = Member(bootstrap, topic, group, "cooperative-sticky")
    members.append(c)
    # Cooperative rebalancing may pass through a complete but uneven assignment (a partition moves
    # per revocation round) before it settles at two each.
    wait_until(
        lambda: converged([a, b, c], 6) and len(c.owned) == 2, 60, "a, b and c own 2 each of 6"
    )
    assert a.owned <= a_before and b.owned <= b_before, "nobody gained while c joined"
    c.close()
    wait_until(lambda: converged([a, b], 6), 60, "a and b after c left")
    d = Member(bootstrap, topic, group, "cooperative-sticky")
    members.append(d)
    wait_until(lambda: converged([a, b, d], 6), 60, "a, b and d share 6")
    killed_at = time.monotonic()
    d.kill()
    wait_until(lambda: converged([a, b], 6), 60, "a and b after d was killed")
    assert time.monotonic() - killed_at > 3, "d was only noticed through its session timeout"
    a.close()
    b.close()


@pytest.mark.timeout(180)
def test_static_member_restart_keeps_partitions_without_rebalance(gserver, members):
    """A static member SIGKILLed and restarted within its session timeout rejoins with its old
    partitions; the other member sees no rebalance at all."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("static"), 4)
    group = ck.unique("static")
    a = Member(bootstrap, topic, group, "range", instance="inst-a", session_ms=30000)
    b = Member(bootstrap, topic, group, "range", instance="inst-b", session_ms=30000)
    members.extend([a, b])
    wait_until(lambda: converged([a, b], 4), 60, "a and b share 4")
    time.sleep(2)  # let any trailing rebalance settle
    a_parts, b_events = a.owned, b.rebalance_events()
    a.kill()
    a2 = Member(bootstrap, topic, group, "range", instance="inst-a", session_ms=30000)
    members.append(a2)
    wait_until(lambda: bool(a2.owned), 60, "restarted a assigned")
    assert a2.owned == a_parts
    time.sleep(3)
    assert b.rebalance_events() == b_events, f"b rebalanced: {b.events}"
    assert b.owned | a2.owned == set(range(4))
    a2.close()
    b.close()


@pytest.mark.timeout(180)
def test_librdkafka_consumer_protocol(gserver):
    """librdkafka with group.protocol=consumer (KIP-848): two consumers end up with two
    partitions each and together read every record exactly once, committing as they go."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("k848"), 4)
    group = ck.unique("k848")
    produce_n(bootstrap, topic, 400)
    seen: Counter[tuple[int, int]] = Counter()
    owned: dict[int, int] = {0: 0, 1: 0}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            c = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "group.protocol": "consumer",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                }
            )
            c.subscribe([topic])
            while not stop.is_set():
                batch = [m for m in c.consume(num_messages=50, timeout=0.3) if not m.error()]
                with lock:
                    for m in batch:
                        seen[(m.partition(), m.offset())] += 1
                if batch:
                    c.commit(asynchronous=False)
                owned[i] = len(c.assignment())
            c.close()
        except BaseException as err:  # surfaced by the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(1)
    try:
        wait_until(lambda: len(seen) >= 400 or bool(errors), 90, "400 records consumed")
        wait_until(lambda: owned == {0: 2, 1: 2} or bool(errors), 90, "two partitions each")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(seen) == 400 and set(seen.values()) == {1}


@pytest.mark.kop_process
@pytest.mark.timeout(300)
def test_offsets_survive_restart_and_kill(target, server_factory):
    """Committed offsets (and their metadata) survive a clean restart and a kill -9; a
    consumer in the group resumes from them."""
    srv = server_factory(target, **GROUP_CONFIG)
    topic = ck.create_topic(srv.bootstrap, ck.unique("dur"), 3)
    for p in range(3):
        produce_n(srv.bootstrap, topic, 50, partition=p)
    group = ck.unique("dur")

    def commit(offsets: dict[int, int]) -> None:
        c = group_consumer(srv.bootstrap, group)
        try:
            tps = [TopicPartition(topic, p, o, metadata=f"m{o}") for p, o in offsets.items()]
            commit_retrying(c, tps)
        finally:
            c.close()

    def committed() -> dict[int, tuple[int, str]]:
        c = group_consumer(srv.bootstrap, group)
        try:
            got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
            return {tp.partition: (tp.offset, tp.metadata) for tp in got}
        finally:
            c.close()

    commit({0: 10, 1: 20, 2: 30})
    srv.restart()
    assert committed() == {0: (10, "m10"), 1: (20, "m20"), 2: (30, "m30")}
    commit({0: 11, 1: 21})
    if srv.can_kill:
        srv.kill()
        srv.start()
    else:
        srv.restart()
    assert committed() == {0: (11, "m11"), 1: (21, "m21"), 2: (30, "m30")}
    c = group_consumer(srv.bootstrap, group)
    try:
        c.subscribe([topic])
        first: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while len(first) < 3 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                if not m.error():
                    first.setdefault(m.partition(), m.offset())
        assert first == {0: 11, 1: 21, 2: 30}
    finally:
        c.close()


@pytest.mark.timeout(180)
def test_kafka_python_and_aiokafka_share_a_group(gserver):
    """kafka-python consumes and commits part of a topic in a group; aiokafka picks up in the
    same group from the committed offsets and commits the rest."""
    from aiokafka import AIOKafkaConsumer
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTP

    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("kp"), 2)
    group = ck.unique("kp")
    for p in range(2):
        produce_n(bootstrap, topic, 100, partition=p)
    kc = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=30000,
    )
    got: Counter[int] = Counter()
    try:
        for msg in kc:
            if got[msg.partition] < 40:
                got[msg.partition] += 1
                kc.commit({KTP(topic, msg.partition): OffsetAndMetadata(msg.offset + 1, "", -1)})
            if all(got[p] >= 40 for p in range(2)):
                break
    finally:
        kc.close()
    assert got == {0: 40, 1: 40}

    async def rest() -> dict[int, list[int]]:
        ac = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await ac.start()
        out: dict[int, list[int]] = {0: [], 1: []}
        try:
            deadline = time.monotonic() + 60
            while sum(len(v) for v in out.values()) < 120 and time.monotonic() < deadline:
                batches = await ac.getmany(timeout_ms=500)
                for tp, msgs in batches.items():
                    out[tp.partition].extend(m.offset for m in msgs)
                if batches:
                    await ac.commit()
        finally:
            await ac.stop()
        return out

    out = asyncio.run(rest())
    assert out == {0: list(range(40, 100)), 1: list(range(40, 100))}
    c = group_consumer(bootstrap, group)
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(2)], timeout=20)
        assert [tp.offset for tp in committed] == [100, 100]
    finally:
        c.close()


@pytest.mark.java
@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("protocol", "assignor"), [("classic", None), ("consumer", None), ("consumer", "range")]
)
def test_java_consumer_group(gserver, kafka_tools, protocol, assignor):
    """kafka-clients (VerifiableConsumer) with the classic protocol and with KIP-848
    (`group.protocol=consumer`, server-side uniform and range assignors): two consumers in a
    group read every record, their commits succeed, and kafka-consumer-groups --describe
    shows the committed offsets."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("jg"), 4)
    group = ck.unique("jg")
    n = 2000
    produce_n(bootstrap, topic, n)
    extra = ["--group-remote-assignor", assignor] if assignor else []
    args = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group-id",
        group,
        "--group-protocol",
        protocol,
        *extra,
        "--max-messages",
        str(n // 2),
        "--reset-policy",
        "earliest",
        "--command-config",
        "/dev/null",
    ]
    procs = [
        subprocess.Popen(
            [str(java.KAFKA_SH), "run-class", VERIFIABLE_CONSUMER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    offsets: Counter[tuple[int, int]] = Counter()
    commits_ok = 0
    for proc in procs:
        out, _err = proc.communicate(timeout=180)
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if e["name"] == "records_consumed":
                for part in e["partitions"]:
                    for o in range(part["minOffset"], part["maxOffset"] + 1):
                        offsets[(part["partition"], o)] += 1
            elif e["name"] == "offsets_committed":
                assert e["success"], e
                commits_ok += 1
    assert len(offsets) == n, f"consumed {len(offsets)} distinct records of {n}"
    assert commits_ok > 0
    rows = describe_offsets(bootstrap, group)
    assert sum(int(cur) for cur, _, _ in rows.values()) == n, rows


def tool(bootstrap: str, *args: str) -> str:
    out = java.run_class(CONSUMER_GROUP_COMMAND, ["--bootstrap-server", bootstrap, *args])
    return out.stdout


def describe_offsets(bootstrap: str, group: str) -> dict[int, tuple[str, str, str]]:
    """partition -> (current offset, log end offset, lag) from `--describe`."""
    out = tool(bootstrap, "--describe", "--group", group)
    rows: dict[int, tuple[str, str, str]] = {}
    header: list[str] | None = None
    for line in out.splitlines():
        cols = line.split()
        if cols[:1] == ["GROUP"]:
            header = cols
        elif header and len(cols) >= 6 and cols[0] == group:
            row = dict(zip(header, cols, strict=False))
            rows[int(row["PARTITION"])] = (
                row["CURRENT-OFFSET"],
                row["LOG-END-OFFSET"],
                row["LAG"],
            )
    return rows


@pytest.mark.java
@pytest.mark.timeout(300)
def test_consumer_groups_tool(gserver, kafka_tools):
    """kafka-consumer-groups: --list, --describe (offset, log end, lag), --reset-offsets
    --to-earliest / --to-datetime --execute, --delete-offsets, --delete."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("cgt"), 2)
    group = ck.unique("cgt")
    base_ms = int(time.time() * 1000) - 3_600_000
    for p in range(2):
        for_ts = [base_ms + i * 1000 for i in range(50)]
        prod = ck.producer(bootstrap)
        for i, ts in enumerate(for_ts):
            prod.produce(topic, key=b"k", value=b"%d" % i, partition=p, timestamp=ts)
        assert prod.flush(30) == 0
    c = group_consumer(bootstrap, group)
    commit_retrying(c, [TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 40)])
    c.close()

    assert group in tool(bootstrap, "--list").split()
    assert describe_offsets(bootstrap, group) == {0: ("30", "50", "20"), 1: ("40", "50", "10")}

    tool(bootstrap, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
         "--execute")  # fmt: skip
    assert describe_offsets(bootstrap, group) == {0: ("0", "50", "50"), 1: ("0", "50", "50")}

    when = datetime.datetime.fromtimestamp((base_ms + 25_000) / 1000, tz=datetime.timezone.utc)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000") + "Z"
    tool(bootstrap, "--reset-offsets", "--group", group, "--topic", topic, "--to-datetime",
         stamp, "--execute")  # fmt: skip
    assert describe_offsets(bootstrap, group) == {0: ("25", "50", "25"), 1: ("25", "50", "25")}

    tool(bootstrap, "--delete-offsets", "--group", group, "--topic", f"{topic}:0")
    rows = describe_offsets(bootstrap, group)
    assert rows.get(1) == ("25", "50", "25") and rows.get(0, ("-",))[0] == "-", rows

    # Without its last offset the group stays, Empty (as on Kafka, until offsets expire).
    tool(bootstrap, "--delete-offsets", "--group", group, "--topic", f"{topic}:1")
    state = tool(bootstrap, "--describe", "--group", group, "--state")
    assert [ln for ln in state.splitlines() if ln.split()[:1] == [group] and "Empty" in ln], state

    out = tool(bootstrap, "--delete", "--group", group)
    assert re.search(r"[Dd]elet", out), out
    assert group not in tool(bootstrap, "--list").split()


# ---- bad input over the raw wire ---------------------------------------------------------


def _call(sock: Any, key: int, version: int, body: bytes) -> bytes:
    wire.send_all(sock, wire.request(key, version, 7, body))
    frame = wire.read_frame(sock)
    return frame[4:]  # past the correlation id


def _heartbeat_v3(group: str, generation: int, member: str) -> bytes:
    return wire.string(group) + wire.i32(generation) + wire.string(member) + wire.string(None)


def _sync_v3(group: str, generation: int, member: str) -> bytes:
    return (
        wire.string(group)
        + wire.i32(generation)
        + wire.string(member)
        + wire.string(None)
        + wire.i32(0)
    )


def _join_v5(group: str, member: str, metadata: bytes) -> bytes:
    return (
        wire.string(group)
        + wire.i32(10000)
        + wire.i32(10000)
        + wire.string(member)
        + wire.string(None)
        + wire.string("consumer")
        + wire.i32(1)
        + wire.string("range")
        + wire.nbytes(metadata)
    )


def _code(resp: bytes) -> int:
    """The error code of a v1+ response body (after throttle_time_ms)."""
    return int(struct.unpack(">h", resp[4:6])[0])


def _join_result(resp: bytes) -> tuple[int, int, str, str]:
    """(error, generation, leader, member id) of a JoinGroup v5 response."""
    r = wire._Reader(resp)
    r.i32()
    error, generation = r.i16(), r.i32()
    r.string()
    leader, member = r.string(), r.string()
    return error, generation, leader or "", member or ""


@pytest.mark.timeout(180)
def test_bad_input_gets_kafka_error_codes_and_group_stays_healthy(gserver, members):
    """Heartbeats from unknown members, a SyncGroup with a wrong generation, a JoinGroup with
    a foreign protocol type and member metadata too large to store get Kafka's codes; a real
    consumer's group is not disturbed and a raw member that got the errors carries on."""
    bootstrap = gserver.bootstrap
    topic = ck.create_topic(bootstrap, ck.unique("bad"), 2)
    group = ck.unique("bad")
    a = Member(bootstrap, topic, group, "range")
    members.append(a)
    wait_until(lambda: converged([a], 2), 60, "a owns both partitions")
    events = a.rebalance_events()
    host, port = bootstrap.split(":")
    sock = wire.connect(host, int(port))
    try:
        assert _code(_call(sock, 12, 3, _heartbeat_v3(group, 1, "nobody"))) == 25
        assert _code(_call(sock, 14, 3, _sync_v3(group, 999, "nobody"))) == 25
        foreign = (
            wire.string(group)
            + wire.i32(10000)
            + wire.i32(10000)
            + wire.string("")
            + wire.string(None)
            + wire.string("connect")
            + wire.i32(1)
            + wire.string("x")
            + wire.nbytes(b"")
        )
        assert _join_result(_call(sock, 11, 5, foreign))[0] == 23, "INCONSISTENT_GROUP_PROTOCOL"

        # A raw member of its own group: MEMBER_ID_REQUIRED, join, then bad and good calls.
        raw = ck.unique("raw")
        err, _, _, member = _join_result(_call(sock, 11, 5, _join_v5(raw, "", b"meta")))
        assert err == 79 and member, "MEMBER_ID_REQUIRED hands out the member id"
        err, gen, leader, member2 = _join_result(_call(sock, 11, 5, _join_v5(raw, member, b"m")))
        assert (err, leader, member2) == (0, member, member)
        assert _code(_call(sock, 14, 3, _sync_v3(raw, gen + 7, member))) == 22
        assert _code(_call(sock, 12, 3, _heartbeat_v3(raw, gen, "stranger"))) == 25
        assert _code(_call(sock, 12, 3, _heartbeat_v3(raw, gen + 1, member))) == 22
        assert _code(_call(sock, 14, 3, _sync_v3(raw, gen, member))) == 0
        assert _code(_call(sock, 12, 3, _heartbeat_v3(raw, gen, member))) == 0

        # Member metadata too large for the group's metadata record: the join is accepted,
        # storing the assignment fails with UNKNOWN_SERVER_ERROR and the group rebalances.
        big = ck.unique("big")
        _, _, _, bm = _join_result(_call(sock, 11, 5, _join_v5(big, "", b"x")))
        # A valid ConsumerProtocolSubscription v0 (Kafka parses it) with 2 MB of user data.
        huge = wire.i16(0) + wire.i32(1) + wire.string(topic) + wire.nbytes(b"x" * 2_000_000)
        err, bgen, _, _ = _join_result(_call(sock, 11, 5, _join_v5(big, bm, huge)))
        assert err == 0
        assert _code(_call(sock, 14, 3, _sync_v3(big, bgen, bm))) == -1, "UNKNOWN_SERVER_ERROR"
        assert _code(_call(sock, 12, 3, _heartbeat_v3(big, bgen, bm))) == 27
        assert _code(_call(sock, 12, 3, _heartbeat_v3(raw, gen, member))) == 0, "others fine"
    finally:
        sock.close()
    time.sleep(2)
    assert a.rebalance_events() == events, "the group was not disturbed"
    assert a.owned == {0, 1}
    a.close()
