"""The built wheel, installed the way a user installs it: a fresh venv, no Rust on PATH, no
package index; then `kop serve` with a real client (tests/wheel_smoke.py).

Uses the wheel scripts/test.sh built (KOP_WHEEL); by hand: `maturin build --release --out dist`
and the newest dist/kop-*.whl is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = "Scripts" if os.name == "nt" else "bin"


def _wheel() -> Path:
    given = os.environ.get("KOP_WHEEL")
    if given:
        path = Path(given)
        assert path.is_file(), f"KOP_WHEEL={given} does not exist"
        return path
    wheels = sorted((REPO / "dist").glob("kop-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        pytest.skip("no wheel: set KOP_WHEEL or run `maturin build --release --out dist`")
    return wheels[-1]


def _without_rust(path: str) -> str:
    """PATH minus every directory that has cargo or rustc in it."""
    keep = []
    for entry in path.split(os.pathsep):
        if not any((Path(entry) / tool).exists() for tool in ("cargo", "rustc", "cargo.exe")):
            keep.append(entry)
    return os.pathsep.join(keep)


def test_wheel_contents() -> None:
    wheel = _wheel()
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        native = [n for n in names if n.startswith("kop/_native.") and not n.endswith(".pyi")]
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, names
        assert "Apache License" in zf.read(licenses[0]).decode()
        assert len(native) == 1, names
        size = zf.getinfo(native[0]).file_size
    assert "abi3" in wheel.name, wheel.name
    print(f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, {native[0]} {size / 1e6:.1f} MB")
    assert wheel.stat().st_size <= 10_000_000


def test_installed_wheel_serves_a_kafka_client(tmp_path: Path) -> None:
    wheel = _wheel()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / BIN / ("python.exe" if os.name == "nt" else "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOP_", "PYTHON", "CARGO"))}
    env["PATH"] = _without_rust(os.environ.get("PATH", ""))
    env.pop("VIRTUAL_ENV", None)
    env.pop("RUSTUP_HOME", None)
    # --no-index: nothing may be fetched or built; the wheel has to be complete as it is.
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-index", "--no-cache-dir", str(wheel)],
        env=env,
        check=True,
        timeout=300,
    )
    kop = env_dir / BIN / ("kop.exe" if os.name == "nt" else "kop")
    version = subprocess.run(
        [kop, "--version"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert version.stdout.startswith("kop ")
    # The client is the test venv's kafka-python; kop runs from the fresh venv (its `kop` script
    # pins that venv's Python) with a PATH that has no Rust on it.
    smoke = subprocess.run(
        [sys.executable, str(REPO / "tests" / "wheel_smoke.py"), str(kop)],
        env={**env, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    print(smoke.stdout.strip())
