"""kafkajs (from npm): createTopics, produce, a consumer group with committed offsets,
deleteTopicRecords, alterConfigs / describeConfigs and deleteTopics, in one Node program
(tests/clients/kafkajs/check.js)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ck

CHECK = Path(__file__).resolve().parents[1] / "clients" / "kafkajs" / "check.js"


@pytest.mark.timeout(180)
def test_kafkajs_admin_produce_and_consume(server, kafkajs: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, str(CHECK), server.bootstrap, ck.unique("kafkajs")],
        env={**os.environ, "NODE_PATH": str(kafkajs)},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary == {
        "consumed": sorted(f"v{i}" for i in range(10)),
        "committed": 10,
        "low0": 3,
        "retention": "3600000",
        "deleted": True,
    }
