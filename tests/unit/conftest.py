"""Unit tests need only the pure-Python package: no native module, no server, no network."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Not installed (no `maturin develop` yet): test the source tree directly.
if importlib.util.find_spec("kop") is None:
    sys.path.insert(0, str(REPO / "python"))

from .fake_native import FakeNativeServer, make_module  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's KOP_* variables must not leak into precedence tests.
    for var in list(os.environ):
        if var.startswith("KOP_"):
            monkeypatch.delenv(var)


@pytest.fixture
def fake_native(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeNativeServer]]:
    """Replace kop._native with an in-memory fake; yields the fake server class."""
    module = make_module()
    monkeypatch.setitem(sys.modules, "kop._native", module)
    yield module.NativeServer


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m kop` subprocesses: finds the same kop package, no KOP_*."""
    import kop

    env = {k: v for k, v in os.environ.items() if not k.startswith("KOP_")}
    package_root = str(Path(kop.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env
