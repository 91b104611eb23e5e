"""Apache Pulsar storage for kop (``pip install kop[pulsar]``; docs/pulsar-storage.md).

``PulsarBackend`` is what kop's Rust storage calls; ``decode_records`` and friends let a plain
``pulsar-client`` application read the Kafka records kop stored.
"""

from __future__ import annotations

from kop.pulsar.backend import PulsarBackend
from kop.pulsar.decode import Record, decode_records, is_marker, message_records
from kop.pulsar.errors import PulsarStorageError

__all__ = [
    "PulsarBackend",
    "PulsarStorageError",
    "Record",
    "decode_records",
    "is_marker",
    "message_records",
]
