"""Share groups (KIP-932) across two kop instances on one Pulsar namespace: three Java
KafkaShareConsumers (kafka-clients 4.4) accept a topic's records through both instances; the
instance that coordinates their group and leads the topic is killed with SIGKILL mid-run, and
the other takes the group (its membership is in the group log) and the share partition (its
state is stored) over. Every record ends accepted on the server (the share partition's start
offset passes them all), none is delivered again after a confirmed acknowledgement, and no
record's delivery count goes backwards. A commit cut by the kill may have been applied before
it, as on Kafka: only those few acceptances stay unconfirmed to the client. And KIP-1226's lag
of a share partition led by the instance that does not coordinate the group."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import ck, java, txn
from helpers.data import Rec
from helpers.instances import Pair
from helpers.pulsar import PulsarService

pytestmark = [pytest.mark.pulsar, pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

RECORDS = 6000
CONSUMERS = 3
MAX_POLL_RECORDS = 20  # ShareClient takeover: max.poll.records, acquire mode record_limit
DELIVERY_LIMIT = 5  # group.share.delivery.count.limit's default


@pytest.fixture
def pair(pulsar_service: PulsarService, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path, partitions=1, share_auto_offset_reset="earliest")
    yield p
    p.stop()


def _group_coordinated_by(bootstrap: str, node: int) -> str:
    """A new group name whose coordinator is ``node``."""
    names = [ck.unique("share-pair-group") for _ in range(16)]
    admin = ck.admin(bootstrap)  # kept alive until its futures are done
    for name, future in admin.describe_consumer_groups(names).items():
        if int(future.result(timeout=20).coordinator.id) == node:
            return name
    raise AssertionError(f"none of 16 groups is coordinated by node {node}")


@pytest.mark.timeout(300)
def test_share_consumers_survive_a_kill_of_the_coordinating_instance(
    pair: Pair, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    topic = pair.topic_led_by(1, "share-pair")
    group = _group_coordinated_by(pair.bootstrap, 1)
    values = [f"v{i}" for i in range(RECORDS)]
    ck.produce(pair.one.bootstrap, topic, [Rec(0, None, v.encode()) for v in values])
    client = txn.TxnServe(java_classes, pair.bootstrap, tmp_path / "share.log", main="ShareClient")
    out: dict[str, Any] = {}
    try:
        run = threading.Thread(
            target=lambda: out.update(
                client.call("takeover", group, topic, RECORDS, CONSUMERS, 150_000)
            )
        )
        run.start()
        time.sleep(4)  # the consumers join and accept a share of the records
        pair.one.kill()
        killed_at = time.monotonic()
        run.join(200)
        took = time.monotonic() - killed_at
    finally:
        client.close()
    assert "error" not in out, out
    deliveries = [(str(v), int(c), bool(a)) for v, c, a in out["deliveries"]]
    seen = {v for v, _, _ in deliveries}
    unconfirmed = {str(v) for v in out["unconfirmed"]}
    # Every record is done on the server: the share partition's start offset passed them all.
    assert out["start_offset"] == RECORDS and seen == set(values), (
        out["start_offset"],
        out["acked"],
        len(seen),
        out["errors"][:3],
    )
    again = [d for d in deliveries if d[2]]
    assert again == [], f"delivered again after a confirmed acceptance: {again[:10]}"
    counts: dict[str, list[int]] = {}
    for v, count, _ in deliveries:
        counts.setdefault(v, []).append(count)
    backwards = {v: c for v, c in counts.items() if c != sorted(c)}
    assert backwards == {}, list(backwards.items())[:10]
    # An acceptance whose commit failed at the kill may have been applied before it (the
    # client cannot tell, as on Kafka): only the commits in flight then, one poll per consumer.
    # None of them went over the delivery limit, so the server accepted them, not archived them.
    assert len(unconfirmed) <= CONSUMERS * MAX_POLL_RECORDS, (len(unconfirmed), out["errors"][:3])
    over = {v: counts[v] for v in unconfirmed if counts[v][-1] >= DELIVERY_LIMIT}
    assert over == {}, over
    redelivered = sum(1 for c in counts.values() if len(c) > 1)
    # The kill landed mid-run: records were delivered before it and after it.
    assert took > 1, f"the run ended {took:.1f} s after the kill: the kill was not mid-run"
    print(
        f"{RECORDS} records done, {out['acked']} confirmed, {len(unconfirmed)} accepted with "
        f"their commit's outcome unknown at the kill, {redelivered} delivered more than once "
        f"(unconfirmed at the kill); the run ended {took:.1f} s after the kill; errors seen: "
        f"{out['errors'][:3]}"
    )


@pytest.mark.timeout(180)
def test_lag_of_a_partition_led_by_the_other_instance(
    pair: Pair, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """`kafka-share-groups --describe` asks the group's coordinator (instance 2) for the offsets
    of a share partition led by instance 1: the state is read from the stored document, the
    high watermark asked of the leader (as Kafka's coordinator asks with a ListOffsets), so
    the lag is the records produced after the consumer accepted all it got. About 11 s, and the
    two instances' start (~25 s)."""
    topic = pair.topic_led_by(1, "share-pair-lag")
    group = _group_coordinated_by(pair.bootstrap, 2)
    first = [f"v{i}" for i in range(10)]
    ck.produce(pair.one.bootstrap, topic, [Rec(0, None, v.encode()) for v in first])
    client = txn.TxnServe(java_classes, pair.bootstrap, tmp_path / "share.log", main="ShareClient")
    try:
        got = client.call("drain", group, topic, len(first), 30_000)["got"]
    finally:
        client.close()
    assert sorted(got) == sorted(first), got
    late = [Rec(0, None, f"late{i}".encode()) for i in range(4)]
    ck.produce(pair.one.bootstrap, topic, late)
    done = java.run_class(
        "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
        ["--bootstrap-server", pair.two.bootstrap, "--describe", "--offsets", "--group", group],
        timeout=60,
        check=False,
    )
    rows = [line.split() for line in done.stdout.splitlines()]
    got_rows = [(r[2], r[3], r[4]) for r in rows if len(r) == 5 and r[1] == topic]
    assert got_rows == [("0", str(len(first)), str(len(late)))], done.stdout + done.stderr
