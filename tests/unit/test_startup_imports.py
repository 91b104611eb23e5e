"""`kop serve` loads only what it serves with: what a user sees as start-up time (issue 19).

Import graphs, not timings: a module that sneaks back into the CLI's imports fails here on any
machine, however fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each costs `kop serve` milliseconds it does not need without the feature that uses it.
NOT_FOR_SERVE = {
    "asyncio": "only Server.serve_async and the hooks use it (~15-40 ms)",
    "kop.hooks": "only a server with Python hooks needs it",
    "kop.pulsar": "only pulsar:// storage needs it",
    "pulsar": "the optional pulsar-client, only for pulsar:// storage",
    "tomllib": "only a --config file needs the TOML parser",
    "tomli": "only a --config file needs the TOML parser",
    "difflib": "only a misspelt option needs suggestions",
    "importlib.metadata": "the version comes from the native module (~60 ms)",
    "ssl": "kop's TLS is in Rust",
    "typing": "annotations only: TYPE_CHECKING = False in kop's modules (~2-4 ms)",
    "ipaddress": "only max_connections_per_ip_overrides needs it",
    "shutil": "argparse's help width is found without it (its zlib, bz2, lzma: ~5 ms)",
}


def _modules_after(code: str, env: dict[str, str]) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import kop.cli",
        "import kop.cli; kop.cli.build_parser()",
        # what `kop serve` does before the native server starts
        "import kop.cli, kop.config, kop.server; "
        "kop.server.Server(kop.config.Config(storage='memory://'))",
    ],
)
def test_the_serve_path_does_not_import_what_it_does_not_use(
    code: str, subprocess_env: dict[str, str]
) -> None:
    loaded = _modules_after(code, subprocess_env)
    unexpected = {
        name: why
        for name, why in NOT_FOR_SERVE.items()
        if name in loaded or any(m.startswith(name + ".") for m in loaded)
    }
    assert not unexpected, f"{code!r} imported: {unexpected}"


def test_the_public_names_still_resolve(subprocess_env: dict[str, str]) -> None:
    code = (
        "import kop\n"
        "from kop import Config, Server, Principal, ScramCredential\n"
        "assert kop.Config is Config and kop.Server is Server\n"
        "assert set(kop.__all__) <= set(dir(kop))\n"
        "assert all(getattr(kop, n) is not None for n in kop.__all__)\n"
        "assert isinstance(kop.__version__, str)\n"
        "try:\n"
        "    kop.NoSuchName\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('kop.NoSuchName resolved')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=subprocess_env, check=True)


def test_hooks_are_imported_when_a_server_has_one(subprocess_env: dict[str, str]) -> None:
    code = (
        "import kop.config, kop.server\n"
        "kop.server.Server(kop.config.Config(storage='memory://'), authorizer=lambda ctx: True)"
    )
    assert "kop.hooks" in _modules_after(code, subprocess_env)
