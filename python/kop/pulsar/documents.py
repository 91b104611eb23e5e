"""Small named documents (cluster id, security state, counters, topic metadata) on one topic,
shared by every kop instance on the namespace.

Each save is a message keyed by the document name; an empty payload with ``kop.deleted=1``
deletes it. A conditional save (``save_if``) carries ``kop.expect``: the digest of the content
it expects to replace (``absent`` for none). Every reader applies the topic's messages in order
and skips a conditional save whose expectation no longer holds, so all instances agree on which
of two racing saves won — a compare-and-set ordered by the topic.

A tail thread follows the topic, so documents written by other instances show up here within
moments, and ``version`` counts the changes applied (share-partition states excepted). A save
returns once the tail has applied its own message: a later ``get`` sees it (read your writes).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any

import pulsar

from kop.pulsar.client import MessageKey, PulsarIO, message_key
from kop.pulsar.errors import PulsarStorageError
from kop.pulsar.format import PROP_DELETED, PROP_EXPECT, PROP_TYPE, TYPE_DOC

log = logging.getLogger("kop.pulsar")

_ABSENT = "absent"
# Documents nobody reloads on a version change (share-partition state, written at every
# acknowledgement): saving one leaves ``version`` alone so instances don't resync metadata.
_UNVERSIONED_PREFIX = "share/"
_TAIL_POLL_MS = 200
_OUTCOMES_KEPT = 10_000


def digest(data: bytes | None) -> str:
    """What ``kop.expect`` holds for a document's current content."""
    return _ABSENT if data is None else hashlib.sha256(data).hexdigest()


class DocumentStore:
    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self._docs: dict[str, bytes] = {}
        self._version = 0
        self._applied: MessageKey = (-1, -1)  # the last message the tail has applied
        # Whether each message applied, for the saves waiting on them (the newest kept).
        self._outcomes: OrderedDict[MessageKey, bool] = OrderedDict()
        self._cv = threading.Condition()  # guards the above
        self._write_lock = threading.Lock()  # one save at a time from this instance
        self._producer: Any = None
        self._reader: Any = None
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None

    def load(self) -> None:
        """Read every document, then follow the topic in the background."""
        reader = self.io.reader(self.topic)
        try:
            for msg in self.io.drain(reader, self.topic):
                self._apply(msg)
            producer = self.io.shared_producer(self.topic)
        except BaseException:
            self.io.close_quietly(reader)
            raise
        self._reader, self._producer = reader, producer
        self._tail = threading.Thread(target=self._follow, name="kop-pulsar-docs", daemon=True)
        self._tail.start()

    @property
    def version(self) -> int:
        with self._cv:
            return self._version

    def get(self, name: str) -> bytes | None:
        with self._cv:
            return self._docs.get(name)

    def names(self, prefix: str) -> list[str]:
        with self._cv:
            return sorted(name for name in self._docs if name.startswith(prefix))

    def save(self, name: str, data: bytes | None) -> None:
        self._save(name, data, expect=None)

    def save_if(self, name: str, data: bytes | None, expected: bytes | None) -> bool:
        """Save if the document still holds ``expected`` (None: absent) once every earlier
        save, from any instance, is applied; False (nothing changed) otherwise."""
        return self._save(name, data, expect=digest(expected))

    def _save(self, name: str, data: bytes | None, expect: str | None) -> bool:
        props = {PROP_TYPE: TYPE_DOC}
        if data is None:
            props[PROP_DELETED] = "1"
        if expect is not None:
            props[PROP_EXPECT] = expect
        with self._write_lock:
            with self.io.errors(f"save document {name!r}", self.topic):
                if self._producer is None:
                    raise RuntimeError("not started")
                payload = b"" if data is None else data
                sent = message_key(
                    self._producer.send(payload, properties=props, partition_key=name)
                )
            return self._outcome(sent, name)

    def _outcome(self, sent: MessageKey, name: str) -> bool:
        """Wait until the tail applied (or skipped) our message."""
        timeout_s = self.io.operation_timeout_ms / 1000
        with self._cv:
            if not self._cv.wait_for(lambda: self._applied >= sent, timeout_s):
                raise PulsarStorageError(
                    f"Pulsar {self.io.url} {self.topic}: document {name!r} was stored but not "
                    f"read back within {timeout_s:.0f} s"
                )
            return self._outcomes.pop(sent, False)

    def _apply(self, msg: Any) -> None:
        key = message_key(msg.message_id())
        props = msg.properties()
        with self._cv:
            applied = False
            if props.get(PROP_TYPE) == TYPE_DOC:
                name = msg.partition_key()
                expect = props.get(PROP_EXPECT)
                if expect is None or expect == digest(self._docs.get(name)):
                    if props.get(PROP_DELETED) == "1":
                        self._docs.pop(name, None)
                    else:
                        self._docs[name] = msg.data()
                    if not name.startswith(_UNVERSIONED_PREFIX):
                        self._version += 1
                    applied = True
            self._outcomes[key] = applied
            while len(self._outcomes) > _OUTCOMES_KEPT:
                self._outcomes.popitem(last=False)
            self._applied = max(self._applied, key)
            self._cv.notify_all()

    def _follow(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                msg = self._reader.read_next(timeout_millis=_TAIL_POLL_MS)
            except pulsar.Timeout:
                continue
            except Exception as err:  # Pulsar away: the reader reconnects by itself
                if self._stop.is_set():
                    return
                if not failing:
                    log.warning("%s: following documents failed: %s", self.topic, err)
                failing = True
                self._stop.wait(0.5)
                continue
            failing = False
            self._apply(msg)

    def close(self) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(timeout=2)
        with self._write_lock:
            producer, self._producer = self._producer, None
        self.io.close_quietly(producer)
        self.io.close_quietly(self._reader)
        self._reader = None
