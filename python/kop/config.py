"""kop configuration: one typed dataclass, loaded from defaults < TOML < environment < flags.

The field names are the JSON keys of the native contract (docs/native-api.md). Everything the
CLI, the environment loader and docs/configuration.md know about an option comes from the
field list below, so a new option is added in one place.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "config_reference_markdown", "env_var", "flag"]

ENV_PREFIX = "KOP_"
LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
LOG_FORMATS = ("text", "json")
FSYNC_POLICIES = ("always", "interval", "never")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
DEFAULT_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SSL_CLIENT_AUTH = ("none", "requested", "required")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_HOOK_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_LISTENER_RE = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})"
)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad option value. ``str()`` is one line that names the option the way it was set
    (``num_partitions``, ``KOP_NUM_PARTITIONS``, ``kop.toml: num-partitions``, ...)."""

    def __init__(
        self, field: str | None, reason: str, *, label: str | None = None, source: str = "value"
    ) -> None:
        self.field = field  # the Config field, or None for an unknown key
        self.reason = reason
        self.label = label or field or "config"
        self.source = source  # "value", "toml", "env" or "override"
        super().__init__(f"{self.label}: {reason}")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class Config:
    """Server configuration; see docs/configuration.md. Invalid values raise ConfigError."""

    listeners: Sequence[str] = _opt(
        ("PLAINTEXT://127.0.0.1:9092",), "NAME://HOST:PORT to bind; port 0 picks a free port"
    )
    advertised_listeners: Sequence[str] = _opt(
        (), "NAME://HOST:PORT told to clients in Metadata; empty = listeners (0.0.0.0 as 127.0.0.1)"
    )
    # -- security --
    listener_security_protocol_map: Sequence[str] = _opt(
        (),
        "NAME:PROTOCOL for listeners not named after their protocol "
        "(PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); other names are PLAINTEXT",
    )
    sasl_enabled_mechanisms: Sequence[str] = _opt(
        DEFAULT_SASL_MECHANISMS,
        "SASL mechanisms offered on SASL listeners (OAUTHBEARER needs public key files)",
    )
    sasl_users: Sequence[str] = _opt(
        (),
        "USER:PASSWORD accepted by PLAIN and SCRAM (the password may not contain ',' in env/flags)",
    )
    sasl_session_lifetime_ms: int = _opt(
        0, "KIP-368 session lifetime (connections.max.reauth.ms); 0 = sessions never expire"
    )
    failed_authentication_delay_ms: int = _opt(
        100, "delay before answering a failed authentication (then the connection is closed)"
    )
    ssl_certfile: str | None = _opt(None, "PEM certificate chain for SSL/SASL_SSL listeners")
    ssl_keyfile: str | None = _opt(None, "PEM private key for SSL/SASL_SSL listeners")
    ssl_cafile: str | None = _opt(
        None, "PEM CA certificates that client (and peer kop instances') certificates chain to"
    )
    ssl_client_auth: str = _opt("none", "client certificates: none, requested or required")
    ssl_principal_mapping_rules: str = _opt(
        "DEFAULT", "Kafka ssl.principal.mapping.rules: RULE:pattern/replacement/[LU],...,DEFAULT"
    )
    super_users: Sequence[str] = _opt(
        (), "principals (User:NAME) that every operation is allowed to"
    )
    inter_instance_listener: str | None = _opt(
        None,
        "listener kop instances on one Pulsar namespace call each other on (transaction "
        "markers); default: the first listener",
    )
    inter_instance_sasl_mechanism: str = _opt(
        "PLAIN", "SASL mechanism of those calls on a SASL listener: PLAIN or SCRAM-SHA-256/512"
    )
    inter_instance_sasl_user: str | None = _opt(
        None, "user kop instances authenticate to each other as (give it CLUSTER_ACTION)"
    )
    inter_instance_sasl_password: str | None = _opt(None, "that user's password")
    authorizer: str = _opt(
        "allow-all",
        "allow-all, deny-all, acl (Kafka ACLs), pulsar (the role's Pulsar permissions), or "
        "module:callable (a Python hook)",
    )
    authenticator: str | None = _opt(
        None, "module:callable: a Python hook that checks SASL/PLAIN user names and passwords"
    )
    scram_credentials: str | None = _opt(
        None, "module:callable: a Python hook that gives SCRAM credentials of unknown users"
    )
    oauthbearer_validator: str | None = _opt(
        None, "module:callable: a Python hook that validates OAUTHBEARER tokens (not the keys)"
    )
    hook_timeout_ms: int = _opt(5000, "a Python hook slower than this denies (fail closed)")
    hook_cache_ttl_ms: int = _opt(
        60000, "how long an authorizer decision or SCRAM credential of a hook is cached"
    )
    oauthbearer_public_key_files: Sequence[str] = _opt(
        (), "PEM files of PUBLIC KEYs (RSA, EC P-256, Ed25519) that sign accepted JWTs"
    )
    oauthbearer_issuer: str | None = _opt(None, "required JWT iss claim, if set")
    oauthbearer_audience: str | None = _opt(None, "required JWT aud claim, if set")
    plain_token_auth: bool = _opt(
        False, "KoP compatible: a PLAIN password token:<jwt> logs in as the JWT's sub"
    )
    storage: str = _opt(
        "file://kop-data",
        "file://PATH (relative or absolute), memory://, or pulsar://HOST:PORT (needs kop[pulsar])",
    )
    pulsar_admin_url: str | None = _opt(
        None, "Pulsar admin REST URL; unset = http://HOST:8080 of the pulsar:// storage URL"
    )
    pulsar_tenant: str = _opt("public", "Pulsar tenant that holds kop's topics")
    pulsar_namespace: str = _opt("default", "Pulsar namespace (in the tenant) of kop's topics")
    pulsar_token: str | None = _opt(None, "JWT kop authenticates to Pulsar with (client + admin)")
    pulsar_standby: bool = _opt(
        False,
        "start as a hot standby: wait until the process serving this node id is gone",
    )
    pulsar_startup_timeout_ms: int = _opt(
        120000,
        "pulsar:// storage: how long start-up waits for Pulsar to answer (retrying, one log "
        "line per attempt) before it gives up; 0 = one attempt",
    )
    pulsar_entry_format: str = _opt(
        "kafka",
        "pulsar:// storage: how Kafka batches are stored: kafka (one Pulsar message per batch) or "
        "pulsar (one message per record, which Pulsar consumers and Functions read; "
        "docs/pulsar-native-records.md)",
    )
    tenants: Sequence[str] = _opt(
        (),
        "pulsar:// storage: the Pulsar namespaces (TENANT/NS) served as separate tenants, chosen "
        "by the login (PLAIN user TENANT or TENANT/NS, else tenant_roles); empty = one namespace "
        "(docs/tenants.md)",
    )
    tenant_roles: Sequence[str] = _opt(
        (),
        "ROLE=TENANT/NS: the tenant of a principal whose login names none (SCRAM, OAUTHBEARER, "
        "mTLS)",
    )
    tail_cache_bytes: int = _opt(
        8388608, "pulsar:// storage: bytes of newest batches kept in memory per partition"
    )
    node_id: int = _opt(
        1, "broker id in Metadata; kop instances sharing a Pulsar namespace need distinct ones"
    )
    cluster_id: str | None = _opt(None, "cluster id; unset = generated once, kept with the data")
    log_level: str = _opt("info", "one of error, warn, info, debug, trace")
    log_format: str = _opt(
        "text",
        "kop serve's stderr lines (Python's and Rust's alike): text, or json (one object per "
        "line: time, level, logger, message, fields)",
    )
    auto_create_topics: bool = _opt(True, "Metadata and Produce create unknown topics")
    num_partitions: int = _opt(4, "partitions of an auto-created topic / CreateTopics default")
    message_max_bytes: int = _opt(1048588, "largest record batch accepted (max.message.bytes)")
    max_request_bytes: int = _opt(104857600, "largest request frame, checked before allocating")
    connections_max_idle_ms: int = _opt(600000, "idle connections are closed after this")
    request_memory_bytes: int = _opt(
        268435456,
        "request bytes all authenticated connections hold at once (at least max_request_bytes); "
        "reserved as bytes arrive, a client that finds none is muted",
    )
    frame_stall_timeout_ms: int = _opt(
        30000, "a connection that sends part of a request, then nothing for this long, is closed"
    )
    unauthenticated_request_memory_bytes: int = _opt(
        16777216,
        "request bytes all not yet authenticated SASL connections hold at once "
        "(beyond 8 KiB per frame); a client that finds none is closed",
    )
    max_unauthenticated_connections: int = _opt(
        1000, "connections on SASL listeners not yet authenticated; more are closed at once"
    )
    max_connections: int = _opt(
        _INT32_MAX,
        "open connections at most (Kafka's max.connections); at the limit kop accepts no more "
        "until one closes; a listener named by inter_instance_listener is not counted",
    )
    max_connections_per_ip: int = _opt(
        _INT32_MAX,
        "open connections from one IP address at most (Kafka's max.connections.per.ip); "
        "more are closed at once",
    )
    max_connections_per_ip_overrides: str = _opt(
        "",
        "IP:N,... exceptions to max_connections_per_ip "
        "(Kafka's max.connections.per.ip.overrides, IP addresses only)",
    )
    bad_input_log_interval_ms: int = _opt(
        10000,
        "log lines about bad input from one address: the first, then one per interval "
        "with a count of those left out; 0 = every line",
    )
    quota_window_num: int = _opt(
        11, "samples client quota rates are measured over (Kafka's quota.window.num)"
    )
    quota_window_size_seconds: int = _opt(
        1, "length of one quota sample in seconds (Kafka's quota.window.size.seconds)"
    )
    controller_quota_window_num: int = _opt(
        11,
        "samples controller_mutation_rate quotas are measured over "
        "(Kafka's controller.quota.window.num)",
    )
    controller_quota_window_size_seconds: int = _opt(
        1,
        "length of one controller_mutation_rate sample in seconds "
        "(Kafka's controller.quota.window.size.seconds)",
    )
    log_retention_ms: int = _opt(604800000, "topic retention.ms default; -1 keeps forever")
    log_retention_bytes: int = _opt(-1, "topic retention.bytes default; -1 = no size limit")
    log_segment_bytes: int = _opt(1073741824, "topic segment.bytes default")
    log_retention_check_interval_ms: int = _opt(300000, "how often retention runs")
    log_cleaner_enable: bool = _opt(
        True, "compact topics with cleanup.policy compact (local storage; docs/compaction.md)"
    )
    log_cleaner_io_max_bytes_per_second: int = _opt(
        33554432,
        "bytes per second all log cleaning reads and writes together, at most "
        "(log.cleaner.io.max.bytes.per.second); 0 = unlimited",
    )
    log_cleaner_backoff_ms: int = _opt(
        15000, "how often the log cleaner looks for a log to clean (log.cleaner.backoff.ms)"
    )
    log_cleaner_dedupe_buffer_size: int = _opt(
        134217728, "bytes of keys one clean may map (log.cleaner.dedupe.buffer.size)"
    )
    max_incremental_fetch_session_cache_slots: int = _opt(
        1000,
        "incremental fetch sessions kept at most (max.incremental.fetch.session.cache.slots); "
        "0 = no sessions, every fetch is a full one",
    )
    fsync: str = _opt("interval", "always (before acking), interval, or never (leave it to the OS)")
    fsync_interval_ms: int = _opt(1000, "fsync period when fsync = interval")
    io_threads: int = _opt(0, "tokio worker threads; 0 = number of CPUs")
    group_initial_rebalance_delay_ms: int = _opt(
        3000,
        "first-rebalance delay of an empty group (Kafka group.initial.rebalance.delay.ms)",
    )
    group_min_session_timeout_ms: int = _opt(
        6000, "smallest session timeout a group member may ask for"
    )
    group_max_session_timeout_ms: int = _opt(
        1800000, "largest session timeout a group member may ask for"
    )
    group_max_size: int = _opt(
        2147483647,
        "classic group members at most; more get GROUP_MAX_SIZE_REACHED (Kafka group.max.size)",
    )
    group_consumer_max_size: int = _opt(
        2147483647,
        "members of a KIP-848 consumer group at most (Kafka group.consumer.max.size)",
    )
    group_streams_num_standby_replicas: int = _opt(
        0,
        "standby replicas of each task of a streams group, 0-2; a group's "
        "streams.num.standby.replicas overrides it (Kafka group.streams.num.standby.replicas)",
    )
    group_streams_initial_rebalance_delay_ms: int = _opt(
        3000,
        "how long the first assignment of a streams group that was empty waits for more "
        "members; a group's streams.initial.rebalance.delay.ms overrides it "
        "(Kafka group.streams.initial.rebalance.delay.ms)",
    )
    offsets_retention_minutes: int = _opt(
        10080,
        "how long committed offsets of an empty group are kept (Kafka offsets.retention.minutes)",
    )
    transaction_max_timeout_ms: int = _opt(
        900000,
        "largest transaction.timeout.ms a producer may ask for (Kafka transaction.max.timeout.ms)",
    )
    transactional_id_expiration_ms: int = _opt(
        604800000,
        "how long an idle transactional id is remembered (Kafka transactional.id.expiration.ms)",
    )
    # -- share groups (KIP-932) --
    group_share_record_lock_duration_ms: int = _opt(
        30000,
        "how long a share consumer holds a delivered record "
        "(Kafka group.share.record.lock.duration.ms)",
    )
    group_share_delivery_count_limit: int = _opt(
        5, "deliveries of a record before it is archived (Kafka group.share.delivery.count.limit)"
    )
    group_share_partition_max_record_locks: int = _opt(
        2000,
        "records in flight per share partition (Kafka group.share.partition.max.record.locks)",
    )
    group_share_max_share_sessions: int = _opt(
        2000, "share sessions open at once (Kafka group.share.max.share.sessions)"
    )
    share_auto_offset_reset: str = _opt(
        "latest",
        "where a share partition with no state starts: latest or earliest "
        "(default of the share.auto.offset.reset group config)",
    )

    metrics_listener: str | None = _opt(
        None,
        "HOST:PORT of the HTTP listener serving Prometheus /metrics, /health and /ready "
        "(docs/metrics.md); unset = off",
    )
    schema_registry_listener: str | None = _opt(
        None,
        "HOST:PORT of the HTTP listener serving the Confluent-compatible schema registry "
        "(docs/schema-registry.md); unset = off",
    )

    def __post_init__(self) -> None:
        # Frozen, so normalising goes through object.__setattr__; lists become tuples so a
        # Config stays hashable and nobody mutates it behind the server's back.
        for name in (
            "listeners",
            "advertised_listeners",
            "listener_security_protocol_map",
            "sasl_enabled_mechanisms",
            "sasl_users",
            "super_users",
            "oauthbearer_public_key_files",
            "tenants",
            "tenant_roles",
        ):
            object.__setattr__(self, name, _string_tuple(name, getattr(self, name)))
        for name in ("log_level", "log_format", "fsync", "ssl_client_auth"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, value.strip().lower())
        _validate(self)

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Config:
        """Defaults overridden by a TOML file (keys = field names, dashes allowed)."""
        return cls.load(config_file=path, environ={})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Defaults overridden by ``KOP_<FIELD>`` environment variables."""
        return cls.load(environ=environ)

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Merge defaults < TOML file < environment (``os.environ`` if None) < overrides.

        Override values may be typed values or strings (parsed like environment variables);
        ``None`` means "not given" and is skipped, so argparse results can be passed as-is.
        """
        layers: list[Iterable[_Setting]] = []
        if config_file is not None:
            from pathlib import Path  # with a config file only, like the TOML parser

            layers.append(_read_toml(Path(config_file)))
        layers.append(_read_env(os.environ if environ is None else environ))
        if overrides:
            layers.append(_read_overrides(overrides))
        values: dict[str, Any] = {}
        origin: dict[str, _Setting] = {}
        for layer in layers:
            for setting in layer:
                values[setting.field] = setting.value
                origin[setting.field] = setting
        try:
            return cls(**values)
        except ConfigError as err:
            where = origin.get(err.field or "")
            if where is None:
                raise
            raise ConfigError(
                err.field, err.reason, label=where.label, source=where.source
            ) from None

    # -- output --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The native contract's JSON object as Python values (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """The JSON string ``kop._native.NativeServer`` takes."""
        return json.dumps(self.to_dict())


# ---- option metadata shared by the CLI and the docs ----------------------------------------


def fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(Config)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def kind(name: str) -> str:
    """'list', 'bool', 'int', 'str' or 'optional_str' — how text for this option is parsed."""
    default = _FIELDS[name].default
    if default is None:
        return "optional_str"
    if isinstance(default, tuple):
        return "list"
    if isinstance(default, bool):  # before int: bool is an int subclass
        return "bool"
    if isinstance(default, int):
        return "int"
    return "str"


def default_text(name: str) -> str:
    """The default as a user would type it (in flags, env vars, docs)."""
    default = _FIELDS[name].default
    if isinstance(default, tuple):
        return ",".join(default) or "(empty)"
    if isinstance(default, bool):
        return str(default).lower()
    return "(unset)" if default is None else str(default)


def config_reference_markdown() -> str:
    """The option table of docs/configuration.md (a unit test keeps the two identical)."""
    rows = [
        "| option | CLI flag | env var | TOML key | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in fields():
        rows.append(
            f"| `{f.name}` | `{flag(f.name)}` | `{env_var(f.name)}` | `{f.name}` "
            f"| `{default_text(f.name)}` | {f.metadata['help']} |"
        )
    return "\n".join(rows) + "\n"


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


# ---- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    field: str
    value: Any
    label: str  # how the user spelled it, for error messages
    source: str


def _read_toml(path: Path) -> Iterator[_Setting]:
    # Imported here: `kop serve` without a config file does not pay for the TOML parser.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the conditional `tomli` dependency in pyproject.toml
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise ConfigError(
            None, f"cannot read {str(path)!r}: {err.strerror or err}", label="--config"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(None, f"invalid TOML: {err}", label=str(path), source="toml") from None
    for key, value in data.items():
        name = key.replace("-", "_")
        label = f"{path}: {key}"
        if name not in _FIELDS:
            raise ConfigError(None, "unknown option" + _suggest(name), label=label, source="toml")
        yield _Setting(name, _coerce(name, value, label, "toml"), label, "toml")


def _read_env(environ: Mapping[str, str]) -> Iterator[_Setting]:
    for name in _FIELDS:
        var = env_var(name)
        if var in environ:
            yield _Setting(name, _coerce(name, environ[var], var, "env"), var, "env")
    # Other tools may use KOP_* names too, so only near-misses of real options are reported.
    known = {env_var(name) for name in _FIELDS}
    for var in environ:
        if var.startswith(ENV_PREFIX) and var not in known:
            import difflib  # only for an unknown KOP_* name

            close = difflib.get_close_matches(var, known, n=1, cutoff=0.85)
            if close:
                log.warning("ignoring environment variable %s (did you mean %s?)", var, close[0])


def _read_overrides(overrides: Mapping[str, Any]) -> Iterator[_Setting]:
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise ConfigError(None, "unknown option" + _suggest(name), label=name)
        if value is not None:
            yield _Setting(name, _coerce(name, value, name, "override"), name, "override")


def _coerce(name: str, value: Any, label: str, source: str) -> Any:
    """Turn text (env, flags, or a quoted TOML value) into the field's type; pass the rest on
    to Config's own type checks."""
    how = kind(name)
    if how == "list":
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(part.strip() for v in value for part in v.split(",") if part.strip())
        return value
    if not isinstance(value, str):
        return value
    text = value.strip()
    if how == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}", label=label, source=source)
    if how == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise ConfigError(
                name, f"must be an integer, got {value!r}", label=label, source=source
            ) from None
    if how == "optional_str":
        return text or None
    return text


def _suggest(name: str) -> str:
    import difflib  # only for a mistake

    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---- validation ------------------------------------------------------------------------


def _string_tuple(name: str, value: Any) -> Any:
    if isinstance(value, str):  # a single listener written without brackets
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value  # _validate reports the type


def _validate(cfg: Config) -> None:
    for f in fields():
        _check_type(f.name, getattr(cfg, f.name))

    names = _check_listeners("listeners", cfg.listeners, min_port=0)
    if not names:
        raise ConfigError("listeners", "must name at least one listener")
    advertised = _check_listeners("advertised_listeners", cfg.advertised_listeners, min_port=1)
    for http_option in ("metrics_listener", "schema_registry_listener"):
        spec = getattr(cfg, http_option)
        if spec is not None:
            host, sep, port = spec.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ConfigError(http_option, f"{spec!r} is not HOST:PORT")
    for name in advertised:
        if name not in names:
            raise ConfigError(
                "advertised_listeners", f"listener {name} is not in listeners ({', '.join(names)})"
            )

    _check_security(cfg, names)
    _check_storage(cfg.storage)
    _check_range("tail_cache_bytes", cfg.tail_cache_bytes, 0, _INT64_MAX)
    _check_range("pulsar_startup_timeout_ms", cfg.pulsar_startup_timeout_ms, 0, _INT64_MAX)
    for name in ("pulsar_tenant", "pulsar_namespace"):
        if not re.fullmatch(r"[A-Za-z0-9_.=:-]+", getattr(cfg, name)):
            raise ConfigError(name, f"is not a valid Pulsar name: {getattr(cfg, name)!r}")
    if cfg.cluster_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", cfg.cluster_id):
        raise ConfigError("cluster_id", f"must be letters, digits, - or _, got {cfg.cluster_id!r}")
    _check_choice("pulsar_entry_format", cfg.pulsar_entry_format, ("kafka", "pulsar"))
    _check_tenants(cfg)
    _check_choice("log_level", cfg.log_level, LOG_LEVELS)
    _check_choice("log_format", cfg.log_format, LOG_FORMATS)
    _check_choice("fsync", cfg.fsync, FSYNC_POLICIES)

    _check_range("node_id", cfg.node_id, 0, _INT32_MAX)
    _check_range("num_partitions", cfg.num_partitions, 1, _INT32_MAX)
    _check_range("message_max_bytes", cfg.message_max_bytes, 1, _INT32_MAX)
    _check_range("max_request_bytes", cfg.max_request_bytes, 1, _INT32_MAX)
    _check_range("connections_max_idle_ms", cfg.connections_max_idle_ms, 1, _INT64_MAX)
    _check_range("request_memory_bytes", cfg.request_memory_bytes, 1, _INT64_MAX)
    _check_range("frame_stall_timeout_ms", cfg.frame_stall_timeout_ms, 1, _INT64_MAX)
    _check_range(
        "unauthenticated_request_memory_bytes",
        cfg.unauthenticated_request_memory_bytes,
        0,
        _INT64_MAX,
    )
    _check_range(
        "max_unauthenticated_connections", cfg.max_unauthenticated_connections, 1, _INT32_MAX
    )
    _check_range("max_connections", cfg.max_connections, 1, _INT32_MAX)
    _check_range("max_connections_per_ip", cfg.max_connections_per_ip, 0, _INT32_MAX)
    _check_connection_overrides(cfg.max_connections_per_ip_overrides)
    _check_range("bad_input_log_interval_ms", cfg.bad_input_log_interval_ms, 0, _INT64_MAX)
    _check_range("quota_window_num", cfg.quota_window_num, 1, _INT32_MAX)
    _check_range("quota_window_size_seconds", cfg.quota_window_size_seconds, 1, _INT32_MAX)
    _check_range("controller_quota_window_num", cfg.controller_quota_window_num, 1, _INT32_MAX)
    _check_range(
        "controller_quota_window_size_seconds",
        cfg.controller_quota_window_size_seconds,
        1,
        _INT32_MAX,
    )
    _check_range("log_retention_ms", cfg.log_retention_ms, -1, _INT64_MAX)
    _check_range("log_retention_bytes", cfg.log_retention_bytes, -1, _INT64_MAX)
    _check_range("log_segment_bytes", cfg.log_segment_bytes, 1, _INT32_MAX)
    _check_range(
        "log_retention_check_interval_ms", cfg.log_retention_check_interval_ms, 1, _INT64_MAX
    )
    _check_range(
        "log_cleaner_io_max_bytes_per_second",
        cfg.log_cleaner_io_max_bytes_per_second,
        0,
        _INT64_MAX,
    )
    _check_range("log_cleaner_backoff_ms", cfg.log_cleaner_backoff_ms, 1, _INT64_MAX)
    _check_range(
        "log_cleaner_dedupe_buffer_size", cfg.log_cleaner_dedupe_buffer_size, 1, _INT64_MAX
    )
    _check_range(
        "max_incremental_fetch_session_cache_slots",
        cfg.max_incremental_fetch_session_cache_slots,
        0,
        2147483647,
    )
    _check_range("fsync_interval_ms", cfg.fsync_interval_ms, 1, _INT64_MAX)
    _check_range("io_threads", cfg.io_threads, 0, 4096)
    _check_range(
        "group_initial_rebalance_delay_ms", cfg.group_initial_rebalance_delay_ms, 0, _INT64_MAX
    )
    _check_range("group_min_session_timeout_ms", cfg.group_min_session_timeout_ms, 1, _INT64_MAX)
    _check_range("group_max_session_timeout_ms", cfg.group_max_session_timeout_ms, 1, _INT64_MAX)
    _check_range("group_max_size", cfg.group_max_size, 1, _INT32_MAX)
    _check_range("group_consumer_max_size", cfg.group_consumer_max_size, 1, _INT32_MAX)
    _check_range("group_streams_num_standby_replicas", cfg.group_streams_num_standby_replicas, 0, 2)
    _check_range(
        "group_streams_initial_rebalance_delay_ms",
        cfg.group_streams_initial_rebalance_delay_ms,
        0,
        _INT32_MAX,
    )
    _check_range("offsets_retention_minutes", cfg.offsets_retention_minutes, 1, _INT64_MAX)
    _check_range("transaction_max_timeout_ms", cfg.transaction_max_timeout_ms, 1, _INT32_MAX)
    _check_range(
        "transactional_id_expiration_ms", cfg.transactional_id_expiration_ms, 1, _INT64_MAX
    )
    _check_range(
        "group_share_record_lock_duration_ms",
        cfg.group_share_record_lock_duration_ms,
        1,
        _INT64_MAX,
    )
    _check_range("group_share_delivery_count_limit", cfg.group_share_delivery_count_limit, 1, 32767)
    _check_range(
        "group_share_partition_max_record_locks",
        cfg.group_share_partition_max_record_locks,
        1,
        _INT64_MAX,
    )
    _check_range(
        "group_share_max_share_sessions", cfg.group_share_max_share_sessions, 1, _INT64_MAX
    )
    if cfg.share_auto_offset_reset not in ("latest", "earliest"):
        raise ConfigError(
            "share_auto_offset_reset",
            f"expected latest or earliest, got {cfg.share_auto_offset_reset!r}",
        )


_PULSAR_NAME = r"[A-Za-z0-9_.=:-]+"


def _check_tenants(cfg: Config) -> None:
    """``tenants``: Pulsar namespaces, on Pulsar storage; ``tenant_roles`` map into them."""
    if not cfg.tenants:
        if cfg.tenant_roles:
            raise ConfigError("tenant_roles", "needs tenants")
        return
    if not cfg.storage.startswith(("pulsar://", "pulsar+ssl://")):
        raise ConfigError("tenants", "needs pulsar:// storage (each tenant is a Pulsar namespace)")
    for key in cfg.tenants:
        if not re.fullmatch(f"{_PULSAR_NAME}/{_PULSAR_NAME}", key):
            raise ConfigError("tenants", f"expected TENANT/NAMESPACE entries, got {key!r}")
    for entry in cfg.tenant_roles:
        role, _, key = entry.partition("=")
        if not role or key not in cfg.tenants:
            raise ConfigError(
                "tenant_roles", f"expected ROLE=TENANT/NS with TENANT/NS in tenants, got {entry!r}"
            )
    if cfg.pulsar_standby:
        raise ConfigError("pulsar_standby", "is not supported with tenants")


def _check_security(cfg: Config, names: list[str]) -> None:
    mapped: dict[str, str] = {}
    for entry in cfg.listener_security_protocol_map:
        name, _, proto = entry.partition(":")
        if not name or proto.upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(
                "listener_security_protocol_map",
                f"expected NAME:PROTOCOL with PROTOCOL one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {entry!r}",
            )
        mapped[name.upper()] = proto.upper()
    protocols = []
    for name in names:
        # Unmapped names that are not a protocol are PLAINTEXT (kop's behaviour before the map).
        protocols.append(mapped.get(name, name if name in SECURITY_PROTOCOLS else "PLAINTEXT"))
    if any(p in ("SSL", "SASL_SSL") for p in protocols) and not (
        cfg.ssl_certfile and cfg.ssl_keyfile
    ):
        raise ConfigError(
            "ssl_certfile", "SSL and SASL_SSL listeners need ssl_certfile and ssl_keyfile"
        )
    for mech in cfg.sasl_enabled_mechanisms:
        if mech not in SASL_MECHANISMS:
            raise ConfigError(
                "sasl_enabled_mechanisms",
                f"must be among {', '.join(SASL_MECHANISMS)}, got {mech!r}",
            )
    for user in cfg.sasl_users:
        if not user.partition(":")[0] or ":" not in user:
            raise ConfigError("sasl_users", "expected USER:PASSWORD entries")
    for principal in cfg.super_users:
        if not principal.partition(":")[0] or ":" not in principal:
            raise ConfigError("super_users", f"expected TYPE:NAME (User:admin), got {principal!r}")
    _check_choice("ssl_client_auth", cfg.ssl_client_auth, SSL_CLIENT_AUTH)
    if cfg.ssl_client_auth != "none" and not cfg.ssl_cafile:
        raise ConfigError("ssl_cafile", "required when ssl_client_auth is requested or required")
    builtin = ("allow-all", "deny-all", "acl", "pulsar", "python")
    if cfg.authorizer not in builtin and not _HOOK_RE.fullmatch(cfg.authorizer):
        raise ConfigError(
            "authorizer",
            f"must be allow-all, deny-all, acl, pulsar or module:callable, got {cfg.authorizer!r}",
        )
    if cfg.authorizer == "pulsar" and not cfg.storage.startswith(("pulsar://", "pulsar+ssl://")):
        raise ConfigError("authorizer", "pulsar needs pulsar:// storage")
    for name in ("authenticator", "scram_credentials", "oauthbearer_validator"):
        spec = getattr(cfg, name)
        if spec not in (None, "python") and not _HOOK_RE.fullmatch(spec):
            raise ConfigError(name, f"must be module:callable, got {spec!r}")
    _check_range("sasl_session_lifetime_ms", cfg.sasl_session_lifetime_ms, 0, _INT64_MAX)
    _check_range(
        "failed_authentication_delay_ms", cfg.failed_authentication_delay_ms, 0, _INT32_MAX
    )
    _check_range("hook_timeout_ms", cfg.hook_timeout_ms, 1, _INT32_MAX)
    _check_range("hook_cache_ttl_ms", cfg.hook_cache_ttl_ms, 0, _INT64_MAX)


def check_token_validation(cfg: Config, has_validator_hook: bool) -> None:
    """OAUTHBEARER and plain_token_auth need JWT keys or a validator hook (which may be given
    to kop.Server rather than in the config, so kop.Server checks this)."""
    wants_tokens = cfg.plain_token_auth or "OAUTHBEARER" in cfg.sasl_enabled_mechanisms
    if wants_tokens and not cfg.oauthbearer_public_key_files and not has_validator_hook:
        raise ConfigError(
            "oauthbearer_public_key_files",
            "OAUTHBEARER and plain_token_auth need public keys or an oauthbearer_validator hook",
        )


def _check_type(name: str, value: Any) -> None:
    how = kind(name)
    if how == "list":
        ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        expected = "a list of strings"
    elif how == "bool":
        ok, expected = isinstance(value, bool), "true or false"
    elif how == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif how == "optional_str":
        ok, expected = value is None or isinstance(value, str), "a string"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(name, f"must be {expected}, got {value!r}")


def _check_listeners(option: str, listeners: Sequence[str], *, min_port: int) -> list[str]:
    """Validate NAME://HOST:PORT entries; return their upper-cased names."""
    names: list[str] = []
    for entry in listeners:
        match = _LISTENER_RE.fullmatch(entry)
        if not match:
            raise ConfigError(option, f"expected NAME://HOST:PORT, got {entry!r}")
        port = int(match["port"])
        if not min_port <= port <= 65535:
            raise ConfigError(option, f"port must be {min_port}..65535, got {entry!r}")
        if min_port > 0 and match["host"] in ("0.0.0.0", "[::]"):
            raise ConfigError(option, f"cannot advertise a wildcard address, got {entry!r}")
        name = match["name"].upper()
        if name in names:
            raise ConfigError(option, f"listener name {name} appears twice")
        names.append(name)
    return names


def _check_storage(storage: str) -> None:
    if storage == "memory://":
        return
    for scheme in ("file://", "pulsar://", "pulsar+ssl://"):
        if storage.startswith(scheme) and len(storage) > len(scheme):
            return
    raise ConfigError(
        "storage", f"must be file://PATH, memory:// or pulsar://HOST:PORT, got {storage!r}"
    )


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")


def _check_connection_overrides(spec: str) -> None:
    """``IP:N,...`` as the Rust side parses it (an IPv6 address may be bracketed)."""
    for item in filter(None, (part.strip() for part in spec.split(","))):
        import ipaddress  # only when overrides are given (start-up)

        host, sep, count = item.rpartition(":")
        try:
            ipaddress.ip_address(host.strip("[]"))
            valid = bool(sep) and count.isdigit()
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(
                "max_connections_per_ip_overrides", f"{item!r} is not IP:N (an IP address)"
            )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if value < low:
        raise ConfigError(name, f"must be >= {low}, got {value}")
    if value > high:
        raise ConfigError(name, f"must be <= {high}, got {value}")
