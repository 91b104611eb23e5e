"""The live kop instances on a namespace: heartbeats on one topic.

Each instance sends its member document (JSON from Rust: node id and endpoints) every
``HEARTBEAT_S`` and a ``leave`` when it closes; every instance follows the topic and counts a
member live while its last heartbeat is younger than ``SESSION_S`` (by the local clock of the
reader, so clock skew between hosts does not matter). A kill -9 is noticed after ``SESSION_S``.
Rust decides leadership from the live set (rendezvous hashing, ``broker/leadership.rs``).

A joining instance reads the heartbeats of the last ``SESSION_S`` first, so it starts with the
members already serving and does not briefly claim their partitions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import pulsar

from kop.pulsar.client import PulsarIO
from kop.pulsar.format import PROP_TYPE

log = logging.getLogger("kop.pulsar")

HEARTBEAT_S = 1.0
SESSION_S = 5.0
TYPE_HEARTBEAT = "member"
TYPE_LEAVE = "member-leave"
PROP_INSTANCE = "kop.instance"
PROP_NODE = "kop.node"
_POLL_MS = 200


class Members:
    def __init__(self, io: PulsarIO, topic: str) -> None:
        self.io = io
        self.topic = topic
        self.instance = uuid.uuid4().hex
        self._me: str | None = None
        self._node: int | None = None
        # node id -> (member doc, instance, seen at): the newest heartbeat of each node
        self._seen: dict[int, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._producer: Any = None
        self._reader: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def join(self, member: str) -> list[str]:
        """Announce ``member`` (and keep announcing it); the live members now."""
        node = int(json.loads(member)["node_id"])
        producer = self.io.shared_producer(self.topic)
        reader = self.io.reader(self.topic, start=pulsar.MessageId.latest)
        try:
            with self.io.errors("read recent heartbeats", self.topic):
                reader.seek(int((time.time() - SESSION_S) * 1000))
            for msg in self.io.drain(reader, self.topic):
                self._apply(msg)
        except BaseException:
            self.io.close_quietly(reader)
            self.io.close_quietly(producer)
            raise
        self._me, self._node = member, node
        self._producer, self._reader = producer, reader
        self._heartbeat()
        with self._lock:  # live from now on, without waiting to read its own heartbeat back
            self._seen[node] = (member, self.instance, time.monotonic())
        for target, name in (
            (self._beat, "kop-pulsar-heartbeat"),
            (self._follow, "kop-pulsar-members"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.live()

    def live(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [doc for doc, _, seen in self._seen.values() if now - seen < SESSION_S]

    def _heartbeat(self, kind: str = TYPE_HEARTBEAT) -> None:
        props = {PROP_TYPE: kind, PROP_INSTANCE: self.instance, PROP_NODE: str(self._node)}
        assert self._me is not None
        with self.io.errors("send a heartbeat", self.topic):
            self._producer.send(self._me.encode(), properties=props)

    def _apply(self, msg: Any) -> None:
        props = msg.properties()
        kind = props.get(PROP_TYPE)
        try:
            node = int(props.get(PROP_NODE, ""))
        except ValueError:
            return
        instance = props.get(PROP_INSTANCE, "")
        with self._lock:
            if kind == TYPE_HEARTBEAT:
                self._seen[node] = (msg.data().decode(), instance, time.monotonic())
            elif kind == TYPE_LEAVE and self._seen.get(node, ("", "", 0.0))[1] == instance:
                # Only the instance that left: a restarted one may already serve the node.
                del self._seen[node]

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._heartbeat()
                if failing:
                    log.info("%s: heartbeats go through again", self.topic)
                failing = False
            except Exception as err:
                if not failing:
                    log.warning("%s: heartbeat failed: %s", self.topic, err)
                failing = True

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._reader.read_next(timeout_millis=_POLL_MS)
            except pulsar.Timeout:
                continue
            except Exception:  # Pulsar away: the reader reconnects; heartbeats log it
                self._stop.wait(0.5)
                continue
            self._apply(msg)

    def close(self) -> None:
        """Leave: the others take this instance's partitions over at once."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._producer is not None and self._me is not None:
            try:
                self._heartbeat(TYPE_LEAVE)
            except Exception as err:
                log.info("%s: leave not announced: %s", self.topic, err)
        self.io.close_quietly(self._producer)
        self.io.close_quietly(self._reader)
        self._producer = self._reader = None
