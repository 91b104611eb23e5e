"""Durability: a graceful restart keeps every record at its offset (and topic configs); kill -9
in the middle of an acks=all produce loop loses no acknowledged record and leaves no holes."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource

from helpers import ck
from helpers.data import Mix, Rec, check_contiguous, check_same, make_records

# Every test here is about the server process or the local log itself (conftest.py, KOP_CLI_TESTS).
pytestmark = pytest.mark.kop_process


def _restartable(target: str) -> None:
    if target not in ("kop-cli", "kop-embedded", "kop-pulsar", "kafka"):
        pytest.skip(f"{target} cannot be restarted by the tests")


@pytest.mark.timeout(400)
def test_restart_keeps_records_offsets_and_configs(target, server_factory):
    _restartable(target)
    srv = server_factory(target)
    topic = ck.create_topic(
        srv.bootstrap,
        ck.unique("restart"),
        4,
        {"retention.ms": "987654321", "max.message.bytes": str(4 * 1024 * 1024)},
    )
    empty = ck.create_topic(srv.bootstrap, ck.unique("empty"), 6)
    recs = make_records(20_000, Mix(big_values=2, seed=70))
    ck.produce(srv.bootstrap, topic, recs, compression_type="gzip").check_order(recs)
    marks = ck.watermarks(srv.bootstrap, topic, range(4))

    srv.restart()

    assert ck.watermarks(srv.bootstrap, topic, range(4)) == marks
    check_same(recs, ck.consume_all(srv.bootstrap, topic))
    ck.wait_for_partitions(srv.bootstrap, empty, 6)
    res = ConfigResource("topic", topic)
    a = ck.admin(srv.bootstrap)
    entry = a.describe_configs([res])[res].result(timeout=30)["retention.ms"]
    assert (entry.value, entry.source) == ("987654321", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    # appends continue at the next offsets
    more = make_records(2000, Mix(seed=71))
    ck.produce(srv.bootstrap, topic, more, compression_type="lz4").check_order(more)
    check_same(recs + more, ck.consume_all(srv.bootstrap, topic))

    # and a second restart right after appending still has everything
    srv.restart()
    check_same(recs + more, ck.consume_all(srv.bootstrap, topic))


class _Loop:
    """acks=all producer in a thread; records every acknowledged (partition, offset, value)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed = 0
        self.sent = 0
        self.stop = threading.Event()
        self.p = ck.producer(
            bootstrap,
            enable_idempotence=False,
            acks="all",
            linger_ms=2,
            message_timeout_ms=5000,
            retries=2,
            # reconnect attempts to the dead server must not outlive the test
            reconnect_backoff_max_ms=500,
        )
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg) -> None:
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed += 1

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.p.produce(
                    self.topic,
                    value=b"seq-%08d" % i,
                    key=b"%d" % (i % 13),
                    on_delivery=self.on_delivery,
                )
                i += 1
                self.sent = i
            except BufferError:
                self.p.poll(0.05)
                continue
            if i % 100 == 0:
                self.p.poll(0)
        self.p.flush(30)


@pytest.mark.timeout(400)
def test_kill9_during_acks_all_produce(target, server_factory):
    if target == "kop-embedded":
        pytest.skip("kill -9 needs a server process of its own (kop-cli)")
    srv = server_factory(target)
    topic = ck.create_topic(srv.bootstrap, ck.unique("kill9"), 4)
    loop = _Loop(srv.bootstrap, topic)
    loop.thread.start()
    deadline = time.monotonic() + 60
    while len(loop.acked) < 30_000:
        assert time.monotonic() < deadline, f"only {len(loop.acked)} acks in 60s"
        assert loop.thread.is_alive()
        time.sleep(0.01)
    in_flight_at_kill = loop.sent - len(loop.acked) - loop.failed
    srv.kill()
    time.sleep(0.5)  # the loop keeps producing into the dead connection
    loop.stop.set()
    loop.thread.join(60)
    assert not loop.thread.is_alive(), "producer did not finish"
    acked = list(loop.acked)
    assert in_flight_at_kill > 0, "nothing was in flight when the server was killed"
    assert loop.failed > 0, "no send failed: the kill did not interrupt the produce loop"
    del loop

    srv.start()
    got = ck.consume_all(srv.bootstrap, topic, timeout=120)
    check_contiguous(got, dict.fromkeys(range(4), 0))
    stored = {(p, g.offset): g.value for p, rows in got.items() for g in rows}
    lost = [(p, off, v) for p, off, v in acked if stored.get((p, off)) != v]
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged records missing or changed after kill -9, "
        f"e.g. {lost[:5]} (stored there: {[stored.get((p, o)) for p, o, _ in lost[:5]]})"
    )
    # nothing but what the loop sent
    assert all(v.startswith(b"seq-") for v in stored.values())

    # the recovered log takes appends right after its last record
    marks = ck.watermarks(srv.bootstrap, topic, range(4))
    more = [Rec(p, b"after", b"after-%d" % p) for p in range(4)]
    acks = ck.produce(srv.bootstrap, topic, more)
    acks.check_order(more)
    assert [acks.offsets[i] for i in range(4)] == [(p, marks[p][1]) for p in range(4)]
