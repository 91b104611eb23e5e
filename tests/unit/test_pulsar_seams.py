"""The Pulsar bridge's seams (kop.pulsar.seams) against the table in docs/pulsar-storage.md, the
backend that implements them and the Rust adapter that calls them."""

from __future__ import annotations

import inspect
import re

from kop.pulsar import seams
from kop.pulsar.backend import PulsarBackend

from .conftest import REPO

SEAMS = (seams.DocumentSeam, seams.LogSeam, seams.GroupLogSeam, seams.MemberSeam)
BRIDGE = seams.PulsarBridge


def _own_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def _protocol_methods() -> dict[str, tuple[str, inspect.Signature]]:
    """method -> (the Protocol that declares it, its signature)."""
    out: dict[str, tuple[str, inspect.Signature]] = {}
    for protocol in (*SEAMS, BRIDGE):
        for name, signature in _own_methods(protocol).items():
            assert name not in out, f"{name} is in both {out[name][0]} and {protocol.__name__}"
            out[name] = (protocol.__name__, signature)
    return out


def _doc_table() -> dict[str, tuple[str, list[str]]]:
    """method -> (seam column, parameter names) of the bridge table."""
    text = (REPO / "docs" / "pulsar-storage.md").read_text()
    section = text.split("## The bridge contract", 1)[1].split("\n## ", 1)[0]
    header = "| method | seam | blocking | what |"
    assert header in section, "the bridge table lost its columns"
    rows = section.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    out: dict[str, tuple[str, list[str]]] = {}
    for row in rows:
        m = re.match(r"\| `(\w+)\(([^)]*)\)[^`]*` \| `(\w+)` \|", row)
        assert m, f"unreadable bridge table row: {row}"
        params = [p.split(":")[0].strip() for p in m[2].split(",") if p.strip()]
        assert m[1] not in out, f"{m[1]} is in the table twice"
        out[m[1]] = (m[3], params)
    return out


def test_the_bridge_is_every_seam() -> None:
    assert set(BRIDGE.__mro__) >= set(SEAMS)


def test_the_doc_table_lists_every_protocol_method_and_nothing_else() -> None:
    documented, declared = _doc_table(), _protocol_methods()
    assert sorted(set(declared) - set(documented)) == [], "in kop.pulsar.seams, not in the docs"
    assert sorted(set(documented) - set(declared)) == [], "in the docs, not in kop.pulsar.seams"
    for name, (seam, params) in documented.items():
        protocol, signature = declared[name]
        assert seam == protocol, f"the table puts {name} in {seam}; it is in {protocol}"
        assert params == list(signature.parameters)[1:], f"{name}: parameters differ"


def test_the_backend_has_the_protocol_signatures() -> None:
    for name, (_, signature) in _protocol_methods().items():
        implemented = inspect.signature(getattr(PulsarBackend, name))
        assert implemented == signature, f"PulsarBackend.{name}{implemented} is not {signature}"


def test_the_rust_adapter_calls_every_seam_method() -> None:
    # rust/kop-py/src/pulsar.rs names each method it calls as a string literal.
    adapter = (REPO / "rust" / "kop-py" / "src" / "pulsar.rs").read_text()
    called = set(re.findall(r'"(\w+)"', adapter))
    for protocol in SEAMS:
        missing = sorted(set(_own_methods(protocol)) - called)
        assert missing == [], f"{protocol.__name__} methods Rust never calls: {missing}"
