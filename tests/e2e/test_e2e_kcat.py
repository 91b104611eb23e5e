"""kcat (librdkafka's CLI, from Debian): the README quick start, with keys and every codec."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import ck

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is required (scripts/test.sh installs it with apt-get)")
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produce_consume(server, kcat: str, codec: str) -> None:
    topic = ck.unique(f"kcat-{codec}")
    lines = [f"key-{i}:value {i} " + "x" * (i % 300) for i in range(2000)]
    produce = subprocess.run(
        [kcat, "-b", server.bootstrap, "-t", topic, "-P", "-K", ":", "-p", "0", "-z", codec],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produce.returncode == 0, produce.stderr
    consume_args = ["-C", "-p", "0", "-o", "beginning", "-e", "-f", "%o|%k|%s\n"]
    consume = subprocess.run(
        [kcat, "-b", server.bootstrap, "-t", topic, *consume_args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert consume.returncode == 0, consume.stderr
    got = consume.stdout.splitlines()
    expected = [f"{i}|{line.replace(':', '|', 1)}" for i, line in enumerate(lines)]
    assert got == expected
