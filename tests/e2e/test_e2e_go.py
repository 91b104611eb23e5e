"""A Go client (franz-go, from the Go module proxy): produce with every codec, read back by
partition, every record byte-identical at contiguous offsets (checked inside the Go program)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import ck

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
def test_franz_go_roundtrip(server, go_check: Path, codec: str) -> None:
    topic = ck.unique(f"go-{codec}")
    out = subprocess.run(
        [str(go_check), "--brokers", server.bootstrap, "--topic", topic, "--compression", codec],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary == {"records": 3000, "partitions": 3, "compression": codec}
