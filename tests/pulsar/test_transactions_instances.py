"""Transactions across two kop instances on one Pulsar namespace (one Kafka cluster): a
transaction's coordinator (the instance leading its transactional id's shard) writes markers on
partitions the other instance leads and ends offsets in groups it coordinates
(WriteTxnMarkers between the instances), and partition leaders and group coordinators verify
with a coordinator on the other instance (AddPartitionsToTxn / AddOffsetsToTxn). Java
kafka-clients 4.4 (transaction version 2) and librdkafka (version 1) both run; a kill -9 of one
instance mid-transaction leaves the output exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition

from helpers import ck, txn, wire
from helpers.certs import make_pki
from helpers.instances import Pair, wait_for
from helpers.pulsar import PulsarService

pytestmark = [pytest.mark.pulsar, pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

PARTITIONS = 6


@pytest.fixture
def pair(pulsar_service: PulsarService, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path, partitions=PARTITIONS)
    yield p
    p.stop()


def _committed(bootstrap: str, group: str, topic: str) -> list[int]:
    c = ck.consumer(bootstrap, group_id=group)
    try:
        tps = [TopicPartition(topic, q) for q in range(PARTITIONS)]
        return [tp.offset for tp in c.committed(tps, 30)]
    finally:
        c.close()


def _coordinators(bootstrap: str) -> dict[str, int]:
    """The coordinator node of every transactional id, as `kafka-transactions list` says."""
    rows = txn.transactions_tool(bootstrap, "list")
    return {
        r["TransactionalId"]: int(r.get("Coordinator", r.get("CoordinatorId", -1))) for r in rows
    }


def _group_coordinated_by(bootstrap: str, node: int) -> str:
    """A new group name whose coordinator is ``node``."""
    names = [ck.unique("txn-pair-group") for _ in range(16)]
    admin = ck.admin(bootstrap)  # kept alive until its futures are done
    described = admin.describe_consumer_groups(names)
    for name, future in described.items():
        if int(future.result(timeout=20).coordinator.id) == node:
            return name
    raise AssertionError(f"none of 16 groups is coordinated by node {node}")


@pytest.mark.timeout(300)
def test_java_and_librdkafka_transactions_span_both_instances(
    pair: Pair, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """Transactional ids coordinated by each instance commit, abort and commit records on
    partitions led by both: read_committed consumers (Java and librdkafka) see exactly the
    committed ones and are not held back by a missing marker; offsets sent to a transaction
    are committed with it (and dropped with an aborted one) in a group coordinated by either."""
    java = txn.TxnServe(java_classes, pair.bootstrap, tmp_path / "java.log")
    committed, everything = txn.scenario_values("java", PARTITIONS, 6)
    ids = [ck.unique(f"tx-java-{i}") for i in range(4)]
    try:
        for tx in ids:
            java_topic = pair.topic("txn-pair-java")
            out = java.call("cac", java_topic, tx, PARTITIONS, 6)
            assert "error" not in out, out
            assert txn.int_keys(out["read_committed"]) == committed
            assert txn.int_keys(out["read_uncommitted"]) == everything
            txn.check_scenario(pair.bootstrap, java_topic, "java", PARTITIONS, 6)
    finally:
        java.close()

    topic = pair.topic("txn-pair-ck")

    producers = {}
    coordinator: dict[str, int] = {}
    # Until both instances coordinate some of these transactions (ids land on shards by name).
    while len(producers) < 4 or {coordinator[tx] for tx in [*ids, *producers]} != {1, 2}:
        assert len(producers) < 16, coordinator
        for _ in range(4):
            tx = ck.unique(f"tx-ck-{len(producers)}")
            producers[tx] = Producer({"bootstrap.servers": pair.bootstrap, "transactional.id": tx})
            producers[tx].init_transactions(60)
        coordinator = _coordinators(pair.bootstrap)
    group_topic = pair.topic("txn-pair-offsets")
    for n, (tx, p) in enumerate(producers.items()):
        # A group coordinated by the other instance: its offsets are verified with, and ended
        # by, the transaction coordinator over there.
        group = _group_coordinated_by(pair.bootstrap, 3 - coordinator[tx])
        meta = ck.consumer(pair.bootstrap, group_id=group)
        try:
            for offset, commit in ((3, True), (5, False)):
                p.begin_transaction()
                for i in range(PARTITIONS):
                    p.produce(topic, f"ck-{n}-{offset}-{i}".encode(), partition=i)
                p.send_offsets_to_transaction(
                    [TopicPartition(group_topic, q, offset) for q in range(PARTITIONS)],
                    meta.consumer_group_metadata(),
                    60,
                )
                if commit:
                    p.commit_transaction(60)
                else:
                    p.abort_transaction(60)
            wait_for(
                f"group {group} has the committed transaction's offsets",
                lambda g=group: _committed(pair.bootstrap, g, group_topic) == [3] * PARTITIONS,
            )
        finally:
            meta.close()
        p.flush(10)

    values = txn.read_values(pair.bootstrap, topic, PARTITIONS, "read_committed")
    committed_values = {
        q: [f"ck-{n}-3-{q}" for n in range(len(producers))] for q in range(PARTITIONS)
    }
    assert values == committed_values
    # The last stable offset reached the end of every partition: no marker is missing.
    assert txn.end_offsets(pair.bootstrap, topic, PARTITIONS, "read_committed") == (
        txn.end_offsets(pair.bootstrap, topic, PARTITIONS, "read_uncommitted")
    )


@pytest.mark.timeout(300)
def test_consume_transform_produce_survives_kill_of_one_instance(
    pair: Pair, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """A Java copier (read_committed group consumer + transactional producer) works against
    both instances; the instance coordinating its transactions is killed with SIGKILL while a
    transaction is open, and the survivor takes over its partitions, groups and transactions:
    the copier finishes, every input record is in the output exactly once, in order (no aborted
    or partial transaction is read), and the group's offsets are at the input's ends."""
    copy = txn.CopyScenario(pair.bootstrap, java_classes, tmp_path, partitions=PARTITIONS)
    coordinator = wire.find_coordinator(pair.one.host, pair.one.port, copy.tx)
    copier = copy.start()
    try:
        copier.wait_open_transaction()
        (pair.one if coordinator == 1 else pair.two).kill()
        copier.finish()
    finally:
        copier.kill()
    copy.check_exactly_once()


@pytest.mark.timeout(300)
def test_instances_call_each_other_over_tls(pulsar_service: PulsarService, tmp_path: Path) -> None:
    """With `inter_instance_listener` naming an SSL listener that requires client certificates,
    the instances reach each other over TLS with their own certificates: a librdkafka
    transaction over partitions led by both commits and another aborts, as read_committed and
    read_uncommitted consumers see."""
    pki = make_pki(tmp_path / "pki")
    pair = Pair(
        tmp_path,
        extra_listeners=["SSL://127.0.0.1:0"],
        inter_instance_listener="SSL",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_cafile=str(pki.ca),
        ssl_client_auth="required",
    )
    try:
        topic = pair.topic("txn-pair-tls")
        p = Producer({"bootstrap.servers": pair.bootstrap, "transactional.id": ck.unique("tx")})
        p.init_transactions(60)
        for name in ("c1", "a", "c2"):
            p.begin_transaction()
            for i in range(PARTITIONS):
                p.produce(topic, f"tls-{name}-{i}".encode(), partition=i)
            if name == "a":
                p.flush(30)
                p.abort_transaction(60)
            else:
                p.commit_transaction(60)
        txn.check_scenario(pair.bootstrap, topic, "tls", PARTITIONS, PARTITIONS)
    finally:
        pair.stop()
