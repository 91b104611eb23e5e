"""The `kop` command. Flags are generated from kop.Config's fields so they cannot drift."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import kop
from kop.config import (
    FSYNC_POLICIES,
    LOG_FORMATS,
    LOG_LEVELS,
    SASL_MECHANISMS,
    SSL_CLIENT_AUTH,
    Config,
    ConfigError,
    default_text,
    env_var,
    fields,
    flag,
    kind,
)
from kop.lifecycle import StopSignals
from kop.logs import configure_cli_logging
from kop.server import Server

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["build_parser", "main", "metavar"]

log = logging.getLogger("kop")

CONFIG_ENV = "KOP_CONFIG"
EXIT_USAGE = 2  # bad option, bad config file, value the server rejects
EXIT_FAILURE = 1  # could not start (bind failure, missing native module, Pulsar not ready)

# What each option's values look like in `kop serve --help` (the default is in the help text).
# Options not named here get one from their name's unit, else from their kind; a unit test
# checks that none falls back to a bare VALUE.
_METAVARS = {
    "listeners": "NAME://HOST:PORT",
    "advertised_listeners": "NAME://HOST:PORT",
    "listener_security_protocol_map": "NAME:PROTOCOL",
    "sasl_enabled_mechanisms": "{" + ",".join(SASL_MECHANISMS) + "}",
    "sasl_users": "USER:PASSWORD",
    "super_users": "TYPE:NAME",
    "ssl_certfile": "PEM_FILE",
    "ssl_keyfile": "PEM_FILE",
    "ssl_cafile": "PEM_FILE",
    "ssl_client_auth": "{" + ",".join(SSL_CLIENT_AUTH) + "}",
    "ssl_principal_mapping_rules": "RULE,...",
    "inter_instance_listener": "NAME",
    "inter_instance_sasl_mechanism": "{PLAIN,SCRAM-SHA-256,SCRAM-SHA-512}",
    "inter_instance_sasl_user": "USER",
    "inter_instance_sasl_password": "PASSWORD",
    "authorizer": "{allow-all,deny-all,acl,pulsar,MODULE:CALLABLE}",
    "authenticator": "MODULE:CALLABLE",
    "scram_credentials": "MODULE:CALLABLE",
    "oauthbearer_validator": "MODULE:CALLABLE",
    "oauthbearer_public_key_files": "PEM_FILE",
    "oauthbearer_issuer": "ISSUER",
    "oauthbearer_audience": "AUDIENCE",
    "storage": "{file://PATH,memory://,pulsar://HOST:PORT}",
    "pulsar_admin_url": "http(s)://HOST:PORT",
    "pulsar_tenant": "TENANT",
    "pulsar_namespace": "NAMESPACE",
    "pulsar_token": "JWT",
    "pulsar_entry_format": "{kafka,pulsar}",
    "tenants": "TENANT/NS",
    "tenant_roles": "ROLE=TENANT/NS",
    "node_id": "ID",
    "cluster_id": "ID",
    "log_level": "{" + ",".join(LOG_LEVELS) + "}",
    "log_format": "{" + ",".join(LOG_FORMATS) + "}",
    "fsync": "{" + ",".join(FSYNC_POLICIES) + "}",
    "io_threads": "N",
    "metrics_listener": "HOST:PORT",
    "schema_registry_listener": "HOST:PORT",
    "num_partitions": "N",
    "max_unauthenticated_connections": "N",
    "max_connections": "N",
    "max_connections_per_ip": "N",
    "max_connections_per_ip_overrides": "IP:N[,IP:N...]",
    "share_auto_offset_reset": "{latest,earliest}",
}
_UNIT_METAVARS = {"_ms": "MS", "_bytes": "BYTES", "_minutes": "MINUTES"}
_KIND_METAVARS = {"int": "N"}


def metavar(name: str) -> str:
    """How `kop serve --help` shows the values of option ``name``."""
    if name in _METAVARS:
        return _METAVARS[name]
    for suffix, unit in _UNIT_METAVARS.items():
        if name.endswith(suffix):
            return unit
    return _KIND_METAVARS.get(kind(name), "VALUE")


class UsageError(Exception):
    """A command-line mistake; main() prints it as one line and exits 2."""


def _terminal_columns() -> int:
    """shutil.get_terminal_size()'s columns, without importing shutil."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _HelpFormatter(argparse.HelpFormatter):
    # argparse makes a formatter for every add_argument (to check its metavar), and the
    # default one sizes itself with shutil, whose import (zlib, bz2, lzma) costs every start
    # ~5 ms: the same width, found without it.
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the message; users and scripts get one
    # line instead. Subparsers inherit this class.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kop", description="A Kafka wire-protocol server.")
    parser.add_argument("--version", action="version", version=f"kop {kop.__version__}")
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
    # Values stay strings here: Config parses them, so a bad value gets the same message
    # whether it came from a flag, the environment or the TOML file.
    nargs = "+" if how == "list" else None
    parser.add_argument(flag(name), dest=name, metavar=metavar(name), nargs=nargs, help=text)


def main(argv: Sequence[str] | None = None) -> int:
    configure_cli_logging()  # text at info until the config says otherwise
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
        configure_cli_logging(config.log_format, config.log_level)
        log.info("kop %s starting, storage %s", kop.__version__, config.storage)

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
