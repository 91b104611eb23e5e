"""A Go client (franz-go, from the Go module proxy): produce with every codec, read back by
partition, every record byte-identical at contiguous offsets (checked inside the Go program)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ck

GO_DIR = Path(__file__).resolve().parents[1] / "clients" / "go"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="session")
def go_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is required for the Go client test (see README)")
    binary = tmp_path_factory.mktemp("go") / "kop-go-check"
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}
    subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=GO_DIR, env=env, check=True, timeout=600
    )
    return binary


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
