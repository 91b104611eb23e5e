"""kop serve with pulsar:// storage, as a user runs it, against a real Pulsar standalone.

The core and consumer-group end-to-end suites also run on Pulsar (``KOP_TEST_TARGETS=kop-pulsar``,
see tests/helpers/servers.py); these are the checks specific to Pulsar: failures of Pulsar itself,
and reading kop's topics with a plain ``pulsar-client``.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import ck, java
from helpers.pulsar import PULSAR_SH, PulsarService, _free_port
from helpers.servers import KopPulsar, make_server, start_server

pulsar = pytest.importorskip("pulsar")
ck_kafka = pytest.importorskip("confluent_kafka")

pytestmark = pytest.mark.pulsar


def _kop(data_dir: Path, service: PulsarService | None = None, **config: Any) -> KopPulsar:
    srv = start_server("kop-pulsar", data_dir, service=service, **config)
    assert isinstance(srv, KopPulsar)
    return srv


def _second(data_dir: Path, first: KopPulsar, **config: Any) -> KopPulsar:
    """A kop on ``first``'s namespace, not started."""
    srv = make_server("kop-pulsar", data_dir, namespace=first.namespace, **config)
    assert isinstance(srv, KopPulsar)
    return srv


def test_a_pulsar_client_decodes_the_kafka_records(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    from kop.pulsar import is_marker, message_records

    srv = _kop(tmp_path / "kop")
    try:
        topic = "interop"
        sent = []
        for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
            producer = ck_kafka.Producer(
                {"bootstrap.servers": srv.bootstrap, "compression.type": codec, "linger.ms": 5}
            )
            for i in range(50):
                key = f"{codec}-{i}".encode()
                value = None if i == 7 else os.urandom(100)
                headers = [("codec", codec.encode()), ("i", str(i).encode())]
                producer.produce(topic, key=key, value=value, headers=headers, partition=0)
                sent.append((key, value, headers))
            assert producer.flush(30) == 0
        client = pulsar.Client(
            pulsar_service.url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)
        )
        try:
            reader = client.create_reader(
                f"persistent://public/{srv.namespace}/{topic}-partition-0",
                pulsar.MessageId.earliest,
            )
            records, markers = [], 0
            while reader.has_message_available():
                msg = reader.read_next(10_000)
                markers += is_marker(msg)
                records.extend(message_records(msg))
        finally:
            client.close()
        assert markers >= 1  # the takeover marker
        assert [r.offset for r in records] == list(range(len(sent)))
        got = [(r.key, r.value, [(k, v) for k, v in r.headers]) for r in records]
        assert got == sent
    finally:
        srv.stop()


class BackgroundProducer:
    """An idempotent acks=all producer writing numbered records from a thread until stopped;
    records what was acknowledged and what failed."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 1) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.acked: list[bytes] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 180) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)
            assert not self._thread.is_alive()

    def _run(self) -> None:
        producer = ck_kafka.Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "delivery.timeout.ms": 120_000,
            }
        )

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                self.acked.append(msg.value())
            else:
                self.failed.append(str(err))

        i = 0
        while not self._stop.is_set():
            partition = i % self.partitions
            producer.produce(self.topic, b"%08d" % i, partition=partition, on_delivery=on_delivery)
            producer.poll(0)
            i += 1
            time.sleep(0.002)
        assert producer.flush(150) == 0


def _wait_for_more_acks(writer: BackgroundProducer, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(writer.acked) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture
def private_pulsar(tmp_path: Path) -> Iterator[tuple[PulsarService, dict[str, str], Path]]:
    """A Pulsar standalone of this test's own (it gets restarted)."""
    data_dir = tmp_path / "pulsar"
    data_dir.mkdir()
    env = dict(os.environ)
    env["PULSAR_BROKER_PORT"] = str(_free_port())
    env["PULSAR_WEB_PORT"] = str(_free_port())
    run = subprocess.run(
        ["bash", str(PULSAR_SH), "start", str(data_dir)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    service = PulsarService(
        f"pulsar://127.0.0.1:{env['PULSAR_BROKER_PORT']}",
        f"http://127.0.0.1:{env['PULSAR_WEB_PORT']}",
        data_dir,
    )
    try:
        yield service, env, data_dir
    finally:
        subprocess.run(["bash", str(PULSAR_SH), "stop", str(data_dir)], env=env, check=False)


def test_pulsar_restart_while_producing_loses_nothing_acknowledged(
    private_pulsar: tuple[PulsarService, dict[str, str], Path], tmp_path: Path
) -> None:
    service, env, data_dir = private_pulsar
    srv = _kop(tmp_path / "kop", service=service)
    topic = "through-restart"
    writer = BackgroundProducer(srv.bootstrap, topic)
    try:
        writer.start()
        time.sleep(3)
        before = len(writer.acked)
        subprocess.run(["bash", str(PULSAR_SH), "stop", str(data_dir)], env=env, check=True)
        time.sleep(2)
        env_keep = dict(env, PULSAR_KEEP_DATA="1")
        run = subprocess.run(
            ["bash", str(PULSAR_SH), "start", str(data_dir)],
            env=env_keep,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        _wait_for_more_acks(writer, before + 500, 90)
        writer.stop()
        assert writer.failed == []
        assert len(writer.acked) > before + 500, "producing did not resume after Pulsar restarted"
        got = ck.consume_all(srv.bootstrap, topic, [0], timeout=90)[0]
        values = [m.value for m in got]
        offsets = [m.offset for m in got]
        assert offsets == list(range(len(values)))
        assert sorted(set(values)) == sorted(writer.acked)  # every acknowledged record, once
        assert len(values) == len(set(values))
    finally:
        srv.stop()


def test_a_second_process_for_a_node_id_takes_it_over(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    """One process serves a node id at a time: a new one (e.g. a replacement started while the
    old one hangs) takes every partition over with the data so far, and the old one can no
    longer append: its producers get NOT_LEADER_OR_FOLLOWER, never a duplicate offset."""
    first = _kop(tmp_path / "same")
    second: KopPulsar | None = None
    try:
        topic = "handover"
        ck.create_topic(first.bootstrap, topic, partitions=1)
        p1 = ck_kafka.Producer({"bootstrap.servers": first.bootstrap, "acks": "all"})
        for i in range(100):
            p1.produce(topic, value=b"first-%d" % i, partition=0)
        assert p1.flush(30) == 0
        # A second process on the same namespace.
        second = _second(tmp_path / "second", first)
        second.start()
        p2 = ck_kafka.Producer({"bootstrap.servers": second.bootstrap, "acks": "all"})
        for i in range(100):
            p2.produce(topic, value=b"second-%d" % i, partition=0)
        assert p2.flush(30) == 0
        errors: list[str] = []
        late = ck_kafka.Producer(
            {
                "bootstrap.servers": first.bootstrap,
                "acks": "all",
                "message.timeout.ms": 8000,
                "retries": 3,
            }
        )
        late.produce(
            topic,
            value=b"late",
            partition=0,
            on_delivery=lambda err, _msg: errors.append(str(err)),
        )
        late.flush(20)
        assert len(errors) == 1 and errors[0] != "None", errors
        got = ck.consume_all(second.bootstrap, topic, [0], timeout=60)[0]
        assert [m.offset for m in got] == list(range(200))
        assert [m.value for m in got] == [b"first-%d" % i for i in range(100)] + [
            b"second-%d" % i for i in range(100)
        ]
    finally:
        if second is not None:
            second.stop()
        first.stop()


def test_a_standby_takes_over_when_the_serving_instance_is_killed(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    """kill -9 the serving instance while producers write with acks=all: the standby for its
    node id takes over and every acknowledged record is read back once, offsets contiguous."""
    first = _kop(tmp_path / "first", node_id=1)
    standby = _second(tmp_path / "standby", first, node_id=1, pulsar_standby=True)
    topic = "failover"
    writer = BackgroundProducer(f"{first.bootstrap},{standby.bootstrap}", topic, partitions=2)
    try:
        ck.create_topic(first.bootstrap, topic, partitions=2)
        standby.spawn()
        writer.start()
        time.sleep(3)
        # It waits while the first instance serves: running, not listening.
        assert standby.is_running()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", standby.port), timeout=1).close()
        before = len(writer.acked)
        assert before > 100
        first.kill()
        standby.wait_serving(60.0)
        _wait_for_more_acks(writer, before + 500, 60)
        writer.stop()
        assert writer.failed == []
        assert len(writer.acked) > before + 500, "producing did not resume on the standby"
        got = ck.consume_all(standby.bootstrap, topic, [0, 1], timeout=90)
        for p in (0, 1):
            assert [m.offset for m in got[p]] == list(range(len(got[p])))
        values = [m.value for p in (0, 1) for m in got[p]]
        assert len(values) == len(set(values))
        assert set(values) == set(writer.acked)
    finally:
        writer.stop()
        if standby.is_running():
            standby.stop()
        else:
            standby.kill()
        first.kill()


def test_a_frozen_instance_resumed_after_a_takeover_never_appends(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    """SIGSTOP the serving instance with produce requests in flight, let a new instance take the
    namespace over, SIGCONT the old one: nothing it still had (or gets) lands in the log."""
    first = _kop(tmp_path / "first")
    second: KopPulsar | None = None
    topic = "frozen"
    try:
        ck.create_topic(first.bootstrap, topic, partitions=1)
        p1 = ck_kafka.Producer({"bootstrap.servers": first.bootstrap, "acks": "all"})
        for i in range(50):
            p1.produce(topic, value=b"before-%d" % i, partition=0)
        assert p1.flush(30) == 0
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        zombie_results: list[str] = []
        zombie = ck_kafka.Producer(
            {"bootstrap.servers": first.bootstrap, "acks": "all", "message.timeout.ms": 20_000}
        )
        for i in range(20):  # queued while the first instance is frozen
            zombie.produce(
                topic,
                value=b"zombie-%d" % i,
                partition=0,
                on_delivery=lambda err, _m: zombie_results.append(str(err)),
            )
        zombie.poll(0.5)
        second = _second(tmp_path / "second", first)
        second.start()
        p2 = ck_kafka.Producer({"bootstrap.servers": second.bootstrap, "acks": "all"})
        for i in range(50):
            p2.produce(topic, value=b"after-%d" % i, partition=0)
        assert p2.flush(30) == 0
        first.proc.send_signal(signal.SIGCONT)
        zombie.flush(40)
        assert len(zombie_results) == 20
        assert all(r != "None" for r in zombie_results), zombie_results
        got = ck.consume_all(second.bootstrap, topic, [0], timeout=60)[0]
        assert [m.offset for m in got] == list(range(100))
        assert [m.value for m in got] == [b"before-%d" % i for i in range(50)] + [
            b"after-%d" % i for i in range(50)
        ]
    finally:
        if first.proc is not None:
            first.proc.send_signal(signal.SIGCONT)
        if second is not None:
            second.stop()
        first.stop()


def _leaders(bootstrap: str, topic: str) -> tuple[set[int], dict[int, int]]:
    """(broker ids, partition -> leader) as Metadata from ``bootstrap`` tells them."""
    md = ck_kafka.admin.AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    partitions = md.topics[topic].partitions
    return set(md.brokers), {p: partitions[p].leader for p in partitions}


def _wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something true; a Kafka error (e.g. NOT_COORDINATOR while
    a coordinator moves) or an admin call that got no answer in its own timeout counts as not
    yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except (ck_kafka.KafkaException, concurrent.futures.TimeoutError):
            got = None
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def test_two_live_instances_share_partitions_and_one_takes_over_on_kill(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    """Two kop instances (node ids 1 and 2) on one namespace form one Kafka cluster: Metadata
    from either lists both and spreads the leaders; a topic created on one is served by both;
    kill -9 one while idempotent acks=all producers write to every partition, and the other
    takes its partitions over: every acknowledged record is read back once, offsets contiguous."""
    one = _kop(tmp_path / "one", node_id=1)
    two = _second(tmp_path / "two", one, node_id=2)
    topic, partitions = "shared", 6
    writer = BackgroundProducer(f"{one.bootstrap},{two.bootstrap}", topic, partitions)
    try:
        two.start()
        ck.create_topic(one.bootstrap, topic, partitions=partitions)
        # Both instances answer alike once they have seen each other and the topic.
        views = _wait_for(
            "both instances list both brokers and agree on the leaders",
            lambda: (
                (v := [_leaders(b, topic) for b in (one.bootstrap, two.bootstrap)])
                and v[0] == v[1]
                and v[0][0] == {1, 2}
                and len(v[0][1]) == partitions
                and v
            ),
        )
        leaders = views[0][1]
        assert set(leaders.values()) == {1, 2}, leaders  # 6 partitions spread over both
        writer.start()
        _wait_for_more_acks(writer, 300, 30)
        before = len(writer.acked)
        assert before >= 300
        two.kill()
        # The survivor notices within its session timeout and leads everything.
        _wait_for(
            "the survivor leads every partition",
            lambda: _leaders(one.bootstrap, topic) == ({1}, dict.fromkeys(range(partitions), 1)),
        )
        _wait_for_more_acks(writer, before + 500, 60)
        writer.stop()
        assert writer.failed == []
        assert len(writer.acked) > before + 500, "producing did not resume on the survivor"
        got = ck.consume_all(one.bootstrap, topic, list(range(partitions)), timeout=90)
        for p in range(partitions):
            assert [m.offset for m in got[p]] == list(range(len(got[p]))), p
        values = [m.value for p in range(partitions) for m in got[p]]
        assert len(values) == len(set(values))
        assert set(values) == set(writer.acked)
    finally:
        writer.stop()
        two.kill()
        one.stop()


def _configs_are_shared(first: str, second: str, group: str, topic: str) -> None:
    """A group config and a dynamic broker default set through `first` are in force on
    `second` once its cluster sync reloads the stored documents."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    for entity, config in [
        (["--entity-type", "groups", "--entity-name", group], "consumer.session.timeout.ms=50000"),
        (["--entity-type", "brokers", "--entity-default"], "log.retention.ms=7200000"),
    ]:
        java.run_class(
            java.CONFIG_COMMAND,
            ["--bootstrap-server", first, "--alter", *entity, "--add-config", config],
        )
    admin = ck_kafka.admin.AdminClient({"bootstrap.servers": second})

    def value(rtype: ResourceType, name: str, key: str) -> str:
        res = ConfigResource(rtype, name)
        return str(admin.describe_configs([res])[res].result(timeout=20)[key].value)

    _wait_for(
        "the other instance sees both",
        lambda: (
            value(ResourceType.GROUP, group, "consumer.session.timeout.ms") == "50000"
            and value(ResourceType.TOPIC, topic, "retention.ms") == "7200000"
        ),
    )


def test_group_coordinators_spread_and_move_when_an_instance_leaves(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    """With two instances, groups are coordinated by both (by shard), FindCoordinator names the
    same node from either; committed offsets survive their coordinator leaving (clean stop):
    the other instance loads them."""
    one = _kop(tmp_path / "one", node_id=1)
    two = _second(tmp_path / "two", one, node_id=2)
    topic, group = "grouped", "g-moves"
    try:
        two.start()
        both = f"{one.bootstrap},{two.bootstrap}"
        ck.create_topic(one.bootstrap, topic, partitions=2)
        producer = ck_kafka.Producer({"bootstrap.servers": both, "acks": "all"})
        for i in range(40):
            producer.produce(topic, value=b"%d" % i, partition=i % 2)
        assert producer.flush(30) == 0

        def coordinator(bootstrap: str) -> int:
            admin = ck_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
            described = admin.describe_consumer_groups([group])[group].result(timeout=20)
            return int(described.coordinator.id)

        _wait_for(
            "both instances name the same coordinator",
            lambda: coordinator(one.bootstrap) == coordinator(two.bootstrap),
        )
        _configs_are_shared(one.bootstrap, two.bootstrap, group, topic)
        admin = ck_kafka.admin.AdminClient({"bootstrap.servers": both})
        names = [f"spread-{i}" for i in range(12)]
        described = admin.describe_consumer_groups(names)
        nodes = {int(f.result(timeout=20).coordinator.id) for f in described.values()}
        assert nodes == {1, 2}, nodes
        consumer = ck_kafka.Consumer(
            {
                "bootstrap.servers": both,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 25 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen += 1
        assert seen == 25
        consumer.commit(asynchronous=False)
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed(
                [ck_kafka.TopicPartition(topic, p) for p in (0, 1)], timeout=20
            )
        }
        consumer.close()
        assert sum(committed.values()) == 25, committed
        first_coordinator = coordinator(both)
        leaving, staying = (one, two) if first_coordinator == 1 else (two, one)
        leaving.stop()
        assert _wait_for(
            "the other instance coordinates the group",
            lambda: coordinator(staying.bootstrap) != first_coordinator,
        )
        check = ck_kafka.Consumer({"bootstrap.servers": staying.bootstrap, "group.id": group})
        try:
            again = {
                tp.partition: tp.offset
                for tp in check.committed(
                    [ck_kafka.TopicPartition(topic, p) for p in (0, 1)], timeout=30
                )
            }
        finally:
            check.close()
        assert again == committed
    finally:
        two.stop()
        one.stop()
