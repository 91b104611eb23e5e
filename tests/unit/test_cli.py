"""The `kop` CLI: argument errors as subprocesses (what users see), the rest in-process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kop import Config
from kop.cli import main, metavar
from kop.config import env_var, fields, flag, kind

from .fake_native import FakeNativeServer

Fake = type[FakeNativeServer]
HERE = Path(__file__).resolve().parent


def run_kop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kop", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_bad_option_is_one_line_and_exit_2(subprocess_env: dict[str, str]) -> None:
    proc = run_kop(subprocess_env, "serve", "--num-partitions", "0")
    assert proc.returncode == 2
    assert proc.stderr == "kop: error: --num-partitions: must be >= 1, got 0\n"
    assert proc.stdout == ""


def test_bad_env_var_names_the_variable(subprocess_env: dict[str, str]) -> None:
    proc = run_kop({**subprocess_env, "KOP_FSYNC": "sometimes"}, "serve")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "kop: error: KOP_FSYNC: must be one of always, interval, never, got 'sometimes'"
    ]


def test_version(subprocess_env: dict[str, str]) -> None:
    proc = run_kop(subprocess_env, "--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("kop ") and len(proc.stdout.split()) == 2


def test_help_lists_every_option_with_env_var(subprocess_env: dict[str, str]) -> None:
    proc = run_kop({**subprocess_env, "COLUMNS": "200"}, "serve", "--help")
    assert proc.returncode == 0
    for field in Config.__dataclass_fields__:
        assert flag(field) in proc.stdout
        assert env_var(field) in proc.stdout
    assert "--no-auto-create-topics" in proc.stdout
    assert "(default: PLAINTEXT://127.0.0.1:9092; env: KOP_LISTENERS)" in proc.stdout


def test_help_shows_each_options_value_shape(subprocess_env: dict[str, str]) -> None:
    proc = run_kop({**subprocess_env, "COLUMNS": "200"}, "serve", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # argparse wraps; compare with single spaces
    for shown in [
        "--listeners NAME://HOST:PORT [NAME://HOST:PORT ...]",
        "--super-users TYPE:NAME [TYPE:NAME ...]",
        "--sasl-users USER:PASSWORD [USER:PASSWORD ...]",
        "--listener-security-protocol-map NAME:PROTOCOL [NAME:PROTOCOL ...]",
        "--oauthbearer-public-key-files PEM_FILE [PEM_FILE ...]",
        "--log-format {text,json}",
        "--log-level {error,warn,info,debug,trace}",
        "--fsync {always,interval,never}",
        "--authenticator MODULE:CALLABLE",
        "--hook-timeout-ms MS",
        "--message-max-bytes BYTES",
        "--offsets-retention-minutes MINUTES",
        "--node-id ID",
        "(default: (empty); env: KOP_SUPER_USERS)",
        "(default: 5000; env: KOP_HOOK_TIMEOUT_MS)",
    ]:
        assert shown in text, shown
    # The listener placeholder belongs to the two listener options only (usage + option list).
    assert text.count("NAME://HOST:PORT [NAME://HOST:PORT ...]") == 4


def test_every_option_has_a_specific_metavar() -> None:
    for f in fields():
        if kind(f.name) == "bool":
            continue  # a flag without a value
        shape = metavar(f.name)
        assert shape != "VALUE", f"{f.name}: add its value shape to kop.cli._METAVARS"
        assert shape != "NAME://HOST:PORT" or f.name.endswith("listeners"), f.name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--bogus"], "kop: error: unrecognized arguments: --bogus"),
        ([], "kop: error: missing command (try: kop serve --help)"),
        (["serve", "--node-id"], "kop: error: argument --node-id: expected one argument"),
        (["serve", "--node-id", "x"], "kop: error: --node-id: must be an integer, got 'x'"),
        (["serve", "--listeners", "oops"], "kop: error: --listeners: expected NAME://HOST:PORT"),
        (
            ["serve", "--auto-create-topics", "--no-auto-create-topics"],
            "kop: error: argument --no-auto-create-topics: not allowed with argument",
        ),
        (["serve", "--config", "/nonexistent/kop.toml"], "kop: error: --config: cannot read"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_toml_error_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "kop.toml"
    path.write_text("fsync-every = 3\n")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kop: error: {path}: fsync-every: unknown option")
    assert err.count("\n") == 1


def _auto_stop(native: FakeNativeServer) -> None:
    if native.wait_calls >= 2:
        native.stop(0)


def test_serve_merges_sources_and_logs_listeners(
    fake_native: Fake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_native.on_wait = staticmethod(_auto_stop)  # the server "stops" on its own
    path = tmp_path / "kop.toml"
    path.write_text('storage = "memory://"\nnum_partitions = 2\nnode_id = 5\n')
    monkeypatch.setenv("KOP_CONFIG", str(path))
    monkeypatch.setenv("KOP_NODE_ID", "6")
    argv = ["serve", "--listeners", "PLAINTEXT://127.0.0.1:0", "--no-auto-create-topics"]
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    (native,) = fake_native.instances
    assert native.config["storage"] == "memory://"
    assert native.config["num_partitions"] == 2
    assert native.config["node_id"] == 6
    assert native.config["auto_create_topics"] is False
    assert "kop listening on PLAINTEXT://127.0.0.1:40000" in caplog.text


def test_list_flag_takes_several_values(fake_native: Fake) -> None:
    fake_native.on_wait = staticmethod(_auto_stop)
    argv = ["serve", "--storage", "memory://", "--listeners", "A://127.0.0.1:0", "B://h:1,C://h:2"]
    assert main(argv) == 0
    assert fake_native.instances[0].config["listeners"] == ["A://127.0.0.1:0", "B://h:1", "C://h:2"]


def test_bind_failure_is_one_line_exit_1(
    fake_native: Fake, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_native.start_error = OSError(98, "Address already in use (127.0.0.1:9092)")
    assert main(["serve", "--storage", "memory://"]) == 1
    err = capsys.readouterr().err
    assert err == "kop: error: cannot start: [Errno 98] Address already in use (127.0.0.1:9092)\n"


def test_native_rejection_is_exit_2(fake_native: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake_native.start_error = ValueError("storage: cannot create directory\n/x")
    assert main(["serve", "--storage", "memory://"]) == 2
    assert capsys.readouterr().err == "kop: error: storage: cannot create directory /x\n"


def test_missing_native_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "kop._native", None)  # makes the import fail
    assert main(["serve", "--storage", "memory://"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kop: error: the native extension kop._native is not available")


# A `kop serve` process whose kop._native is the fake, to test real signal delivery.
_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import fake_native
sys.modules["kop._native"] = fake_native.make_module()
from kop.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_kop_serve(subprocess_env: dict[str, str], signum: int) -> None:
    args = ["serve", "--storage", "memory://", "--listeners", "PLAINTEXT://127.0.0.1:0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(HERE), *args],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "kop listening on" in line or not line:
            break
    assert "INFO kop.server: kop listening on PLAINTEXT://127.0.0.1:40000" in lines[-1], lines
    time.sleep(0.1)  # let serve() install its handlers
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert "kop stopped" in rest


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_sigterm_while_storage_opens_is_a_clean_stop(
    fake_native: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    fake_native.on_start = staticmethod(lambda native: os.kill(os.getpid(), signal.SIGTERM))
    with caplog.at_level(logging.INFO):
        assert main(["serve", "--storage", "memory://"]) == 0
    assert fake_native.instances[0].stop_calls == [30.0]
    assert "received SIGTERM, stopping" in caplog.text
    assert "kop stopped" in caplog.text


def test_negative_numbers_are_values_not_flags(fake_native: Fake) -> None:
    fake_native.on_wait = staticmethod(_auto_stop)
    argv = ["serve", "--storage", "memory://", "--log-retention-ms", "-1", "--log-level", "ERROR"]
    assert main(argv) == 0
    config = fake_native.instances[0].config
    assert (config["log_retention_ms"], config["log_level"]) == (-1, "error")
    assert fake_native.log_levels == ["error"]
