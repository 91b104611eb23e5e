"""KIP-848 regex subscriptions: librdkafka with group.protocol=consumer subscribes with a
regular expression (sent as SubscribedTopicRegex); a topic created later that matches joins
the subscription, one that does not match never does."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer

from helpers import ck
from helpers.data import Rec


def _consume_until(c: Consumer, want: set[bytes], timeout: float) -> dict[bytes, str]:
    """value -> topic of the records consumed until every value in ``want`` was seen."""
    seen: dict[bytes, str] = {}
    deadline = time.monotonic() + timeout
    while not want <= set(seen):
        assert time.monotonic() < deadline, f"missing {sorted(want - set(seen))}"
        for m in c.consume(num_messages=100, timeout=0.5):
            if m.error() is None:
                seen[m.value()] = m.topic()
    return seen


@pytest.mark.timeout(240)
def test_a_regex_subscription_picks_up_topics_created_later(server):
    bs = server.bootstrap
    prefix = ck.unique("rx")
    first = ck.create_topic(bs, f"{prefix}-a", 2)
    other = ck.create_topic(bs, ck.unique("rx-other"), 1)
    ck.produce(bs, first, [Rec(i % 2, None, b"a%d" % i) for i in range(6)])
    ck.produce(bs, other, [Rec(0, None, b"o0")])
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": ck.unique("rx"),
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    try:
        c.subscribe([f"^{prefix}-.*"])
        got = _consume_until(c, {b"a%d" % i for i in range(6)}, 90)
        assert set(got.values()) == {first}

        second = ck.create_topic(bs, f"{prefix}-b", 2)
        ck.produce(bs, second, [Rec(i % 2, None, b"b%d" % i) for i in range(4)])
        got = _consume_until(c, {b"b%d" % i for i in range(4)}, 120)
        assert b"o0" not in got
        assert {t for v, t in got.items() if v.startswith(b"b")} == {second}
        assert {tp.topic for tp in c.assignment()} == {first, second}
    finally:
        c.close()
