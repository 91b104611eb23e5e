#!/usr/bin/env python3
"""Start-up cost of share-state documents on Pulsar (`__kop_metadata` is replayed in full).

    .venv/bin/python bench/share_state_startup.py --acks 10000

Starts kop on Pulsar (the test helpers' `start_server("kop-pulsar")`), restarts it once with
an empty metadata history of share groups (baseline), then accepts N records one
ShareAcknowledge each (`ShareClient ackeach`: each writes the share partition's document) and
restarts it again: the two restart times. Not a test: nothing asserts a time. Measured (2-core
box under load, 10k acks): restart 6.2 s before, 4.5 s after (the replay of 10k share
documents is lost in the noise); the acknowledgements took 109 s (~92/s: each waits for its
document to be applied).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from helpers import ck, java, txn  # noqa: E402
from helpers.data import Rec  # noqa: E402
from helpers.pulsar import stop_pulsar_service  # noqa: E402
from helpers.servers import ServerHandle, start_server  # noqa: E402


def timed_restart(srv: ServerHandle) -> float:
    t = time.monotonic()
    srv.restart()
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--acks", type=int, default=10_000)
    args = ap.parse_args()
    java.fetch()
    with tempfile.TemporaryDirectory(prefix="kop-share-startup-") as tmp:
        work = Path(tmp)
        srv = start_server("kop-pulsar", work / "data", share_auto_offset_reset="earliest")
        client = None
        try:
            topic = ck.create_topic(srv.bootstrap, ck.unique("share-startup"), 1)
            ck.produce(srv.bootstrap, topic, [Rec(0, None, b"x" * 100) for _ in range(args.acks)])
            before = timed_restart(srv)
            from test_e2e_share_groups import ShareServe

            client = ShareServe(txn.JavaClasses(work / "classes"), srv.bootstrap, work / "c.log")
            out = client.call("ackeach", ck.unique("share-startup"), topic, args.acks)
            client.close()
            client = None
            after = timed_restart(srv)
            print(json.dumps({"restart_s_before": before, "restart_s_after": after, **out}))
        finally:
            if client is not None:
                client.close()
            srv.stop()
            stop_pulsar_service()


if __name__ == "__main__":
    main()
