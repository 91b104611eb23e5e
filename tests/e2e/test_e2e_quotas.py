"""Client quotas: `kafka-configs` alter/describe of user, client-id, user+client-id, IP and
default quotas; AlterClientQuotas validation as Kafka's; a producer and a consumer held to
about their byte rate, librdkafka and the Java client alike, each reporting the throttle time
(librdkafka's statistics, the Java client's throttle-time metrics) while an unthrottled client
on the same server keeps its speed (and kop counts the throttles in its metrics); quotas
surviving a restart."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
import urllib.request
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from helpers import ck, java, wire
from helpers.quotas import JavaPerf, ThrottleStats, produce_for
from helpers.servers import HOST, free_port

RATE = 100 * 1024  # bytes per second
# Kafka lets a new client send up to (quota.window.num - 1) windows' worth at once, and again
# when that first sample leaves the window (a sawtooth around the rate). With 2 samples of 1 s
# that is 1 s worth, so 12 s of measuring come within a few percent of the rate.
WINDOWS = 2
MEASURE_S = 12.0

API_ALTER_CLIENT_QUOTAS = 49
API_CREATE_TOPICS = 19
ERR_THROTTLING_QUOTA_EXCEEDED = 89
# The module's server measures over 2 windows of 1 s too (the raw throttle tests below), the
# controller mutation quota as well (its own setting, as Kafka's).
SERVER_OPTIONS = {"quota_window_num": WINDOWS, "controller_quota_window_num": WINDOWS}


def _scraped(address: str, sample: str) -> float:
    """The value of one sample (name with its labels, as kop writes it) in a kop scrape."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(sample + " ")]
    assert len(values) == 1, (sample, values)
    return float(values[0])


def _configs(srv: Any, *args: str, check: bool = True) -> Any:
    return java.run_class(
        java.CONFIG_COMMAND, ["--bootstrap-server", srv.bootstrap, *args], check=check
    )


def _described(srv: Any, *entity: str) -> dict[str, float]:
    """kafka-configs --describe of one entity: its quota values."""
    out = _configs(srv, "--describe", *entity).stdout
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.E+-]+)", out)}


def _alter_raw(
    srv: Any,
    entity: list[tuple[str, str | None]],
    ops: list[tuple[str, float, bool]],
    validate_only: bool = False,
) -> tuple[int, str | None]:
    """AlterClientQuotas v0 with one entry: (error code, message)."""
    body = wire.i32(1) + wire.i32(len(entity))
    for entity_type, name in entity:
        body += wire.string(entity_type) + wire.string(name)
    body += wire.i32(len(ops))
    for key, value, remove in ops:
        body += wire.string(key) + struct.pack(">d", value) + wire.i8(int(remove))
    body += wire.i8(int(validate_only))
    with wire.connect(srv.host, srv.port) as sock:
        wire.send_all(sock, wire.request(API_ALTER_CLIENT_QUOTAS, 0, 9, body))
        r = wire._Reader(wire.read_frame(sock))
        assert r.i32() == 9
        r.i32()  # throttle
        assert r.i32() == 1
        return r.i16(), r.string()


@pytest.mark.java
@pytest.mark.timeout(300)
def test_kafka_configs_alter_describe_and_restart(target, server_factory, kafka_tools):
    srv = server_factory(target)
    alice = ("--entity-type", "users", "--entity-name", "alice")
    app = ("--entity-type", "clients", "--entity-name", "app")
    _configs(
        srv, "--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048", *alice
    )
    _configs(srv, "--alter", "--add-config", "request_percentage=50", *app)
    _configs(
        srv,
        "--alter",
        "--add-config",
        "producer_byte_rate=4096",
        "--entity-type",
        "users",
        "--entity-default",
    )
    _configs(srv, "--alter", "--add-config", "controller_mutation_rate=10", *alice, *app)
    _configs(
        srv,
        "--alter",
        "--add-config",
        "consumer_byte_rate=8192",
        "--entity-type",
        "clients",
        "--entity-default",
    )
    ip = ("--entity-type", "ips", "--entity-name", "10.1.2.3")
    _configs(srv, "--alter", "--add-config", "connection_creation_rate=100", *ip)

    def check() -> None:
        assert _described(srv, *alice) == {"producer_byte_rate": 1024, "consumer_byte_rate": 2048}
        assert _described(srv, *app) == {"request_percentage": 50}
        assert _described(srv, *alice, *app) == {"controller_mutation_rate": 10}
        assert _described(srv, "--entity-type", "users", "--entity-default") == {
            "producer_byte_rate": 4096
        }
        assert _described(srv, "--entity-type", "clients", "--entity-default") == {
            "consumer_byte_rate": 8192
        }
        assert _described(srv, *ip) == {"connection_creation_rate": 100}
        every_user = _configs(srv, "--describe", "--entity-type", "users").stdout
        assert "'alice'" in every_user and "default user-principal" in every_user, every_user

    check()
    # Deleting a key leaves the others; deleting the last one removes the entity.
    _configs(srv, "--alter", "--delete-config", "consumer_byte_rate", *alice)
    assert _described(srv, *alice) == {"producer_byte_rate": 1024}
    _configs(srv, "--alter", "--delete-config", "producer_byte_rate", *alice)
    assert _described(srv, *alice) == {}
    _configs(
        srv, "--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048", *alice
    )
    srv.restart()
    check()


def test_alter_client_quotas_is_validated_as_kafka_does(server):
    user = [("user", "val-" + ck.unique("u"))]
    assert _alter_raw(server, user, [("bogus_rate", 1.0, False)])[0] == 42
    code, msg = _alter_raw(server, user, [("producer_byte_rate", 1.5, False)])
    assert (code, msg) == (42, "producer_byte_rate cannot be a fractional value.")
    code, msg = _alter_raw(server, user, [("consumer_byte_rate", -5.0, False)])
    assert (code, msg) == (42, "Quota consumer_byte_rate must be greater than 0")
    rate = [("producer_byte_rate", 1.0, False)]
    assert _alter_raw(server, [("ip", "10.0.0.1"), ("user", "a")], rate)[0] == 42
    assert _alter_raw(server, [("ip", None)], rate)[0] == 42  # not an IP quota key
    assert _alter_raw(server, [], rate)[0] == 42
    assert _alter_raw(server, [("user", "")], rate)[0] == 42
    assert _alter_raw(server, user, rate, validate_only=True) == (0, None)
    assert _alter_raw(server, user, [("request_percentage", 12.5, False)]) == (0, None)
    assert _alter_raw(server, user, [("request_percentage", 0, True)]) == (0, None)


@pytest.mark.java
@pytest.mark.timeout(300)
def test_producer_and_consumer_converge_to_their_byte_rates(
    target, server_factory, kafka_tools, request
):
    metrics = None if target == "kafka" else f"{HOST}:{free_port()}"
    extra = {} if metrics is None else {"metrics_listener": metrics}
    server = server_factory(target, quota_window_num=WINDOWS, **extra)
    bs = server.bootstrap
    slow, fast, slowc = ck.unique("slow"), ck.unique("fast"), ck.unique("slowc")
    slowj, slowjc = ck.unique("slowj"), ck.unique("slowjc")  # the Java clients
    for key, clients in (
        ("producer_byte_rate", (slow, slowj)),
        ("consumer_byte_rate", (slowc, slowjc)),
    ):
        for client in clients:
            assert _alter_raw(server, [("client-id", client)], [(key, RATE, False)]) == (0, None)
    topic = ck.unique("quota")
    ck.create_topic(bs, topic, 1)
    other = ck.unique("quota-free")
    ck.create_topic(bs, other, 1)
    java_topic = ck.create_topic(bs, ck.unique("quota-java"), 1)

    results: dict[str, tuple[float, int]] = {}
    fast_thread = threading.Thread(
        target=lambda: results.__setitem__("fast", produce_for(bs, other, fast, 4.0))
    )
    fast_thread.start()
    # The Java producer runs alongside, about as long (its records at the rate).
    java_producer = JavaPerf.producer(bs, java_topic, slowj, int(MEASURE_S * RATE / 1024))
    request.addfinalizer(java_producer.stop)
    results["slow"] = produce_for(bs, topic, slow, MEASURE_S)
    fast_thread.join()
    slow_rate, slow_throttle = results["slow"]
    fast_rate, fast_throttle = results["fast"]
    print(f"producer: throttled {slow_rate / 1024:.0f} KiB/s (max throttle {slow_throttle} ms), "
          f"unthrottled {fast_rate / 1024:.0f} KiB/s")  # fmt: skip
    assert 0.7 * RATE <= slow_rate <= 1.3 * RATE, slow_rate
    assert slow_throttle > 0
    assert fast_rate > 5 * RATE and fast_throttle == 0, results

    java_throttle = java_producer.finish().throttle_times()
    print(f"Java producer: {java_producer.rate / 1024:.0f} KiB/s, {java_throttle}")
    assert 0.7 * RATE <= java_producer.rate <= 1.3 * RATE, java_producer.rate
    assert java_throttle["produce-throttle-time-avg"] > 0, java_throttle
    assert java_throttle["produce-throttle-time-max"] > 0, java_throttle

    # The consumers read what the unthrottled producer wrote (far more than MEASURE_S at RATE),
    # librdkafka's and the Java client's at the same time.
    java_consumer = JavaPerf.consumer(bs, other, slowjc, int(0.6 * MEASURE_S * RATE / 1024))
    request.addfinalizer(java_consumer.stop)
    stats = ThrottleStats()
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": ck.unique("quota"),
            "client.id": slowc,
            "enable.auto.commit": False,
            "statistics.interval.ms": 500,
            "stats_cb": stats,
            "max.partition.fetch.bytes": 64 * 1024,
            "fetch.max.bytes": 64 * 1024,
            "message.max.bytes": 64 * 1024,
        }
    )
    c.assign([TopicPartition(other, 0, 0)])
    consumed = 0
    start = None  # measured from the first record, not from connecting
    while start is None or time.monotonic() - start < MEASURE_S:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None:
            start = start or time.monotonic()
            consumed += len(msg.value())
    consume_rate = consumed / (time.monotonic() - start)
    c.close()
    throttle = stats.max_throttle
    print(f"consumer: throttled {consume_rate / 1024:.0f} KiB/s (max throttle {throttle} ms)")
    assert 0.7 * RATE <= consume_rate <= 1.3 * RATE, consume_rate
    assert stats.max_throttle > 0
    java_throttle = java_consumer.finish().throttle_times()
    print(f"Java consumer: {java_consumer.rate / 1024:.0f} KiB/s, {java_throttle}")
    assert java_consumer.rate <= 1.3 * RATE, java_consumer.rate
    assert java_throttle["fetch-throttle-time-avg"] > 0, java_throttle
    assert java_throttle["fetch-throttle-time-max"] > 0, java_throttle
    if metrics is not None:
        # The throttles the clients saw are counted per quota type.
        for quota in ("produce", "fetch"):
            label = f'{{quota="{quota}"}}'
            throttled = _scraped(metrics, f"kop_quota_throttled_responses_total{label}")
            time_ms = _scraped(metrics, f"kop_quota_throttle_time_ms_total{label}")
            print(f"{quota}: {throttled:.0f} throttled responses, {time_ms:.0f} ms in total")
            assert throttled >= 1 and time_ms >= throttled, (quota, throttled, time_ms)
        assert _scraped(metrics, 'kop_quota_throttled_responses_total{quota="request"}') == 0


@pytest.mark.parametrize("version", [5, 8])
def test_a_throttled_produce_is_answered_at_once_and_its_connection_muted(server, version):
    """Kafka 4.4 answers a throttled request at once, `throttle_time_ms` set, and then reads
    nothing more from the connection for that long, whatever the request's version: Produce v5
    (before KIP-219, whose clients do not back off themselves: `shouldClientThrottle` is false
    below v6) is held back by the mute alone, as v8 is. (The broker never looks at
    `shouldClientThrottle`; only the Java client does.)"""
    client_id = ck.unique(f"raw-v{version}")
    rate = [("producer_byte_rate", 20 * 1024, False)]
    assert _alter_raw(server, [("client-id", client_id)], rate) == (0, None)
    topic = ck.create_topic(server.bootstrap, ck.unique("quota-raw"), 1)
    # A first record by another client: the topic is loaded (Pulsar) before the measurement.
    warm = wire.produce(server.host, server.port, topic, 0, wire.record_batch([(None, b"-")]))
    assert warm.error_code == 0, warm
    # 2.5 quotas' worth at once, against the first window of 1 s: about 1.5 s of throttle.
    body = wire.produce_v7_body(topic, 0, wire.record_batch([(None, b"x" * (50 * 1024))]))
    with wire.connect(server.host, server.port) as sock:
        start = time.monotonic()
        wire.send_all(sock, wire.request(wire.API_PRODUCE, version, 1, body, client_id=client_id))
        frame = wire.read_frame(sock)
        answered = time.monotonic() - start
        corr, results = wire.parse_produce(frame, version)
        (throttle_ms,) = struct.unpack(">i", frame[-4:])  # the last field from v1 to v8
        assert corr == 1 and [r.error_code for r in results] == [0], results
        # The next request on the connection is read once the throttle time is over.
        wire.send_all(sock, wire.request(wire.API_API_VERSIONS, 0, 2, b"", client_id=client_id))
        wire.read_frame(sock)
        held = time.monotonic() - start - answered
    print(f"Produce v{version}: answered in {answered * 1000:.0f} ms with throttle_time_ms "
          f"{throttle_ms}, the next request {held * 1000:.0f} ms later")  # fmt: skip
    assert 1000 <= throttle_ms <= 2000, throttle_ms
    assert answered < 0.5 * throttle_ms / 1000, (answered, throttle_ms)
    assert held >= 0.8 * throttle_ms / 1000, (held, throttle_ms)


def test_a_request_time_throttle_is_in_the_response(server):
    """`request_percentage`: a client over its share of request-handling time gets the throttle
    in the response's `throttle_time_ms` (Metadata here), as Kafka puts it into every response
    it throttles, and at most one window of it."""
    client_id = ck.unique("request-time")
    share = [("request_percentage", 0.0001, False)]  # 1 µs of handling per second
    assert _alter_raw(server, [("client-id", client_id)], share) == (0, None)
    body = wire.i32(-1) + wire.i8(0)  # Metadata v4: every topic, no auto-creation
    throttles = []
    with wire.connect(server.host, server.port) as sock:
        for corr in range(1, 11):
            wire.send_all(sock, wire.request(wire.API_METADATA, 4, corr, body, client_id=client_id))
            r = wire._Reader(wire.read_frame(sock))
            assert r.i32() == corr
            throttles.append(r.i32())
            if throttles[-1] > 0:
                break
    assert 0 < throttles[-1] <= 1000, throttles


def _create_topic_v6(srv: Any, name: str, partitions: int, client_id: str) -> tuple[int, int]:
    """CreateTopics v6 (flexible) of one topic on a fresh connection: (error, throttle ms)."""
    body = wire.uvarint(2) + wire.compact_string(name) + wire.i32(partitions) + wire.i16(-1)
    body += wire.uvarint(1) + wire.uvarint(1) + wire.uvarint(0)  # no assignments nor configs
    body += wire.i32(10000) + wire.i8(0) + wire.uvarint(0)  # timeout, validate_only
    with wire.connect(srv.host, srv.port) as sock:
        frame = wire.request(API_CREATE_TOPICS, 6, 3, body, client_id=client_id, flexible=True)
        wire.send_all(sock, frame)
        r = wire._Reader(wire.read_frame(sock))
    assert r.i32() == 3
    r.skip_tags()
    throttle = r.i32()
    assert r.uvarint() == 2  # one topic
    assert r.take(r.uvarint() - 1).decode() == name
    return r.i16(), throttle


def test_controller_mutations_over_the_rate_are_refused(server):
    """`controller_mutation_rate` (KIP-599): a token bucket of the rate times its 2 windows
    (`controller_quota_window_num`, not `quota_window_num`); the mutation that empties it is
    accepted, the next CreateTopics (v6+) refused with THROTTLING_QUOTA_EXCEEDED until the
    bucket is back at zero (2 s here)."""
    client_id = ck.unique("mutations")
    rate = [("controller_mutation_rate", 1, False)]  # a bucket of 2 partitions
    assert _alter_raw(server, [("client-id", client_id)], rate) == (0, None)
    assert _create_topic_v6(server, ck.unique("mut-a"), 4, client_id)[0] == 0
    error, throttle = _create_topic_v6(server, ck.unique("mut-b"), 1, client_id)
    assert error == ERR_THROTTLING_QUOTA_EXCEEDED and 0 < throttle <= 3000, (error, throttle)


def test_connections_over_the_ip_rate_are_held_then_closed(server):
    """`connection_creation_rate` of an IP (KIP-612): connections over it are not served, and
    are closed only after the throttle time (Kafka's acceptor holds them, so that the client
    does not reconnect at once)."""
    ip = "127.0.0.3"
    rate = [("connection_creation_rate", 2, False)]  # 2 in the first window of 1 s
    assert _alter_raw(server, [("ip", ip)], rate) == (0, None)
    time.sleep(0.5)  # Kafka's brokers take quota changes from the metadata log
    answers = []
    for i in range(3):
        with socket.socket() as sock:
            sock.bind((ip, 0))
            sock.connect((server.host, server.port))
            start = time.monotonic()
            wire.send_all(sock, wire.request(wire.API_API_VERSIONS, 0, 1, b""))
            got = wire.read_frame(sock) if i < 2 else wire.expect_closed(sock, timeout=5)
            answers.append((len(got) > 0, time.monotonic() - start))
    # The third: no answer, closed after the throttle time (0.5 s: 3 in 1 s against 2).
    assert [a for a, _ in answers] == [True, True, False] and answers[2][1] >= 0.3, answers
