"""KIP-1071 Streams groups and copartitioning, with a real Kafka Streams 4.4 app
(tests/clients/java/OrderJoin.java, ``group.protocol=streams``): orders (3 partitions) re-keyed
by customer and joined with a customers KTable (2 partitions). The re-key puts a repartition
topic in a copartition group with the customers topic, so the coordinator must give it the
customers' 2 partitions (not the 3 of its upstream orders): otherwise keys land in
partitions the table's do not match and joins are lost. Joined as keyed instead, orders and
customers are the copartition group themselves, and their counts differ: the heartbeat's status
INCORRECTLY_PARTITIONED_TOPICS makes the Streams client fail with Kafka's detail. One JVM per
test (~10 s each).

Static membership (``group.instance.id``) with the same app: of two instances, one is stopped
(it leaves as a static member) and restarted within the session timeout; it gets its tasks back
and the other keeps its member id and tasks (``kafka-streams-groups --describe --members
--verbose``). Two JVMs and a restart (~25 s)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import ck, java, txn
from helpers.data import Rec
from helpers.servers import ServerHandle

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

STREAMS_GROUP_COMMAND = "org.apache.kafka.tools.streams.StreamsGroupCommand"
CUSTOMERS = {f"c{i}": f"name{i}" for i in range(8)}
ORDERS = 60


class OrderJoinApp:
    """An OrderJoin instance; a thread collects its state changes and errors."""

    def __init__(self, classes: txn.JavaClasses, args: list[str], log: Path) -> None:
        self.log = log
        self.proc = txn.start_java(classes.streams_classpath, "OrderJoin", args, log)
        self.states: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                if "error" in event:
                    self.errors.append(event["error"])
                else:
                    self.states.append(event["state"])

    def running(self) -> bool:
        assert self.proc.poll() is None, f"OrderJoin exited {self.proc.returncode}: {self.tail()}"
        assert not self.errors, self.errors
        return bool(self.states) and self.states[-1] == "RUNNING"

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.3)


def partition_counts(bootstrap: str, prefix: str) -> dict[str, int]:
    """Every topic whose name starts with ``prefix``, with its partition count."""
    md = ck.admin(bootstrap).list_topics(timeout=20)
    return {n: len(t.partitions) for n, t in md.topics.items() if n.startswith(prefix)}


def produce_customers(bootstrap: str, topic: str) -> None:
    """Keyed as Kafka's Java producer would (murmur2), as Streams partitions its repartition
    topics."""
    recs = [Rec(-1, k.encode(), v.encode()) for k, v in CUSTOMERS.items()]
    ck.produce(bootstrap, topic, recs, partitioner="murmur2_random")


def order(i: int) -> tuple[str, str]:
    """Order ``o<i>``: (key, value) in the orders topic."""
    return f"o{i}", f"c{i % len(CUSTOMERS)}:item{i}"


def joined(bootstrap: str, topic: str) -> list[tuple[str | None, str]]:
    return sorted(
        kv
        for recs in txn.read_records(bootstrap, topic, 2, "read_uncommitted").values()
        for kv in recs
    )


@pytest.mark.timeout(120)
def test_a_rekeyed_join_gets_its_repartition_topic_copartitioned_with_the_table(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    bootstrap = server.bootstrap
    orders = ck.create_topic(bootstrap, ck.unique("cp-orders"), 3)
    customers = ck.create_topic(bootstrap, ck.unique("cp-customers"), 2)
    out = ck.create_topic(bootstrap, ck.unique("cp-out"), 2)
    app_id = ck.unique("cp-app")
    produce_customers(bootstrap, customers)
    app = OrderJoinApp(
        java_classes.with_streams(),
        [bootstrap, app_id, orders, customers, out, str(tmp_path / "state"), "rekey"],
        tmp_path / "app.log",
    )
    try:
        wait("RUNNING", app.running, 60)
        # The internal topics: the repartition topic has the customers' 2 partitions (its
        # upstream orders topic has 3), the table's changelog one per task of its subtopology.
        internal = partition_counts(bootstrap, app_id)
        repartition = [n for n in internal if n.endswith("-repartition")]
        assert len(repartition) == 1, internal
        changelog = f"{app_id}-customers-changelog"
        assert internal == {repartition[0]: 2, changelog: 2}, internal
        # The table holds every customer before any order comes.
        wait(
            "customers in the table",
            lambda: (
                sum(hi for _, hi in ck.watermarks(bootstrap, changelog, [0, 1]).values())
                == len(CUSTOMERS)
            ),
            30,
        )
        ck.produce(
            bootstrap, orders, [Rec(i % 3, *map(str.encode, order(i))) for i in range(ORDERS)]
        )
        want = sorted(
            (c, f"{o}:{item}@{CUSTOMERS[c]}")
            for o, v in map(order, range(ORDERS))
            for c, item in [v.split(":")]
        )
        wait("every order joined", lambda: len(joined(bootstrap, out)) >= ORDERS, 45)
        assert joined(bootstrap, out) == want
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- app ---\n{app.tail()}") from e
    finally:
        txn.kill_group(app.proc)


@pytest.mark.timeout(90)
def test_copartitioned_source_topics_with_different_counts_fail_the_app(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    bootstrap = server.bootstrap
    orders = ck.create_topic(bootstrap, ck.unique("cpx-orders"), 3)
    customers = ck.create_topic(bootstrap, ck.unique("cpx-customers"), 2)
    out = ck.create_topic(bootstrap, ck.unique("cpx-out"), 2)
    app_id = ck.unique("cpx-app")
    app = OrderJoinApp(
        java_classes.with_streams(),
        [bootstrap, app_id, orders, customers, out, str(tmp_path / "state"), "direct"],
        tmp_path / "app.log",
    )
    try:
        wait("the stream thread's failure", lambda: bool(app.errors), 60)
        # Kafka's status detail, through the Streams client's TopologyException.
        assert app.errors[0] == (
            "TopologyException: Invalid topology: Following topics do not have the same number "
            f"of partitions: [{{{customers}=2, {orders}=3}}]"
        ), app.errors
        assert "RUNNING" not in app.states, app.states
        # Nothing was created for a topology that cannot run.
        assert partition_counts(bootstrap, app_id) == {}
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- app ---\n{app.tail()}") from e
    finally:
        txn.kill_group(app.proc)


def members(bootstrap: str, group: str) -> dict[str, tuple[str, str, str]]:
    """``kafka-streams-groups --describe --members --verbose``: client id -> (member id, member
    epoch, the rest of its row: assignment and target assignment)."""
    described = java.run_class(
        STREAMS_GROUP_COMMAND,
        ["--bootstrap-server", bootstrap, "--describe", "--members", "--verbose", "--group", group],
        timeout=60,
    ).stdout
    out = {}
    for line in described.splitlines():
        if line.startswith(group + " "):
            f = line.split(None, 8)
            # GROUP TARGET-ASSIGNMENT-EPOCH TOPOLOGY-EPOCH MEMBER MEMBER-PROTOCOL MEMBER-EPOCH
            # PROCESS CLIENT-ID ...
            out[f[7]] = (f[3], f[5], f[8] if len(f) > 8 else "")
    return out


@pytest.mark.timeout(180)
def test_a_static_member_restarted_within_the_session_timeout_gets_its_tasks_back(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    bootstrap = server.bootstrap
    orders = ck.create_topic(bootstrap, ck.unique("st-orders"), 3)
    customers = ck.create_topic(bootstrap, ck.unique("st-customers"), 2)
    out = ck.create_topic(bootstrap, ck.unique("st-out"), 2)
    app_id = ck.unique("st-app")
    produce_customers(bootstrap, customers)
    classes = java_classes.with_streams()

    def start(i: int) -> OrderJoinApp:
        args = [bootstrap, app_id, orders, customers, out, str(tmp_path / f"state{i}"), "rekey"]
        return OrderJoinApp(classes, [*args, f"inst{i}"], tmp_path / f"app{i}.log")

    apps = [start(0), start(1)]
    try:
        wait("both RUNNING", lambda: all(a.running() for a in apps), 60)

        def settled() -> dict[str, tuple[str, str, str]]:
            """The members once both hold their whole target, at one epoch (else {})."""
            m = members(bootstrap, app_id)
            epochs = {e for _, e, _ in m.values()}
            whole = all(
                t.startswith("ACTIVE:")
                and t.split("TARGET-ACTIVE:")[0].removeprefix("ACTIVE:").strip()
                == t.split("TARGET-ACTIVE:")[-1].strip()
                for _, _, t in m.values()
            )
            return m if len(m) == 2 and len(epochs) == 1 and whole else {}

        before: dict[str, tuple[str, str, str]] = {}
        wait("both members settled", lambda: bool(before.update(settled()) or before), 60)
        static = {c: v for c, v in before.items() if c.startswith("inst1")}
        other = {c: v for c, v in before.items() if c.startswith("inst0")}
        assert len(static) == len(other) == 1, before

        # A graceful stop leaves as a static member; the restart comes back within the
        # session timeout (45 s) with the same instance id.
        apps[1].proc.terminate()
        apps[1].proc.wait(timeout=30)
        apps[1] = start(1)
        wait("restarted instance RUNNING", apps[1].running, 60)
        after: dict[str, tuple[str, str, str]] = {}
        wait("both members settled again", lambda: bool(after.update(settled()) or after), 30)
        # The other member kept its member id and tasks. (Its member epoch may move on: Kafka
        # 4.4 bumps the group epoch when the static member comes back, with the same target.)
        kept = {c: (m, t) for c, (m, _, t) in after.items() if c.startswith("inst0")}
        assert kept == {c: (m, t) for c, (m, _, t) in other.items()}, (other, after)
        # The restarted one is a new member with the tasks the instance had.
        ((client, (member, _, tasks)),) = (
            (c, v) for c, v in after.items() if c.startswith("inst1")
        )
        assert member != static[client][0] and tasks == static[client][2], (static, after)
    except AssertionError as e:
        logs = "\n".join(f"--- app{i} ---\n{a.tail()}" for i, a in enumerate(apps))
        raise AssertionError(f"{e}\n{logs}") from e
    finally:
        for a in apps:
            txn.kill_group(a.proc)
