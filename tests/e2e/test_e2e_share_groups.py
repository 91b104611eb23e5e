"""Share groups (KIP-932, Kafka queues) with the Java KafkaShareConsumer of kafka-clients 4.4
(tests/clients/java/ShareClient.java): two consumers share one partition's records with no
record accepted twice, a released record comes back with a higher delivery count, the records
of a consumer killed while holding them come back once their lock expires, accepted records
stay accepted across a restart (kill -9 where the target allows it), and
`kafka-share-groups --describe` shows the group. One ShareClient JVM per target serves the
scenarios; the server runs with 3 s acquisition locks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TARGETS
from helpers import ck, java, txn
from helpers.data import Rec
from helpers.servers import ServerHandle, free_port, start_server

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

LOCK_MS = 3000
SHARE_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"


class ShareServe(txn.TxnServe):
    """A running ``ShareClient serve``: ``call("split", group, topic, n)`` -> its JSON answer,
    which must not be an error."""

    def __init__(self, classes: txn.JavaClasses, bootstrap: str, log: Path) -> None:
        super().__init__(classes, bootstrap, log, main="ShareClient")

    def call(self, *words: object) -> dict[str, Any]:
        out = super().call(*words)
        assert "error" not in out, out
        return out


@pytest.fixture(scope="module", params=TARGETS)
def sserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One server per target with short acquisition locks; kop also starts share partitions
    at the earliest offset (Kafka gets that as a group config from ShareClient's `earliest`)."""
    target = request.param
    options: dict[str, Any] = {"group_share_record_lock_duration_ms": LOCK_MS}
    if target != "kafka":
        options["share_auto_offset_reset"] = "earliest"
    if target == "kop-embedded":  # restarts on the same port
        options["listeners"] = [f"PLAINTEXT://127.0.0.1:{free_port()}"]
    srv = start_server(target, tmp_path_factory.mktemp(f"{target}-share"), **options)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(
    sserver: ServerHandle, java_classes: txn.JavaClasses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShareServe]:
    c = ShareServe(java_classes, sserver.bootstrap, tmp_path_factory.mktemp("share") / "err.log")
    yield c
    c.close()


def _topic_with(bootstrap: str, prefix: str, n: int) -> tuple[str, list[str]]:
    topic = ck.create_topic(bootstrap, ck.unique(prefix), 1)
    values = [f"v{i}" for i in range(n)]
    ck.produce(bootstrap, topic, [Rec(0, None, v.encode()) for v in values], linger_ms=0)
    return topic, values


def _group(client: ShareServe, prefix: str) -> str:
    group = ck.unique(prefix)
    client.call("earliest", group)
    return group


@pytest.mark.timeout(120)
def test_two_consumers_share_one_partition(sserver: ServerHandle, client: ShareServe) -> None:
    """Two share consumers on one partition: every record delivered, none accepted twice, and
    kafka-share-groups describes the group's share partition."""
    topic, values = _topic_with(sserver.bootstrap, "share-split", 2000)
    group = _group(client, "sg-split")
    out = client.call("split", group, topic, len(values))
    assert out["errors"] == [], out
    assert out["distinct"] == len(values), out
    assert out["duplicates"] == 0, out
    assert out["a"] + out["b"] == len(values), out
    described = java.run_class(
        SHARE_GROUP_COMMAND,
        ["--bootstrap-server", sserver.bootstrap, "--describe", "--group", group],
        timeout=60,
    ).stdout
    rows = [line.split() for line in described.splitlines() if topic in line]
    assert rows and rows[0][0] == group and rows[0][1] == topic, described
    # The start offset as last stored (Kafka stores it lazily: anywhere up to the log end).
    assert rows[0][2] == "0" and 0 <= int(rows[0][3]) <= len(values), described
    print(f"split between the two consumers: {out['a']} / {out['b']}")


@pytest.mark.timeout(120)
def test_released_record_is_redelivered(sserver: ServerHandle, client: ShareServe) -> None:
    """A record the consumer releases comes back to it with delivery count 2."""
    topic, _ = _topic_with(sserver.bootstrap, "share-release", 5)
    out = client.call("release", _group(client, "sg-release"), topic)
    assert out["value"] is not None and out["counts"] == [1, 2], out


@pytest.mark.timeout(120)
def test_records_of_a_killed_consumer_come_back_after_the_lock(
    sserver: ServerHandle, client: ShareServe, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """A consumer holding records is killed (-9) without acknowledging: another member gets
    them once their acquisition lock expired, with delivery count 2; the rest once."""
    topic, values = _topic_with(sserver.bootstrap, "share-kill", 50)
    group = _group(client, "sg-kill")
    holder = txn.start_java(
        java_classes.classpath,
        "ShareClient",
        ["hold", sserver.bootstrap, group, topic, "50"],
        tmp_path / "hold.log",
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line, (tmp_path / "hold.log").read_text(errors="replace")[-3000:]
        held = json.loads(line)["held"]
        assert held, "the holder got no records"
    finally:
        txn.kill_group(holder)
    killed_at = time.monotonic()
    got = client.call("drain", group, topic, len(values), 30_000)["got"]
    assert sorted(got) == sorted(values), got
    assert all(got[v] == [2] for v in held), got
    assert all(got[v] == [1] for v in values if v not in held), got
    # Nothing held came back before its lock could have expired.
    assert time.monotonic() - killed_at > (LOCK_MS - 1000) / 1000


@pytest.mark.timeout(180)
def test_accepted_records_stay_accepted_across_a_restart(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """Records accepted before a restart (kill -9 where the target can) are not delivered
    again; records produced after it are."""
    topic, values = _topic_with(sserver.bootstrap, "share-restart", 100)
    group = _group(client, "sg-restart")
    first = client.call("drain", group, topic, len(values), 30_000)["got"]
    assert sorted(first) == sorted(values)
    if sserver.can_kill:
        sserver.kill()
        sserver.start()
    else:
        sserver.restart()
    more = [f"w{i}" for i in range(20)]
    ck.produce(sserver.bootstrap, topic, [Rec(0, None, v.encode()) for v in more], linger_ms=0)
    # A little longer than needed: a redelivered accepted record would show up meanwhile.
    second = client.call("drain", group, topic, len(more) + 1, 8_000)["got"]
    assert sorted(second) == sorted(more), second
