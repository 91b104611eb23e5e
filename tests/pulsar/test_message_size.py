"""A batch larger than Pulsar's maxMessageSize on a topic whose max.message.bytes allows it:
refused at once with MESSAGE_TOO_LARGE (docs/pulsar-storage.md, "Message size"), the partition
keeps serving, and nothing steps down or is taken over again. Against the real Pulsar standalone.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from helpers import ck, wire
from helpers.pulsar import PulsarService
from helpers.servers import start_server

ck_kafka = pytest.importorskip("confluent_kafka")
pytest.importorskip("pulsar")

pytestmark = [pytest.mark.pulsar, pytest.mark.timeout(300)]

ERR_NONE = 0
ERR_MESSAGE_TOO_LARGE = 10
TOPIC_LIMIT = 10 * 1024 * 1024  # the topic's max.message.bytes
METADATA_RESERVE = 1024  # kop.pulsar.backend.METADATA_RESERVE


def _batch_of_size(size: int) -> tuple[bytes, bytes]:
    """An uncompressed one-record batch of exactly ``size`` bytes, and its record's value."""
    value_len = size - len(wire.record_batch([(None, b"")]))
    while True:
        value = os.urandom(value_len)
        batch = wire.record_batch([(None, value)])
        if len(batch) == size:
            return batch, value
        value_len += size - len(batch)  # the value's length varint grew


def test_batch_above_pulsars_limit_is_refused_at_once_and_the_partition_keeps_serving(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    runtime = pulsar_service.admin("GET", "/admin/v2/brokers/configuration/runtime")
    max_message_size = int(runtime["maxMessageSize"])
    assert max_message_size < TOPIC_LIMIT  # the case of the issue: Pulsar's 5 MiB default
    limit = max_message_size - METADATA_RESERVE

    srv = start_server("kop-pulsar", tmp_path / "kop")
    try:
        topic = ck.create_topic(srv.bootstrap, "big", 1, {"max.message.bytes": str(TOPIC_LIMIT)})
        assert f"maxMessageSize is {max_message_size} bytes" in srv.log_text()

        # The case: 6 MiB. Answered at once, not retried into a takeover loop.
        t0 = time.monotonic()
        six = wire.record_batch([(b"k", os.urandom(6 * 1024 * 1024))])
        refused = wire.produce(srv.host, srv.port, topic, 0, six, timeout=30)
        assert refused.error_code == ERR_MESSAGE_TOO_LARGE, refused
        assert time.monotonic() - t0 < 5

        # The boundary is exact: the largest batch kop stores, and one byte more.
        largest, largest_value = _batch_of_size(limit)
        stored = wire.produce(srv.host, srv.port, topic, 0, largest, timeout=60)
        assert (stored.error_code, stored.base_offset) == (ERR_NONE, 0), stored
        too_big, _ = _batch_of_size(limit + 1)
        refused = wire.produce(srv.host, srv.port, topic, 0, too_big)
        assert refused.error_code == ERR_MESSAGE_TOO_LARGE, refused

        # A real client: librdkafka gets the error in its delivery report, promptly.
        producer = ck_kafka.Producer(
            {
                "bootstrap.servers": srv.bootstrap,
                "message.max.bytes": 2 * TOPIC_LIMIT,
                "acks": "all",
                "enable.idempotence": True,
                "delivery.timeout.ms": 120_000,
            }
        )
        reports: list[tuple[bytes, str | None]] = []

        def on_delivery(err: object, msg: object) -> None:
            reports.append((msg.value()[:8], None if err is None else err.name()))  # type: ignore[attr-defined]

        t0 = time.monotonic()
        producer.produce(topic, os.urandom(6 * 1024 * 1024), partition=0, on_delivery=on_delivery)
        assert producer.flush(60) == 0
        assert reports[-1][1] == "MSG_SIZE_TOO_LARGE", reports
        assert time.monotonic() - t0 < 10
        # ... and the partition keeps serving the same producer and others.
        for i in range(20):
            producer.produce(topic, b"small-%02d" % i, partition=0, on_delivery=on_delivery)
        assert producer.flush(60) == 0
        assert reports[1:] == [(b"small-%02d" % i, None) for i in range(20)], reports
        after = wire.produce(srv.host, srv.port, topic, 0, wire.record_batch([(None, b"x")]))
        assert (after.error_code, after.base_offset) == (ERR_NONE, 21), after

        # What was stored reads back: the boundary batch whole, then the small records.
        got = ck.consume_all(srv.bootstrap, topic, [0], timeout=120)[0]
        assert [m.offset for m in got] == list(range(22))
        assert got[0].value == largest_value
        assert [m.value for m in got[1:21]] == [b"small-%02d" % i for i in range(20)]
        assert got[21].value == b"x"

        # No step-down, no takeover loop: the partition was taken over once, when created.
        log = srv.log_text()
        assert "stepping down" not in log, log[-3000:]
        assert "took the partition over again" not in log, log[-3000:]
        takeovers = re.findall(r"/big-partition-0: taken over with epoch", log)
        assert len(takeovers) == 1, log[-3000:]
    finally:
        srv.stop()
