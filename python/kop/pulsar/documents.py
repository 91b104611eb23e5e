"""Small named documents (cluster id, security state, counters, topic metadata) on one topic.

Each save is a message keyed by the document name; the last message of a name wins, an empty
payload with ``kop.deleted=1`` deletes it. Everything is loaded into memory at start, so reads
never touch Pulsar.
"""

from __future__ import annotations

import threading
from typing import Any

from kop.pulsar.client import PulsarIO
from kop.pulsar.format import PROP_DELETED, PROP_TYPE, TYPE_DOC


class DocumentStore:
    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._docs: dict[str, bytes] = {}
        self._lock = threading.Lock()  # one save at a time: the dict follows the topic's order
        self._producer: Any = None

    def load(self) -> None:
        docs: dict[str, bytes] = {}
        reader = self.io.reader(self.topic)
        try:
            for msg in self.io.drain(reader, self.topic):
                props = msg.properties()
                if props.get(PROP_TYPE) != TYPE_DOC:
                    continue
                name = msg.partition_key()
                if props.get(PROP_DELETED) == "1":
                    docs.pop(name, None)
                else:
                    docs[name] = msg.data()
        finally:
            self.io.close_quietly(reader)
        producer = self.io.shared_producer(self.topic)
        with self._lock:
            self._docs = docs
            self._producer = producer

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self._docs.get(name)

    def names(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(name for name in self._docs if name.startswith(prefix))

    def save(self, name: str, data: bytes | None) -> None:
        props = {PROP_TYPE: TYPE_DOC}
        if data is None:
            props[PROP_DELETED] = "1"
        with self._lock:
            with self.io.errors(f"save document {name!r}", self.topic):
                if self._producer is None:
                    raise RuntimeError("not started")
                payload = b"" if data is None else data
                self._producer.send(payload, properties=props, partition_key=name)
            if data is None:
                self._docs.pop(name, None)
            else:
                self._docs[name] = bytes(data)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        self.io.close_quietly(producer)
