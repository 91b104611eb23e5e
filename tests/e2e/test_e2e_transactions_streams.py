"""Kafka Streams 4.4 word count with processing.guarantee=exactly_once_v2
(tests/clients/java/WordCount.java) while the server is killed with SIGKILL and restarted
mid-run (kop-embedded, which lives in the test process, is stopped and started instead): the
final counts are exact, and a read_committed reader of the output sees each word's count go
1, 2, ... n with no repeat or gap — no update lost or applied twice."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import ck, txn
from helpers.servers import ServerHandle, free_port

pytestmark = [pytest.mark.java, pytest.mark.usefixtures("kafka_tools"), pytest.mark.kop_process]

WORDS = [f"w{i:02d}" for i in range(12)]
LINES, PER_SECOND = 1500, 150  # input spans ~10 s, so the kill lands mid-run


class _Feeder:
    """Produces the input lines at a steady pace from a thread (idempotent, acks=all, retrying
    through the server's absence); ``acked`` counts delivered lines."""

    def __init__(self, bootstrap: str, topic: str, lines: list[str]) -> None:
        self.topic, self.lines = topic, lines
        self.acked = 0
        self.errors: list[str] = []
        self.p = ck.producer(
            bootstrap, message_timeout_ms=120000, reconnect_backoff_max_ms=500, linger_ms=5
        )
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked += 1
        else:
            self.errors.append(str(err))

    def run(self) -> None:
        start = time.monotonic()
        for i, line in enumerate(self.lines):
            time.sleep(max(0.0, start + i / PER_SECOND - time.monotonic()))
            self.p.produce(self.topic, line.encode(), on_delivery=self.on_delivery)
            self.p.poll(0)
        self.p.flush(150)


def _counts(bootstrap: str, topic: str) -> dict[str, list[int]]:
    """Each word's counts in the order a read_committed reader of the output sees them."""
    seen: dict[str, list[int]] = {}
    for recs in txn.read_records(bootstrap, topic, 2, "read_committed").values():
        for key, value in recs:
            assert key is not None
            seen.setdefault(key, []).append(int(value))
    return seen


def _wait(what: str, check: Callable[[], bool], timeout: float, proc: Any, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"WordCount exited {proc.returncode}: {_tail(log)}"
        assert time.monotonic() < deadline, f"{what} not within {timeout} s: {_tail(log)}"
        time.sleep(0.5)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


@pytest.mark.timeout(300)
def test_streams_word_count_exactly_once_v2_survives_server_kill(
    target: str,
    server_factory: Callable[..., ServerHandle],
    java_classes: txn.JavaClasses,
    tmp_path: Path,
) -> None:
    # kop-embedded restarts in this process on a port of its own choosing unless told one
    options = (
        {"listeners": [f"PLAINTEXT://127.0.0.1:{free_port()}"]} if target == "kop-embedded" else {}
    )
    srv = server_factory(target, **options)
    source = ck.create_topic(srv.bootstrap, ck.unique("wc-in"), 2)
    sink = ck.create_topic(srv.bootstrap, ck.unique("wc-out"), 2)
    rng = random.Random(13)
    lines = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(LINES)]
    want = Counter(word for line in lines for word in line.split())

    classes = java_classes.with_streams()
    log = tmp_path / "wordcount.log"
    args = [srv.bootstrap, ck.unique("wc-app"), source, sink, str(tmp_path / "state")]
    app = txn.start_java(classes.streams_classpath, "WordCount", args, log)
    feeder = _Feeder(srv.bootstrap, source, lines)
    try:
        assert app.stdout is not None
        while json.loads(app.stdout.readline() or '{"state": "EXITED"}')["state"] != "RUNNING":
            assert app.poll() is None, f"WordCount exited {app.returncode}: {_tail(log)}"
        feeder.thread.start()

        # the kill lands once counts are flowing and while input still is
        _wait("first counts", lambda: bool(_counts(srv.bootstrap, sink)), 60, app, log)
        assert feeder.acked < LINES // 2, "the input was fed before the first counts appeared"
        if srv.can_kill:
            srv.kill()
        else:
            srv.stop()
        srv.start()

        feeder.thread.join(160)
        assert not feeder.errors and feeder.acked == LINES, (feeder.acked, feeder.errors[:3])
        _wait(
            "final counts",
            lambda: sum(map(len, _counts(srv.bootstrap, sink).values())) >= want.total(),
            120,
            app,
            log,
        )
        seen = _counts(srv.bootstrap, sink)
        wrong = {
            w: f"{len(c)} updates, last {c[-1]}, distinct {len(set(c))}, want 1..{want[w]}"
            for w, c in seen.items()
            if c != list(range(1, want[w] + 1))
        }
        assert not wrong and set(seen) == set(want), (wrong, sorted(set(want) - set(seen)))
    finally:
        txn.kill_group(app)
