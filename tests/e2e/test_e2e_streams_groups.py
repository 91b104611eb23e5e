"""KIP-1071 Streams groups with real clients: a Kafka Streams 4.4 word count
(tests/clients/java/WordCount.java with ``group.protocol=streams``) runs as two application
instances; the coordinator assigns the tasks and creates the internal topics. One instance is
stopped mid-run: its tasks move to the survivor and the final counts are exact.
``kafka-streams-groups --describe`` shows the group while both run. Each instance has an
``application.server`` endpoint: through the heartbeat's PartitionsByUserEndpoint each sees both
instances' partitions (``metadataForAllStreamsClients``) and the same host for a key
(``queryMetadataForKey``), and after the stop only the survivor's. One JVM pair per target."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path

import pytest

from helpers import ck, java, txn
from helpers.data import Rec
from helpers.servers import ServerHandle

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

STREAMS_GROUP_COMMAND = "org.apache.kafka.tools.streams.StreamsGroupCommand"
WORDS = [f"w{i:02d}" for i in range(10)]
# The instances' application.server (advertised only: nothing listens there).
ENDPOINTS = ["localhost:7101", "localhost:7102"]
LINES = 200  # per half


class _App:
    """A WordCount instance; a thread collects its state changes."""

    def __init__(self, classes: txn.JavaClasses, args: list[str], log: Path) -> None:
        self.log = log
        self.proc = txn.start_java(classes.streams_classpath, "WordCount", args, log)
        self.states: list[str] = []
        # The latest IQ view: endpoint -> {"active": [...], "standby": [...]}, and w00's host.
        self.iq: dict[str, dict[str, list[str]]] = {}
        self.w00 = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                if "iq" in event:
                    self.iq, self.w00 = event["iq"], event["w00"]
                else:
                    self.states.append(event["state"])

    def running(self) -> bool:
        assert self.proc.poll() is None, f"WordCount exited {self.proc.returncode}: {self.tail()}"
        return bool(self.states) and self.states[-1] == "RUNNING"

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def _recs(lines: list[str]) -> list[Rec]:
    return [Rec(i % 2, None, line.encode()) for i, line in enumerate(lines)]


def _iq_complete(app: _App, source: str, hosts: list[str]) -> bool:
    """Whether the app's IQ view names exactly ``hosts``, each with active partitions, that
    together hold the four input partitions (source and repartition topic) once each."""
    active = [tp for host in app.iq.values() for tp in host["active"]]
    topics = {tp.rsplit("-", 1)[0] for tp in active}
    return (
        sorted(app.iq) == hosts
        and len(active) == len(set(active)) == 4
        and {f"{source}-0", f"{source}-1"} <= set(active)
        and all(t == source or t.endswith("-repartition") for t in topics)
        and all(host["active"] for host in app.iq.values())
    )


@pytest.mark.timeout(150)
def test_streams_word_count_tasks_move_to_the_survivor(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    bootstrap = server.bootstrap
    source = ck.create_topic(bootstrap, ck.unique("sg-in"), 2)
    sink = ck.create_topic(bootstrap, ck.unique("sg-out"), 2)
    app_id = ck.unique("sg-app")
    rng = random.Random(7)
    lines = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(2 * LINES)]
    classes = java_classes.with_streams()
    apps = [
        _App(
            classes,
            [bootstrap, app_id, source, sink, str(tmp_path / f"state{i}"), "streams", ENDPOINTS[i]],
            tmp_path / f"app{i}.log",
        )
        for i in range(2)
    ]
    try:
        txn.wait_for("both instances RUNNING", lambda: all(a.running() for a in apps), 60)
        first = Counter(w for line in lines[:LINES] for w in line.split())
        ck.produce(bootstrap, source, _recs(lines[:LINES]))
        txn.wait_for(
            "first half counted", lambda: txn.latest_counts(bootstrap, sink) == dict(first), 45
        )

        described = java.run_class(
            STREAMS_GROUP_COMMAND,
            ["--bootstrap-server", bootstrap, "--describe", "--members", "--group", app_id],
            timeout=60,
        ).stdout
        assert app_id in described, described
        members = [ln for ln in described.splitlines() if ln.startswith(app_id)]
        assert len(members) == 2, described
        listed = java.run_class(
            STREAMS_GROUP_COMMAND, ["--bootstrap-server", bootstrap, "--list"], timeout=60
        ).stdout
        assert app_id in listed.split(), listed

        # Interactive Queries: both instances see both endpoints, the four input partitions
        # (source and repartition topic, two each) split between them, and agree on w00.
        txn.wait_for(
            "both endpoints known to both",
            lambda: all(_iq_complete(a, source, ENDPOINTS) for a in apps),
            20,
        )
        assert apps[0].iq == apps[1].iq, (apps[0].iq, apps[1].iq)
        assert apps[0].w00 == apps[1].w00 and apps[0].w00 in ENDPOINTS, (apps[0].w00, apps[1].w00)

        # A graceful stop: the instance leaves the group and its tasks move to the survivor.
        apps[1].proc.terminate()
        apps[1].proc.wait(timeout=30)
        ck.produce(bootstrap, source, _recs(lines[LINES:]))
        want = Counter(w for line in lines for w in line.split())
        txn.wait_for("all counted", lambda: txn.latest_counts(bootstrap, sink) == dict(want), 45)
        assert apps[0].running()
        # The survivor's view: itself only, with every partition and w00.
        txn.wait_for(
            "survivor alone in IQ", lambda: _iq_complete(apps[0], source, ENDPOINTS[:1]), 20
        )
        assert apps[0].w00 == ENDPOINTS[0], apps[0].w00
    except AssertionError as e:
        logs = "\n".join(f"--- app{i} iq={a.iq} ---\n{a.tail()}" for i, a in enumerate(apps))
        raise AssertionError(f"{e}\n{logs}") from e
    finally:
        for a in apps:
            txn.kill_group(a.proc)
