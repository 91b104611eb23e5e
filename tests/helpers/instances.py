"""Two kop instances on one Pulsar namespace (one Kafka cluster), for the tests of what spans
instances."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from helpers import ck
from helpers.servers import KopPulsar, make_server, start_server


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
        except Exception:  # a Kafka error while the cluster settles: not yet
            got = None
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = ck.admin(bootstrap).list_topics(topic, timeout=10)
    return {p: m.leader for p, m in md.topics[topic].partitions.items()}


class Pair:
    """Two started kop instances (node ids 1 and 2) on one namespace; ``bootstrap`` names
    both."""

    def __init__(self, tmp_path: Path, partitions: int = 6, **config: Any) -> None:
        self.partitions = partitions
        self.one = start_server("kop-pulsar", tmp_path / "one", node_id=1, **config)
        assert isinstance(self.one, KopPulsar)
        self.two = make_server(
            "kop-pulsar", tmp_path / "two", namespace=self.one.namespace, node_id=2, **config
        )
        self.two.start()
        self.bootstrap = f"{self.one.bootstrap},{self.two.bootstrap}"

    def topic(self, stem: str) -> str:
        """A new topic whose partitions both instances lead, once both agree on it (leaders
        follow the topic's name: a name whose partitions all land on one instance is set
        aside)."""
        for _ in range(8):
            topic = ck.create_topic(self.one.bootstrap, ck.unique(stem), self.partitions)
            found = wait_for(
                "both instances agree on the leaders",
                lambda t=topic: (
                    (v := [leaders(b, t) for b in (self.one.bootstrap, self.two.bootstrap)])
                    and v[0] == v[1]
                    and len(v[0]) == self.partitions
                    and -1 not in v[0].values()
                    and v[0]
                ),
            )
            if set(found.values()) == {1, 2}:
                return topic
        raise AssertionError("8 topics in a row were led by one instance")

    def stop(self) -> None:
        self.two.kill()
        self.one.kill()

    def topic_led_by(self, node: int, stem: str) -> str:
        """A new one-partition topic led by instance ``node``, once both instances agree."""
        for _ in range(12):
            topic = ck.create_topic(self.one.bootstrap, ck.unique(stem), 1)
            leader = wait_for(
                "both instances agree on the leader",
                lambda t=topic: (
                    (v := [leaders(b, t).get(0) for b in (self.one.bootstrap, self.two.bootstrap)])
                    and v[0] == v[1]
                    and v[0] not in (None, -1)
                    and v[0]
                ),
            )
            if leader == node:
                return topic
        raise AssertionError(f"12 topics in a row were not led by instance {node}")
