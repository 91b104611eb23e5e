"""Reading kop's Kafka data from Pulsar with a plain ``pulsar-client`` consumer or reader.

Each data message holds one Kafka record batch; ``decode_records`` turns it into records (the
decoding, decompression included, is kop's Rust code). Markers carry no records.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from kop.pulsar.format import PROP_TYPE, TYPE_BATCH, TYPE_MARKER

__all__ = ["Record", "decode_records", "is_marker", "message_records"]


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp: int  # ms since the epoch
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def decode_records(payload: bytes) -> list[Record]:
    """The records of one Kafka RecordBatch v2 (the payload of a kop data message)."""
    # Imported here so that the rest of kop.pulsar works without the compiled extension.
    native: Any = importlib.import_module("kop._native")
    return [
        Record(offset, timestamp, key, value, list(headers))
        for offset, timestamp, key, value, headers in native.decode_batch(bytes(payload))
    ]


def is_marker(message: Any) -> bool:
    """True for an epoch marker (a takeover), which holds no records."""
    return bool(message.properties().get(PROP_TYPE) == TYPE_MARKER)


def message_records(message: Any) -> list[Record]:
    """The records of a ``pulsar.Message`` of a kop partition topic ([] for a marker).

    A batch written by a writer that had already lost the partition (its ``kop.epoch`` below the
    highest epoch seen before it on the topic) is not part of the Kafka log; kop's own readers
    skip such batches. Fencing keeps them out, so a plain consumer rarely sees one; see
    docs/pulsar-storage.md for how to skip them too.
    """
    if message.properties().get(PROP_TYPE) != TYPE_BATCH:
        return []
    return decode_records(message.data())
