"""Transactions with the Java client (kafka-clients 4.4, tests/clients/java/TxnClient.java) and
the `kafka-transactions` tool: commit / abort / commit seen by read_committed and
read_uncommitted consumers, fencing of an older producer with the same transactional id, abort
of a transaction left open past its timeout, consume-transform-produce with
sendOffsetsToTransaction surviving a kill -9 of the client and one of the server, list /
describe / describe-producers / abort of a hanging transaction. One TxnClient JVM per module
serves the scenarios."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import ck, txn
from helpers.data import Rec
from helpers.servers import ServerHandle, free_port

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]


@pytest.fixture(scope="module")
def client(
    server: ServerHandle,
    java_classes: txn.JavaClasses,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[txn.TxnServe]:
    log = tmp_path_factory.mktemp("txn-client") / "stderr.log"
    c = txn.TxnServe(java_classes, server.bootstrap, log)
    yield c
    c.close()


@pytest.mark.timeout(120)
def test_commit_abort_commit(server: ServerHandle, client: txn.TxnServe) -> None:
    """Three transactions, the middle one aborted: the Java and librdkafka read_committed
    consumers see the two committed ones, read_uncommitted consumers all three."""
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-java"), 2)
    out = client.call("cac", topic, ck.unique("tx"), 2, 6)
    assert "error" not in out, out
    committed, everything = txn.scenario_values("java", 2, 6)
    assert txn.int_keys(out["read_committed"]) == committed
    assert txn.int_keys(out["read_uncommitted"]) == everything
    txn.check_scenario(server.bootstrap, topic, "java", 2, 6)


@pytest.mark.timeout(120)
def test_older_producer_is_fenced(server: ServerHandle, client: txn.TxnServe) -> None:
    """A second producer initialising the same transactional id fences the first: the first
    one's open transaction is aborted, its next send and its commit fail as fenced."""
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-fence"), 1)
    out = client.call("fence", topic, ck.unique("tx"))
    assert "error" not in out, out
    for key in ("old_send_error", "old_commit_error"):
        assert out[key] is not None, out
        assert any(name in line for line in out[key] for name in txn.FENCED), out
    assert txn.int_keys(out["read_committed"]) == {0: ["young-0"]}
    assert txn.read_values(server.bootstrap, topic, 1, "read_committed") == {0: ["young-0"]}


@pytest.mark.timeout(120)
def test_open_transaction_is_aborted_after_its_timeout(
    server: ServerHandle, client: txn.TxnServe
) -> None:
    """A transaction left open past transaction.timeout.ms is aborted by the coordinator: until
    then read_committed consumers stop before it (and so before a later committed
    transaction); after, they see the committed records and never the stale ones."""
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-timeout"), 2)
    timeout_ms = 3000
    opened = time.monotonic()
    assert client.call("open", "stale", topic, ck.unique("tx"), timeout_ms, 2, 4) == {"open": True}
    after = client.call("cac", topic, ck.unique("tx"), 2, 4)
    assert "error" not in out_of(after), after
    # the open transaction holds the last stable offset at its first record
    assert txn.end_offsets(server.bootstrap, topic, 2, "read_committed") == {0: 0, 1: 0}
    assert out_of(client.call("read", topic, 2, "read_committed"))["values"] == {"0": [], "1": []}

    committed, _ = txn.scenario_values("java", 2, 4)
    deadline = opened + 60
    while txn.read_values(server.bootstrap, topic, 2, "read_committed") != committed:
        assert time.monotonic() < deadline, "the expired transaction was not aborted in 60 s"
        time.sleep(0.5)
    assert time.monotonic() - opened >= timeout_ms / 1000
    hw = txn.end_offsets(server.bootstrap, topic, 2, "read_uncommitted")
    assert txn.end_offsets(server.bootstrap, topic, 2, "read_committed") == hw
    uncommitted = txn.read_values(server.bootstrap, topic, 2, "read_uncommitted")
    assert uncommitted[0][:2] == ["stale-0", "stale-2"]
    # the stale producer learns it was aborted when it tries to commit
    assert client.call("end", "stale", "commit")["error"] is not None
    client.call("close", "stale")


def out_of(answer: dict[str, object]) -> dict[str, object]:
    """A TxnClient answer, failing with its error if it has one."""
    assert not answer.get("error"), answer
    return answer


@pytest.mark.timeout(180)
def test_transactions_tool(server: ServerHandle, client: txn.TxnServe) -> None:
    """kafka-transactions list / describe / describe-producers show an open transaction; abort
    (of a hanging transaction, by partition and start offset) ends it: read_committed consumers
    then read past it."""
    topic = ck.create_topic(server.bootstrap, ck.unique("txn-tool"), 1)
    tx = ck.unique("tx-hang")
    ck.produce(server.bootstrap, topic, [_rec("before")])
    assert out_of(client.call("open", "hang", topic, tx, 120000, 1, 3)) == {"open": True}
    try:
        listed = {r["TransactionalId"]: r for r in txn.transactions_tool(server.bootstrap, "list")}
        assert listed[tx]["TransactionState"] == "Ongoing", listed[tx]

        [described] = txn.transactions_tool(server.bootstrap, "describe", "--transactional-id", tx)
        assert described["TransactionState"] == "Ongoing"
        assert described["TopicPartitions"] == f"{topic}-0"
        assert described["TransactionTimeoutMs"] == "120000"
        producer_id = described["ProducerId"]

        # the idempotent producer of "before" is listed too
        producer = _producer(server.bootstrap, topic, producer_id)
        assert producer["CurrentTransactionStartOffset"] == "1"
        assert producer["LastSequence"] == "2"
        assert txn.end_offsets(server.bootstrap, topic, 1, "read_committed") == {0: 1}

        txn.transactions_tool(
            server.bootstrap, "abort", "--topic", topic, "--partition", "0", "--start-offset", "1"
        )
        # the marker moves the last stable offset past the hanging transaction at once
        assert txn.end_offsets(server.bootstrap, topic, 1, "read_committed") == {0: 5}
        assert txn.read_values(server.bootstrap, topic, 1, "read_committed") == {0: ["before"]}
        producer = _producer(server.bootstrap, topic, producer_id)
        assert producer["CurrentTransactionStartOffset"] == "None", producer
    finally:
        client.call("close", "hang")


def _producer(bootstrap: str, topic: str, producer_id: str) -> dict[str, str]:
    """The describe-producers row of ``producer_id`` on partition 0 of ``topic``."""
    rows = txn.transactions_tool(
        bootstrap, "describe-producers", "--topic", topic, "--partition", "0"
    )
    [row] = [r for r in rows if r["ProducerId"] == producer_id]
    return row


def _rec(value: str) -> Rec:
    return Rec(0, None, value.encode(), ())


@pytest.mark.timeout(240)
def test_consume_transform_produce_survives_kill_of_the_client(
    server: ServerHandle, java_classes: txn.JavaClasses, tmp_path: Path
) -> None:
    """A copier (read_committed group consumer + transactional producer, input offsets sent
    with sendOffsetsToTransaction) is killed with SIGKILL mid-transaction; a second one with the
    same transactional id and group finishes the job: every input record is in the output exactly
    once, in order, and the group's committed offsets are the input's ends."""
    copy = txn.CopyScenario(server.bootstrap, java_classes, tmp_path)
    first = copy.start()
    try:
        first.wait_open_transaction()
    finally:
        first.kill()
    second = copy.start()
    try:
        second.finish()
    finally:
        second.kill()
    uncommitted = copy.check_exactly_once()
    # the killed copier's last transaction was written, then aborted
    assert sum(map(len, uncommitted.values())) > copy.n


@pytest.mark.kop_process
@pytest.mark.timeout(240)
def test_consume_transform_produce_survives_kill_of_the_server(
    target: str,
    server_factory: Callable[..., ServerHandle],
    java_classes: txn.JavaClasses,
    tmp_path: Path,
) -> None:
    """The server is killed with SIGKILL (kop-embedded: stopped) while a copier has a
    transaction open, and restarted on the same data and port: the copier either commits that
    transaction or aborts it and consumes again from the committed offsets; the output is exactly
    once all the same."""
    # kop-embedded restarts in this process on a port of its own choosing unless told one
    options = (
        {"listeners": [f"PLAINTEXT://127.0.0.1:{free_port()}"]} if target == "kop-embedded" else {}
    )
    srv = server_factory(target, **options)
    copy = txn.CopyScenario(srv.bootstrap, java_classes, tmp_path)
    copier = copy.start()
    try:
        copier.wait_open_transaction()
        if srv.can_kill:
            srv.kill()
        else:
            srv.stop()
        srv.start()
        copier.finish()
    finally:
        copier.kill()
    copy.check_exactly_once()
