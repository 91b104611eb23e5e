"""Kafka batches as one Pulsar message per record and back (kop.pulsar.records), without Pulsar:
``split`` gives what the writer sends, ``join`` rebuilds the batch byte for byte in what matters
(records, producer fields, offsets; compression dropped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("pulsar")

from kop._native import decode_batch
from kop.pulsar.format import parse_batch_header, with_base_offset
from kop.pulsar.records import Rec, encode_batch, join, split


@dataclass
class FakeMessage:
    """The parts of a pulsar.Message that join reads."""

    value: bytes
    props: dict[str, str]
    key: str | None
    event_ts: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    def properties(self) -> dict[str, str]:
        return self.props

    def data(self) -> bytes:
        return self.value

    def partition_key(self) -> str:
        return self.key or ""

    def event_timestamp(self) -> int:
        return self.event_ts or 0


def _roundtrip(batch: bytes, base_offset: int) -> bytes:
    head = parse_batch_header(batch)
    msgs = split(batch, 3, base_offset, head.record_count, head.max_timestamp)
    assert len(msgs) == head.record_count
    fakes = [
        FakeMessage(m.value, dict(m.properties), m.partition_key, m.event_timestamp) for m in msgs
    ]
    return join(base_offset, fakes)


def test_records_survive_split_and_join() -> None:
    records = [
        Rec(1_700_000_000_000, b"k1", b"v1", [("a", b"1"), ("b", b"2")]),
        Rec(1_700_000_000_005, None, None, []),  # null key, tombstone
        Rec(1_700_000_000_002, b"\xff\xfe", b"", [("z", b"\xff"), ("a", None), ("z", b"x")]),
        Rec(-1, b"", b"v4", [("kop.x", b"y")]),
    ]
    batch = encode_batch(
        100,
        records,
        producer_id=7,
        producer_epoch=1,
        base_sequence=40,
        base_timestamp=1_700_000_000_000,
    )
    assert [r[1:] for r in decode_batch(batch)] == [
        (r.timestamp, r.key, r.value, list(r.headers)) for r in records
    ]
    back = _roundtrip(batch, 100)
    assert decode_batch(back) == decode_batch(batch)
    assert parse_batch_header(back) == parse_batch_header(batch)


def test_a_pulsar_consumer_sees_key_value_and_headers_as_properties() -> None:
    batch = with_base_offset(
        encode_batch(0, [Rec(1_700_000_000_000, b"order-1", b"{}", [("trace", b"abc")])]), 42
    )
    (msg,) = split(batch, 1, 42, 1, 1_700_000_000_000)
    assert msg.partition_key == "order-1"
    assert msg.value == b"{}"
    assert msg.event_timestamp == 1_700_000_000_000
    assert msg.properties["trace"] == "abc"
    assert msg.properties["kop.base_offset"] == "42"
    assert "kop.headers" not in msg.properties  # the properties say everything
