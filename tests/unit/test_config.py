from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from kop import Config, ConfigError

from .conftest import REPO


def _contract_defaults() -> dict[str, Any]:
    """Defaults from the config table of docs/native-api.md (first backticked value)."""
    out = {}
    text = (REPO / "docs" / "native-api.md").read_text()
    for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)`", text, re.MULTILINE):
        out[m[1]] = json.loads(m[2])
    return out


def test_defaults_match_the_native_contract() -> None:
    contract = _contract_defaults()
    assert contract, "could not read the table in docs/native-api.md"
    assert Config().to_dict() == contract


def test_to_json_is_the_contract_object() -> None:
    cfg = Config(listeners=["PLAINTEXT://0.0.0.0:0"], storage="memory://", cluster_id="abc")
    data = json.loads(cfg.to_json())
    assert data["listeners"] == ["PLAINTEXT://0.0.0.0:0"]
    assert data["advertised_listeners"] == []
    assert data["cluster_id"] == "abc"
    assert list(data) == [f.name for f in dataclasses.fields(Config)]


def test_config_is_frozen_hashable_and_normalised() -> None:
    cfg = Config(listeners=["PLAINTEXT://127.0.0.1:1"], log_level="DEBUG", fsync="Always")
    assert cfg.listeners == ("PLAINTEXT://127.0.0.1:1",)
    assert (cfg.log_level, cfg.fsync) == ("debug", "always")
    assert hash(cfg) == hash(
        Config(listeners=("PLAINTEXT://127.0.0.1:1",), log_level="debug", fsync="always")
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.node_id = 2  # type: ignore[misc]


def test_listeners_as_one_comma_separated_string() -> None:
    cfg = Config(listeners="A://h:1, B://[::1]:2")
    assert cfg.listeners == ("A://h:1", "B://[::1]:2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_partitions": 0}, "num_partitions: must be >= 1, got 0"),
        ({"num_partitions": 2**31}, "num_partitions: must be <= 2147483647"),
        ({"node_id": -1}, "node_id: must be >= 0, got -1"),
        ({"log_retention_ms": -2}, "log_retention_ms: must be >= -1, got -2"),
        ({"io_threads": -1}, "io_threads: must be >= 0"),
        ({"fsync_interval_ms": 0}, "fsync_interval_ms: must be >= 1"),
        ({"message_max_bytes": 0}, "message_max_bytes: must be >= 1"),
        ({"listeners": []}, "listeners: must name at least one listener"),
        ({"listeners": ["127.0.0.1:9092"]}, "listeners: expected NAME://HOST:PORT"),
        ({"listeners": ["PLAINTEXT://:9092"]}, "listeners: expected NAME://HOST:PORT"),
        ({"listeners": ["PLAINTEXT://h:70000"]}, "listeners: port must be 0..65535"),
        ({"listeners": ["A://h:1", "a://h:2"]}, "listeners: listener name A appears twice"),
        ({"advertised_listeners": ["PLAINTEXT://h:0"]}, "advertised_listeners: port must be 1"),
        ({"advertised_listeners": ["PLAINTEXT://0.0.0.0:1"]}, "cannot advertise a wildcard"),
        ({"advertised_listeners": ["OTHER://h:1"]}, "listener OTHER is not in listeners"),
        (
            {"storage": "s3://bucket"},
            "storage: must be file://PATH, memory:// or pulsar://HOST:PORT",
        ),
        ({"storage": "file://"}, "storage: must be file://PATH, memory:// or pulsar://HOST:PORT"),
        ({"storage": "pulsar://"}, "storage: must be file://PATH, memory:// or pulsar://HOST:PORT"),
        ({"pulsar_namespace": "a/b"}, "pulsar_namespace: is not a valid Pulsar name"),
        ({"log_level": "verbose"}, "log_level: must be one of error, warn, info, debug, trace"),
        ({"fsync": "sometimes"}, "fsync: must be one of always, interval, never"),
        ({"cluster_id": "has space"}, "cluster_id: must be letters, digits"),
        ({"num_partitions": "4"}, "num_partitions: must be an integer, got '4'"),
        ({"num_partitions": True}, "num_partitions: must be an integer, got True"),
        ({"auto_create_topics": 1}, "auto_create_topics: must be true or false, got 1"),
        ({"listeners": [1]}, "listeners: must be a list of strings"),
    ],
)
def test_validation_names_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.field == next(iter(kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"listeners": ["PLAINTEXT://0.0.0.0:0", "INTERNAL://[::1]:9093", "X://my-host.local:1"]},
        {"advertised_listeners": ["PLAINTEXT://kafka.example.com:9092"]},
        {"storage": "file:///var/lib/kop"},
        {"storage": "memory://"},
        {"log_retention_ms": -1, "log_retention_bytes": -1},
        {"cluster_id": "MkU3OEVBNTcwNTJENDM2Qk"},
    ],
)
def test_valid_values(kwargs: dict[str, Any]) -> None:
    Config(**kwargs)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kop.toml"
    path.write_text(text)
    return path


def test_from_toml_accepts_field_and_dashed_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'listeners = ["PLAINTEXT://127.0.0.1:0", "B://127.0.0.1:0"]\n'
        'storage = "memory://"\n'
        "num-partitions = 8\n"
        "auto_create_topics = false\n"
        'log_retention_ms = "-1"\n',
    )
    cfg = Config.from_toml(path)
    assert cfg.listeners == ("PLAINTEXT://127.0.0.1:0", "B://127.0.0.1:0")
    assert (cfg.storage, cfg.num_partitions, cfg.auto_create_topics) == ("memory://", 8, False)
    assert cfg.log_retention_ms == -1


def test_from_toml_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "num_partition = 3\n")
    with pytest.raises(ConfigError) as info:
        Config.from_toml(path)
    assert str(info.value) == (
        f"{path}: num_partition: unknown option (did you mean 'num_partitions'?)"
    )


def test_from_toml_bad_value_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "num-partitions = 0\n")
    with pytest.raises(ConfigError) as info:
        Config.from_toml(path)
    assert str(info.value) == f"{path}: num-partitions: must be >= 1, got 0"
    assert info.value.source == "toml"


def test_from_toml_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auto_create_topics: must be true or false, got 3"):
        Config.from_toml(_write(tmp_path, "auto_create_topics = 3\n"))


def test_from_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_toml(_write(tmp_path, "num_partitions = = 3\n"))
    assert str(info.value).startswith(f"{tmp_path / 'kop.toml'}: invalid TOML")
    assert "\n" not in str(info.value)


def test_from_toml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Config.from_toml(tmp_path / "nope.toml")


def test_from_env_parses_every_kind() -> None:
    cfg = Config.from_env(
        {
            "KOP_LISTENERS": "PLAINTEXT://127.0.0.1:0, INTERNAL://127.0.0.1:0",
            "KOP_ADVERTISED_LISTENERS": "",
            "KOP_NUM_PARTITIONS": " 12 ",
            "KOP_AUTO_CREATE_TOPICS": "no",
            "KOP_CLUSTER_ID": "",
            "KOP_LOG_LEVEL": "WARN",
            "UNRELATED": "x",
        }
    )
    assert cfg.listeners == ("PLAINTEXT://127.0.0.1:0", "INTERNAL://127.0.0.1:0")
    assert cfg.advertised_listeners == ()
    assert (cfg.num_partitions, cfg.auto_create_topics) == (12, False)
    assert (cfg.cluster_id, cfg.log_level) == (None, "warn")


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False)]
)
def test_env_booleans(text: str, value: bool) -> None:
    assert Config.from_env({"KOP_AUTO_CREATE_TOPICS": text}).auto_create_topics is value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KOP_AUTO_CREATE_TOPICS": "maybe"}, "KOP_AUTO_CREATE_TOPICS: must be true or false"),
        ({"KOP_NODE_ID": "one"}, "KOP_NODE_ID: must be an integer, got 'one'"),
        ({"KOP_NUM_PARTITIONS": "0"}, "KOP_NUM_PARTITIONS: must be >= 1, got 0"),
        ({"KOP_LISTENERS": ""}, "KOP_LISTENERS: must name at least one listener"),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    assert str(info.value) == message or str(info.value).startswith(message)
    assert info.value.source == "env"


def test_env_near_miss_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kop.config"):
        Config.from_env({"KOP_NUM_PARTITION": "3", "KOP_TEST_SOMETHING": "x"})
    assert "KOP_NUM_PARTITION (did you mean KOP_NUM_PARTITIONS?)" in caplog.text
    assert "KOP_TEST_SOMETHING" not in caplog.text


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "num_partitions = 2\nnode_id = 2\nio_threads = 2\n")
    env = {"KOP_NODE_ID": "3", "KOP_IO_THREADS": "3"}
    cfg = Config.load(path, environ=env, overrides={"io_threads": "4", "storage": None})
    assert (cfg.num_partitions, cfg.node_id, cfg.io_threads) == (2, 3, 4)
    assert cfg.storage == "file://kop-data"  # None = not given: the default stays
    assert cfg.message_max_bytes == 1048588


def test_override_errors_are_marked_as_overrides() -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(environ={}, overrides={"num_partitions": "0"})
    assert (info.value.field, info.value.source) == ("num_partitions", "override")


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="nmu_partitions: unknown option"):
        Config.load(environ={}, overrides={"nmu_partitions": 1})


def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOP_NUM_PARTITIONS", "7")
    assert Config.load().num_partitions == 7


def test_tenants_need_pulsar_and_valid_entries() -> None:
    on_pulsar = {"storage": "pulsar://127.0.0.1:6650"}
    cfg = Config(
        tenants=["acme/default", "globex/eu"], tenant_roles=["alice=acme/default"], **on_pulsar
    )
    assert cfg.tenants == ("acme/default", "globex/eu")
    with pytest.raises(ConfigError, match="tenants: needs pulsar:// storage"):
        Config(tenants=["acme/default"], storage="memory://")
    with pytest.raises(ConfigError, match="TENANT/NAMESPACE"):
        Config(tenants=["acme"], **on_pulsar)
    with pytest.raises(ConfigError, match="tenant_roles"):
        Config(tenants=["acme/default"], tenant_roles=["alice=globex/eu"], **on_pulsar)
    with pytest.raises(ConfigError, match="tenant_roles: needs tenants"):
        Config(tenant_roles=["alice=acme/default"], **on_pulsar)
    # Each request is decided against the permissions of its connection's tenant.
    assert Config(tenants=["acme/default"], authorizer="pulsar", **on_pulsar).authorizer == "pulsar"
