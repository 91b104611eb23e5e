"""Share groups (KIP-932, Kafka queues) with the Java KafkaShareConsumer of kafka-clients 4.4
(tests/clients/java/ShareClient.java): three consumers share one partition's records with no
record accepted twice, a released record comes back with a higher delivery count, records over
the group's delivery limit are archived, the records of a consumer killed while holding them
come back as soon as its connection closes (well before their lock expires), accepted records
stay accepted and the group's membership stays at its epochs across a restart (kill -9 where
the target allows it), a group's own lock duration reaches its consumers, and
`kafka-share-groups --describe (with each share partition's lag) / --reset-offsets /
--delete-offsets / --delete` work (not on a group with members). One ShareClient JVM per target
serves the scenarios; the server runs with 3 s acquisition locks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TARGETS
from helpers import ck, java, share_wire, txn
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


def _share_groups(bootstrap: str, *args: str) -> str:
    """kafka-share-groups with `args`: what it printed (stdout and stderr)."""
    done = java.run_class(
        SHARE_GROUP_COMMAND, ["--bootstrap-server", bootstrap, *args], timeout=60, check=False
    )
    return f"{done.stdout}{done.stderr}"


@pytest.mark.timeout(120)
def test_three_consumers_share_one_partition(sserver: ServerHandle, client: ShareServe) -> None:
    """Three share consumers on one partition: every record delivered, none accepted twice, and
    kafka-share-groups describes the group's share partition."""
    topic, values = _topic_with(sserver.bootstrap, "share-split", 900)
    group = _group(client, "sg-split")
    out = client.call("split", group, topic, len(values), 3)
    assert out["errors"] == [], out
    assert out["distinct"] == len(values), out
    assert out["duplicates"] == 0, out
    assert sum(out["counts"]) == len(values), out
    described = _share_groups(sserver.bootstrap, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if topic in line]
    assert rows and rows[0][0] == group and rows[0][1] == topic, described
    # The start offset as last stored (Kafka stores it lazily: anywhere up to the log end).
    assert rows[0][2] == "0" and 0 <= int(rows[0][3]) <= len(values), described
    print(f"split between the three consumers: {out['counts']}")


@pytest.mark.timeout(120)
def test_describe_offsets_shows_each_partitions_lag(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """KIP-1226 (DescribeShareGroupOffsets v1): `kafka-share-groups --describe --offsets` shows
    each share partition's lag, the records from its start offset to the log's end not yet
    delivered and completed. A consumer accepts the records at odd offsets and releases those
    at even ones, then more records arrive on partition 1: the start offsets stay at 0 (offset
    0 is available again) and each lag is what was produced less what was accepted — the
    accepted records after the start are not lag. About 3-4 s on kop, 8 s on Kafka."""
    b = sserver.bootstrap
    topic = ck.create_topic(b, ck.unique("share-lag"), 2)
    produced = {0: 7, 1: 4}
    recs = [Rec(p, None, f"p{p}-{i}".encode()) for p, n in produced.items() for i in range(n)]
    ck.produce(b, topic, recs, linger_ms=0)
    group = _group(client, "sg-lag")
    # Released records come back until all were seen: far from being archived at the limit.
    assert client.call("config", group, "share.delivery.count.limit", "10")["set"]
    out = client.call("parity", group, topic, len(recs))
    assert out["seen"] == len(recs), out
    accepted = {int(p): n for p, n in out["accepted"].items()}
    assert accepted == {p: n // 2 for p, n in produced.items()}, out
    late = [Rec(1, None, f"late{i}".encode()) for i in range(3)]
    ck.produce(b, topic, late, linger_ms=0)
    produced[1] += len(late)
    described = _share_groups(b, "--describe", "--offsets", "--group", group)
    # GROUP TOPIC PARTITION START-OFFSET LAG
    rows = [line.split() for line in described.splitlines()]
    got = {int(r[2]): (r[3], r[4]) for r in rows if len(r) == 5 and r[1] == topic}
    want = {p: ("0", str(n - accepted[p])) for p, n in produced.items()}
    assert got == want, described


@pytest.mark.timeout(120)
def test_released_record_is_redelivered(sserver: ServerHandle, client: ShareServe) -> None:
    """A record the consumer releases comes back to it with delivery count 2."""
    topic, _ = _topic_with(sserver.bootstrap, "share-release", 5)
    out = client.call("release", _group(client, "sg-release"), topic)
    assert out["value"] is not None and out["counts"] == [1, 2], out


@pytest.mark.timeout(120)
def test_records_of_a_killed_consumer_come_back_when_its_connection_closes(
    sserver: ServerHandle, client: ShareServe, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """A consumer holding records is killed (-9) without acknowledging: its connection closes,
    so its share session ends and another member gets the records at once — long before their
    30 s acquisition lock would expire — with delivery count 2; the rest once (as Kafka 4.4,
    whose connection-disconnect listener releases them)."""
    topic, values = _topic_with(sserver.bootstrap, "share-kill", 50)
    group = _group(client, "sg-kill")
    assert client.call("config", group, "share.record.lock.duration.ms", "30000")["set"]
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
        # Offsets of a group with members cannot be reset.
        reset = _share_groups(
            sserver.bootstrap,
            "--reset-offsets",
            "--to-earliest",
            "--execute",
            "--group",
            group,
            "--topic",
            topic,
        )
        assert "inactive" in reset or "not empty" in reset.lower(), reset
    finally:
        txn.kill_group(holder)
    killed_at = time.monotonic()
    got = client.call("drain", group, topic, len(values), 30_000)["got"]
    took = time.monotonic() - killed_at
    assert sorted(got) == sorted(values), got
    assert all(got[v] == [2] for v in held), got
    assert all(got[v] == [1] for v in values if v not in held), got
    # The drain (a new consumer joining included) finished well inside the lock.
    assert took < 15, f"held records came back after {took:.1f} s (lock 30 s)"
    print(f"held {len(held)} records; all back {took:.1f} s after the kill")


@pytest.mark.kop_process
@pytest.mark.timeout(180)
def test_accepted_records_stay_accepted_across_a_restart(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """Records accepted before a restart (kill -9 where the target can) are not delivered
    again; records produced after it are. Not run against Kafka (a restart costs ~30 s there and
    its share-state durability is not in question)."""
    if sserver.target == "kafka":
        pytest.skip("Kafka's restart is not under test")
    topic, values = _topic_with(sserver.bootstrap, "share-restart", 100)
    group = _group(client, "sg-restart")
    first = client.call("drain", group, topic, len(values), 30_000)["got"]
    assert sorted(first) == sorted(values)
    # A member that stays across the restart, at its epoch.
    member = ck.unique("member")
    error, epoch = share_wire.heartbeat(sserver.bootstrap, group, member, 0, [topic])
    assert error == 0 and epoch > 0, (error, epoch)
    before = share_wire.describe(sserver.bootstrap, group)
    assert before == (0, epoch, 1), before
    if sserver.can_kill:
        sserver.kill()
        sserver.start()
    else:
        sserver.restart()
    # The membership is durable: same group epoch, and the member is not fenced.
    assert share_wire.describe(sserver.bootstrap, group) == before
    assert share_wire.heartbeat(sserver.bootstrap, group, member, epoch) == (0, epoch)
    more = [f"w{i}" for i in range(20)]
    ck.produce(sserver.bootstrap, topic, [Rec(0, None, v.encode()) for v in more], linger_ms=0)
    # A little longer than needed: a redelivered accepted record would show up meanwhile.
    second = client.call("drain", group, topic, len(more) + 1, 2_000)["got"]
    assert sorted(second) == sorted(more), second


@pytest.mark.timeout(120)
def test_records_over_the_delivery_limit_are_archived(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """With the group's share.delivery.count.limit at 2, a record released twice is archived:
    never delivered a third time."""
    topic, values = _topic_with(sserver.bootstrap, "share-limit", 5)
    group = _group(client, "sg-limit")
    assert client.call("config", group, "share.delivery.count.limit", "2")["set"]
    # A record released and not archived would come back at once: 1 s without one is enough.
    got = client.call("limit", group, topic, 1_000)["got"]
    assert got == {v: [1, 2] for v in values}, got


@pytest.mark.timeout(120)
def test_group_lock_duration_reaches_the_consumer(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """The group's share.record.lock.duration.ms, not the broker's, is the records' lock."""
    topic, _ = _topic_with(sserver.bootstrap, "share-lock", 3)
    group = _group(client, "sg-lock")
    assert client.call("config", group, "share.record.lock.duration.ms", "20000")["set"]
    assert client.call("lock", group, topic)["lock_ms"] == 20_000


@pytest.mark.timeout(150)
def test_reset_delete_offsets_and_delete_the_group(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """kafka-share-groups on an empty share group: --reset-offsets --to-earliest delivers the
    accepted records again, --delete-offsets removes the share partition's state, --delete
    removes the group."""
    topic, values = _topic_with(sserver.bootstrap, "share-reset", 10)
    group = _group(client, "sg-reset")
    first = client.call("drain", group, topic, len(values), 30_000)["got"]
    assert sorted(first) == sorted(values)
    b = sserver.bootstrap
    out = _share_groups(
        b, "--reset-offsets", "--to-earliest", "--execute", "--group", group, "--topic", topic
    )
    assert group in out and topic in out, out
    again = client.call("drain", group, topic, len(values), 30_000)["got"]
    assert again == {v: [1] for v in values}, again
    out = _share_groups(b, "--delete-offsets", "--group", group, "--topic", topic)
    assert topic in out and "Error" not in out, out
    out = _share_groups(b, "--delete", "--group", group)
    assert "successful" in out, out


@pytest.mark.timeout(120)
def test_by_duration_reset_starts_at_the_first_recent_record(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """share.auto.offset.reset=by_duration:PT1H: a new share partition starts at the first
    record at most an hour old (records stamped two hours ago are skipped)."""
    topic = ck.create_topic(sserver.bootstrap, ck.unique("share-duration"), 1)
    old_ms = int(time.time() * 1000) - 2 * 3_600_000
    old = [Rec(0, None, f"old{i}".encode(), timestamp=old_ms + i) for i in range(5)]
    new = [f"new{i}" for i in range(5)]
    ck.produce(sserver.bootstrap, topic, [*old, *(Rec(0, None, v.encode()) for v in new)])
    group = ck.unique("sg-duration")
    assert client.call("config", group, "share.auto.offset.reset", "by_duration:PT1H")["set"]
    # Starting anywhere earlier, the first five values would include old ones.
    got = client.call("drain", group, topic, len(new), 30_000)["got"]
    assert got == {v: [1] for v in new}, got


@pytest.mark.timeout(120)
def test_renewed_records_outlive_their_lock(sserver: ServerHandle, client: ShareServe) -> None:
    """KIP-1222 (ShareFetch/ShareAcknowledge v2): a consumer holding three records renews their
    3 s acquisition locks for 7 s (`acknowledge(record, RENEW)`) and then accepts them at
    delivery count 1; another consumer of the group polling all along gets none of them. With
    the group's `share.renew.acknowledge.enable=false` the renewals fail (INVALID_RECORD_STATE)
    and the records are delivered again once their lock expires (to whichever consumer polls
    first: on Kafka 4.4 mostly the holder). About 16 s on kop, 32 s on Kafka."""
    topic, values = _topic_with(sserver.bootstrap, "share-renew", 3)
    out = client.call("renew", _group(client, "sg-renew"), topic, len(values), 7_000)
    assert out["errors"] == [] and out["other_errors"] == [], out
    assert out["other"] == {}, out
    assert sorted(out["seen"]) == sorted(values), out
    # Renewed records come back to the holder on later polls, never redelivered.
    assert all(set(counts) == {1} and len(counts) >= 2 for counts in out["seen"].values()), out
    assert out["renewals"] >= 3 and out["lock_ms"] == LOCK_MS, out

    topic, values = _topic_with(sserver.bootstrap, "share-norenew", 3)
    group = _group(client, "sg-norenew")
    assert client.call("config", group, "share.renew.acknowledge.enable", "false")["set"]
    out = client.call("renew", group, topic, len(values), 3_500)
    assert any("InvalidRecordState" in e for e in out["errors"]), out
    again = {v: max(out["seen"].get(v, []) + out["other"].get(v, [])) for v in values}
    assert all(count >= 2 for count in again.values()), out


@pytest.mark.timeout(120)
def test_record_limit_acquires_max_poll_records_exactly(
    sserver: ServerHandle, client: ShareServe
) -> None:
    """KIP-1206: ten records in one batch. A consumer with `share.acquire.mode=record_limit`
    and `max.poll.records=3` acquires three of them, and another consumer of the group gets
    the other seven while it holds them (15 s locks); in the default batch_optimized mode the
    fetch acquires the whole batch and the first poll returns all ten (as on Kafka 4.4). About
    10 s (the second consumer's assignment comes with a heartbeat)."""
    topic = ck.create_topic(sserver.bootstrap, ck.unique("share-acquire"), 1)
    values = [f"v{i}" for i in range(10)]
    ck.produce(sserver.bootstrap, topic, [Rec(0, None, v.encode()) for v in values], linger_ms=300)
    group = _group(client, "sg-limit-mode")
    assert client.call("config", group, "share.record.lock.duration.ms", "15000")["set"]
    out = client.call("acquire", group, topic, "record_limit", 3, 7, 12_000)
    assert len(out["first"]) == 3, out
    assert sorted(out["first"] + list(out["other"])) == sorted(values), out
    assert all(counts == [1] for counts in out["other"].values()), out
    out = client.call("acquire", _group(client, "sg-batch-mode"), topic, "batch_optimized", 3, 0, 0)
    assert sorted(out["first"]) == sorted(values), out


@pytest.mark.timeout(60)
def test_classic_group_apis_on_a_share_group(sserver: ServerHandle) -> None:
    """A share group's id seen by the classic group APIs, as Kafka 4.4 answers (measured):
    DescribeGroups v6 says GROUP_ID_NOT_FOUND "is not a classic group" (state Dead),
    OffsetCommit GROUP_ID_NOT_FOUND, OffsetFetch no offsets and no error. Under a second."""
    b = sserver.bootstrap
    topic, _ = _topic_with(b, "share-classic", 1)
    group = ck.unique("sg-classic")
    error, _ = share_wire.heartbeat(b, group, ck.unique("member"), 0, [topic])
    assert error == 0
    not_found = 69
    described = share_wire.classic_describe(b, group)
    assert described == (not_found, f"Group {group} is not a classic group.", "Dead")
    assert share_wire.offset_commit(b, group, topic) == not_found
    assert share_wire.offset_fetch_topics(b, group) == (0, 0)
