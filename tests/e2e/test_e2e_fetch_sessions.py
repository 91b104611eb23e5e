"""Incremental fetch sessions (KIP-227), spoken on the wire: a full fetch opens a session, an
incremental fetch names only changed positions and its answer holds only partitions with news,
epochs are checked, forgotten partitions leave the session, and epoch -1 closes it. The Java,
librdkafka and Go consumers of the other suites use sessions the same way."""

from __future__ import annotations

import time

from helpers import ck, wire


def _produce(bs: str, topic: str, partition: int, count: int) -> None:
    p = ck.producer(bs)
    for i in range(count):
        p.produce(topic, b"v%d" % i, partition=partition)
    assert p.flush(30) == 0


def _news(resp: wire.FetchResponse) -> dict[int, tuple[int, bool]]:
    """partition -> (high watermark, has records) of each partition in the answer."""
    return {p.partition: (p.high_watermark, bool(p.records)) for p in resp.partitions}


def test_incremental_fetch_session(server):
    bs = server.bootstrap
    topic = ck.create_topic(bs, ck.unique("fsess"), 3)
    _produce(bs, topic, 0, 2)
    host, port = bs.rsplit(":", 1)
    with wire.connect(host, int(port), 10) as sock:
        full = wire.fetch_v12(
            sock, 1, session_id=0, epoch=0, fetch={(topic, 0): 0, (topic, 1): 0, (topic, 2): 0}
        )
        assert full.error_code == 0 and full.session_id != 0
        assert _news(full) == {0: (2, True), 1: (0, False), 2: (0, False)}
        sid = full.session_id

        # p0 moves past its records; nothing else changed: an empty answer after max_wait.
        quiet = wire.fetch_v12(
            sock, 2, session_id=sid, epoch=1, fetch={(topic, 0): 2}, max_wait_ms=200
        )
        assert (quiet.error_code, quiet.session_id, quiet.partitions) == (0, sid, [])

        # Records on p2 wake a long poll that names no partition at all.
        _produce(bs, topic, 2, 1)
        started = time.monotonic()
        woken = wire.fetch_v12(sock, 3, session_id=sid, epoch=2, fetch={}, max_wait_ms=10_000)
        assert time.monotonic() - started < 8
        assert _news(woken) == {2: (1, True)}

        # The same epoch twice, or an unknown session, is refused; the session survives.
        again = wire.fetch_v12(sock, 4, session_id=sid, epoch=2, fetch={})
        assert again.error_code == wire.ERR_INVALID_FETCH_SESSION_EPOCH
        unknown = wire.fetch_v12(sock, 5, session_id=sid ^ 0x5A5A, epoch=1, fetch={})
        assert unknown.error_code == wire.ERR_FETCH_SESSION_ID_NOT_FOUND

        # Forgotten partitions are no longer fetched.
        forgot = wire.fetch_v12(
            sock,
            6,
            session_id=sid,
            epoch=3,
            fetch={(topic, 2): 1},
            forget={topic: [1]},
            max_wait_ms=0,
        )
        assert forgot.error_code == 0
        _produce(bs, topic, 1, 1)
        after = wire.fetch_v12(sock, 7, session_id=sid, epoch=4, fetch={}, max_wait_ms=300)
        assert (after.error_code, after.partitions) == (0, [])

        # Epoch -1 closes the session and answers the listed partitions without one.
        closed = wire.fetch_v12(sock, 8, session_id=sid, epoch=-1, fetch={(topic, 1): 0})
        assert (closed.error_code, closed.session_id) == (0, 0)
        assert _news(closed) == {1: (1, True)}
        gone = wire.fetch_v12(sock, 9, session_id=sid, epoch=5, fetch={})
        assert gone.error_code == wire.ERR_FETCH_SESSION_ID_NOT_FOUND
