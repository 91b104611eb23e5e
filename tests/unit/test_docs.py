"""Docs and stubs that must match the code."""

from __future__ import annotations

import ast
import re

from kop import Config
from kop.config import config_reference_markdown, env_var, flag

from .conftest import REPO


def test_configuration_md_has_the_generated_table() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    assert config_reference_markdown() in text, (
        "docs/configuration.md is stale; regenerate the table with: python -c "
        "'from kop.config import config_reference_markdown as t; print(t())'"
    )
    for name in Config.__dataclass_fields__:
        assert f"`{name}`" in text and flag(name) in text and env_var(name) in text


def _signatures(source: str) -> dict[str, str]:
    """qualified name -> unparsed signature, with __new__(cls, ...) written as __init__."""
    out = {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = node.body if isinstance(node, (ast.Module, ast.ClassDef)) else []
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for item in body:
            if isinstance(item, ast.FunctionDef):
                name, args = item.name, item.args
                returns = ast.unparse(item.returns) if item.returns else ""
                if name == "__new__":
                    name, returns = "__init__", "None"
                    args.args[0].arg = "self"
                out[prefix + name] = f"({ast.unparse(args)}) -> {returns}"
    return out


def test_stub_matches_the_native_contract() -> None:
    contract = (REPO / "docs" / "native-api.md").read_text()
    block = re.search(r"```python\n(.*?)```", contract, re.DOTALL)
    assert block
    stub = (REPO / "python" / "kop" / "_native.pyi").read_text()
    assert _signatures(stub) == _signatures(block[1])


def test_dashboard_queries_only_documented_metrics() -> None:
    """Every kop_* name in the Grafana dashboard is documented in docs/metrics.md (the e2e
    test, tests/e2e/test_e2e_metrics.py, checks them against a real scrape)."""
    import json

    board = json.loads((REPO / "docs" / "grafana" / "kop-dashboard.json").read_text())
    documented = set(re.findall(r"`(kop_[a-z_]+)`", (REPO / "docs" / "metrics.md").read_text()))
    used = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\bkop_[a-z_]+\b", target["expr"]):
                used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used, "the dashboard queries no kop metric"
    assert not sorted(used - documented), "documented in docs/metrics.md: every dashboard metric"
