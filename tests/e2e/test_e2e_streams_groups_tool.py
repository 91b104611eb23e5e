"""``kafka-streams-groups`` (Kafka 4.4's StreamsGroupCommand) against a running Kafka Streams
4.4 app (tests/clients/java/WordCount.java, ``group.protocol=streams``, one instance), then
against its group once the app stopped, on every target and on Apache Kafka 4.4, asserting
what a user reads there: the columns, the group's state and epochs, the member's tasks, the
committed offsets with no lag; once the app left, the group still listed and described as
Empty (Kafka keeps an empty Streams group until its offsets expire), and ``--delete`` removing
it. The app's first assignment waits for the coordinator's initial rebalance delay (3 s, the
default), which the Streams client logs as status 5. One JVM for the app and seven tool runs:
~25 s a target."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import ck, java, txn
from helpers.data import Rec
from helpers.servers import ServerHandle

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

STREAMS_GROUP_COMMAND = "org.apache.kafka.tools.streams.StreamsGroupCommand"
DELAYED = "(5) Assignment delayed due to the configured initial rebalance delay."
LINES = 100  # 50 per source partition
# `--describe --state --verbose`
STATE_COLUMNS = [
    "GROUP",
    "COORDINATOR (ID)",
    "ASSIGNOR",
    "STATE",
    "GROUP-EPOCH",
    "TARGET-ASSIGNMENT-EPOCH",
    "#MEMBERS",
]


def _tool(bootstrap: str, *args: str) -> str:
    return java.run_class(
        STREAMS_GROUP_COMMAND, ["--bootstrap-server", bootstrap, *args], timeout=60
    ).stdout


def _table(out: str, header: list[str]) -> list[list[str]]:
    """The rows under the header line made of ``header``'s columns (values split on
    whitespace; a coordinator's ``host:port (id)`` is one value)."""
    lines = out.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.split() and ln.startswith(header[0])]
    assert starts, out
    at = starts[0]
    got = lines[at].replace("COORDINATOR (ID)", "COORDINATOR-(ID)").split()
    assert got == [h.replace(" ", "-") for h in header], out
    rows = []
    for ln in lines[at + 1 :]:
        if not ln.strip():
            break
        rows.append(ln.replace(" (", "-(").split())
    return rows


@pytest.mark.timeout(240)
def test_streams_groups_tool_on_a_running_app_and_its_empty_group(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    bootstrap = server.bootstrap
    source = ck.create_topic(bootstrap, ck.unique("sgt-in"), 2)
    sink = ck.create_topic(bootstrap, ck.unique("sgt-out"), 2)
    app_id = ck.unique("sgt-app")
    repartition = f"{app_id}-counts-repartition"
    log = tmp_path / "app.log"
    states: list[str] = []
    app = txn.start_java(
        java_classes.with_streams().streams_classpath,
        "WordCount",
        [bootstrap, app_id, source, sink, str(tmp_path / "state"), "streams"],
        log,
    )

    def read() -> None:
        assert app.stdout is not None
        for line in app.stdout:
            if line.startswith("{") and "state" in line:
                states.append(json.loads(line)["state"])

    threading.Thread(target=read, daemon=True).start()
    try:
        txn.wait_for("app RUNNING", lambda: app.poll() is None and states[-1:] == ["RUNNING"], 60)
        # The first assignment waited for the initial rebalance delay, and the member was told.
        assert DELAYED in log.read_text(errors="replace")
        rng = random.Random(3)
        lines = [f"w{rng.randrange(6)} w{rng.randrange(6)}" for _ in range(LINES)]
        ck.produce(bootstrap, source, [Rec(i % 2, None, ln.encode()) for i, ln in enumerate(lines)])
        want = Counter(w for ln in lines for w in ln.split())
        txn.wait_for("all counted", lambda: txn.latest_counts(bootstrap, sink) == dict(want), 45)
        header = [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LEADER-EPOCH",
            "LOG-END-OFFSET",
            "OFFSET-LAG",
        ]
        # Committed every 100 ms: the input's offsets are at its end, and so the repartition
        # topic's, no lag.
        deadline = time.monotonic() + 30
        while True:
            out = _tool(bootstrap, "--describe", "--group", app_id, "--offsets", "--verbose")
            offsets = {(r[1], int(r[2])): r for r in _table(out, header)}
            done = len(offsets) == 4 and all(r[6] == "0" for r in offsets.values())
            if done or time.monotonic() > deadline:
                break
        assert set(offsets) == {(source, 0), (source, 1), (repartition, 0), (repartition, 1)}
        assert [offsets[(source, p)][3] for p in (0, 1)] == ["50", "50"], out
        for r in offsets.values():
            assert r[0] == app_id and r[3] == r[5] and r[6] == "0", out

        listed = _table(_tool(bootstrap, "--list", "--state"), ["GROUP", "STATE"])
        assert [app_id, "Stable"] in listed, listed

        out = _tool(bootstrap, "--describe", "--group", app_id, "--state", "--verbose")
        state = _table(
            out,
            STATE_COLUMNS,
        )
        assert len(state) == 1, out
        group, _coordinator, assignor, st, epoch, target_epoch, members = state[0]
        assert (group, assignor, st, members) == (app_id, "sticky", "Stable", "1"), out
        assert epoch == target_epoch and int(epoch) > 0, out

        out = _tool(bootstrap, "--describe", "--group", app_id, "--members", "--verbose")
        header = [
            "GROUP",
            "TARGET-ASSIGNMENT-EPOCH",
            "TOPOLOGY-EPOCH",
            "MEMBER",
            "MEMBER-PROTOCOL",
            "MEMBER-EPOCH",
            "PROCESS",
            "CLIENT-ID",
            "ASSIGNMENTS",
        ]
        member = _table(out, header)
        assert len(member) == 1, out
        row = member[0]
        assert row[0] == app_id and row[1] == epoch and row[2] == "0", out
        assert (row[4], row[5]) == ("streams", epoch), out
        assert row[7] == f"{app_id}-{row[6]}-StreamThread-1-consumer", out
        # Both subtopologies' two tasks, active and in the target.
        assert " ".join(row[8:]) == (
            "ACTIVE: 0:[0,1]; 1:[0,1]; TARGET-ACTIVE: 0:[0,1]; 1:[0,1];"
        ), out

        # The app stops (leaves the group): the group stays, Empty, until deleted.
        app.terminate()
        app.wait(timeout=30)
        listed = _table(_tool(bootstrap, "--list", "--state"), ["GROUP", "STATE"])
        assert [app_id, "Empty"] in listed, listed
        out = _tool(bootstrap, "--describe", "--group", app_id, "--state", "--verbose")
        assert f"Streams group '{app_id}' has no active members." in out, out
        state = _table(
            out,
            STATE_COLUMNS,
        )
        assert [(r[0], r[3], r[6]) for r in state] == [(app_id, "Empty", "0")], out
        assert int(state[0][4]) > int(epoch), out
        # The empty target is the new epoch's (Kafka's fence of the last member).
        assert state[0][5] == state[0][4], out

        out = _tool(bootstrap, "--delete", "--group", app_id)
        assert f"Deletion of requested streams groups ('{app_id}') was successful." in out, out
        assert app_id not in _tool(bootstrap, "--list").split()
    except AssertionError as e:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise AssertionError(f"{e}\n--- app ---\n{tail}") from e
    finally:
        txn.kill_group(app)
