"""The `kop` command. Flags are generated from kop.Config's fields so they cannot drift."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from kop import __version__
from kop.config import Config, ConfigError, default_text, env_var, fields, flag, kind
from kop.lifecycle import StopSignals
from kop.server import Server

__all__ = ["build_parser", "main"]

log = logging.getLogger("kop")

CONFIG_ENV = "KOP_CONFIG"
EXIT_USAGE = 2  # bad option, bad config file, value the server rejects
EXIT_FAILURE = 1  # could not start (bind failure, missing native module, Pulsar not ready)

_METAVARS = {
    "list": "NAME://HOST:PORT",
    "int": "N",
    "storage": "URL",
    "cluster_id": "ID",
    "log_level": "{error,warn,info,debug,trace}",
    "fsync": "{always,interval,never}",
}
_PY_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


class UsageError(Exception):
    """A command-line mistake; main() prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the message; users and scripts get one
    # line instead. Subparsers inherit this class.
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kop", description="A Kafka wire-protocol server.")
    parser.add_argument("--version", action="version", version=f"kop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run a Kafka endpoint until Ctrl-C or SIGTERM",
        description="Run a Kafka endpoint until Ctrl-C or SIGTERM.",
        epilog="Precedence: defaults < --config file < KOP_* environment < flags. "
        "Lists are comma-separated in the environment; booleans are true/false/1/0/yes/no.",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file whose keys are the option names below (env: {CONFIG_ENV})",
    )
    for f in fields():
        _add_option(serve, f.name, f.metadata["help"])
    return parser


def _add_option(parser: argparse.ArgumentParser, name: str, meaning: str) -> None:
    how = kind(name)
    text = f"{meaning} (default: {default_text(name)}; env: {env_var(name)})".replace("%", "%%")
    if how == "bool":
        group = parser.add_mutually_exclusive_group()
        group.add_argument(flag(name), dest=name, action="store_const", const=True, help=text)
        no_flag = "--no-" + flag(name)[2:]
        group.add_argument(
            no_flag, dest=name, action="store_const", const=False, help=f"turn {flag(name)} off"
        )
        return
    metavar = _METAVARS.get(name) or _METAVARS.get(how, "VALUE")
    # Values stay strings here: Config parses them, so a bad value gets the same message
    # whether it came from a flag, the environment or the TOML file.
    nargs = "+" if how == "list" else None
    parser.add_argument(flag(name), dest=name, metavar=metavar, nargs=nargs, help=text)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("missing command (try: kop serve --help)")
    except UsageError as err:
        return _fail(str(err), EXIT_USAGE)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    # SIGINT/SIGTERM from here on stop in order, whatever start-up is doing (waiting for Pulsar,
    # opening storage): the handlers only set `signals.requested`, which serve() honours.
    with StopSignals() as signals:
        config_file = args.config or os.environ.get(CONFIG_ENV) or None
        overrides = {f.name: getattr(args, f.name) for f in fields()}
        try:
            config = Config.load(config_file, overrides=overrides)
        except ConfigError as err:
            return _fail(_describe(err), EXIT_USAGE)
        logging.getLogger().setLevel(_PY_LEVELS[config.log_level])
        log.info("kop %s starting, storage %s", __version__, config.storage)

        server = Server(config)
        try:
            server.serve(stop_requested=signals.requested)
        except ImportError as err:
            return _fail(f"the native extension kop._native is not available: {err}", EXIT_FAILURE)
        except OSError as err:
            return _fail(f"cannot start: {_one_line(err)}", EXIT_FAILURE)
        except ValueError as err:  # the native side rejected a value; its message names the key
            return _fail(_one_line(err), EXIT_USAGE)
    return 0


def _describe(err: ConfigError) -> str:
    if err.source == "override" and err.field is not None:
        return f"{flag(err.field)}: {err.reason}"
    return str(err)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _fail(message: str, code: int) -> int:
    print(f"kop: error: {message}", file=sys.stderr)
    return code
