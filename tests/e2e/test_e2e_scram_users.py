"""SCRAM users managed with kafka-configs and the Admin API on every kop target (issue 12,
defect 4). Users of ``sasl_users`` are static, like the users of Kafka's JAAS file: a change
to them through AlterUserScramCredentials is refused with UNACCEPTABLE_CREDENTIAL (it used
to answer success and change nothing). Users created through the API rotate and delete for
real: the old password stops working at once, on every instance sharing the storage, and
after a restart.

kop only: ``sasl_users`` has no Apache Kafka equivalent that the admin API can reach."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from helpers import java
from helpers.servers import HOST, KopPulsar, ServerHandle, start_server

USERS = ["admin:admin-secret", "alice:alice-secret"]
SASL = "SASL_PLAINTEXT"


def _conf(srv: ServerHandle, user: str, password: str, mech: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": srv.address_of(SASL),
        "security.protocol": SASL,
        "sasl.mechanism": mech,
        "sasl.username": user,
        "sasl.password": password,
    }


def login_ok(srv: ServerHandle, user: str, password: str, mech: str = "SCRAM-SHA-512") -> bool:
    """Whether a librdkafka client logs in with this password (a Metadata round trip works).

    A refused login is reported through error_cb at once, while list_topics would wait out its
    whole timeout: ask in short rounds and stop at the first authentication error."""
    failures: list[str] = []
    admin = AdminClient(
        {**_conf(srv, user, password, mech), "error_cb": lambda e: failures.append(e.name())}
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            admin.list_topics(timeout=1)
            assert "_AUTHENTICATION" not in failures, failures
            return True
        except KafkaException as err:
            name = err.args[0].name()
            assert name in ("_AUTHENTICATION", "_TRANSPORT", "_TIMED_OUT"), err
            admin.poll(0)  # serves error_cb
            if name == "_AUTHENTICATION" or "_AUTHENTICATION" in failures:
                return False
            assert time.monotonic() < deadline, (failures, err)


def _admin(srv: ServerHandle) -> AdminClient:
    return AdminClient(_conf(srv, "admin", "admin-secret", "PLAIN"))


def _upsert(user: str, password: str, mech: ScramMechanism) -> UserScramCredentialUpsertion:
    return UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 4096), password.encode())


def alter(admin: AdminClient, changes: list[Any]) -> dict[str, str | None]:
    """AlterUserScramCredentials; per user the error name (None = applied)."""
    out: dict[str, str | None] = {}
    for user, fut in admin.alter_user_scram_credentials(changes).items():
        try:
            fut.result(30)
            out[user] = None
        except KafkaException as err:
            kerr = err.args[0]
            if kerr.name() == "UNACCEPTABLE_CREDENTIAL":
                assert "sasl_users" in kerr.str(), kerr.str()
            out[user] = kerr.name()
    return out


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def _kafka_configs(srv: ServerHandle, props: Path, *args: str) -> Any:
    return java.run_class(
        java.CONFIG_COMMAND,
        ["--bootstrap-server", srv.address_of(SASL), "--command-config", str(props), *args],
        check=False,
    )


@pytest.mark.timeout(600)
def test_configured_users_are_refused_and_managed_users_rotate(
    target: str, server_factory: Callable[..., ServerHandle], kafka_tools: None, tmp_path: Path
) -> None:
    if target == "kafka":
        pytest.skip("sasl_users is kop's own option")
    options: dict[str, Any] = {"extra_listeners": [f"{SASL}://{HOST}:0"], "sasl_users": USERS}
    if target == "kop-pulsar":
        options["node_id"] = 1
    srv = server_factory(target, **options)
    props = tmp_path / "admin.properties"
    props.write_text(
        f"security.protocol={SASL}\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-secret";\n'
    )

    # kafka-configs on a configured user: refused with a message that says why
    for change in (
        ["--add-config", "SCRAM-SHA-256=[iterations=4096,password=alice-new]"],
        ["--delete-config", "SCRAM-SHA-512"],
    ):
        out = _kafka_configs(
            srv, props, "--alter", *change, "--entity-type", "users", "--entity-name", "alice"
        )
        text = out.stdout + out.stderr
        assert out.returncode != 0, text
        assert "UnacceptableCredentialException" in text and "sasl_users" in text, text
    # the Admin API likewise, per user: the managed user in the same request is applied
    admin = _admin(srv)
    assert alter(
        admin,
        [
            _upsert("alice", "alice-new", ScramMechanism.SCRAM_SHA_512),
            _upsert("carol", "carol-1", ScramMechanism.SCRAM_SHA_512),
        ],
    ) == {"alice": "UNACCEPTABLE_CREDENTIAL", "carol": None}
    assert alter(admin, [UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)]) == {
        "alice": "UNACCEPTABLE_CREDENTIAL"
    }
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        assert login_ok(srv, "alice", "alice-secret", mech), mech
        assert not login_ok(srv, "alice", "alice-new", mech), mech

    # a managed user rotates: the leaked password stops working at once
    assert login_ok(srv, "carol", "carol-1")
    assert alter(admin, [_upsert("carol", "carol-2", ScramMechanism.SCRAM_SHA_512)]) == {
        "carol": None
    }
    assert not login_ok(srv, "carol", "carol-1")
    assert login_ok(srv, "carol", "carol-2")
    # and is deleted for real
    assert alter(admin, [_upsert("dave", "dave-1", ScramMechanism.SCRAM_SHA_256)]) == {"dave": None}
    assert login_ok(srv, "dave", "dave-1", "SCRAM-SHA-256")
    assert alter(admin, [UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)]) == {
        "dave": None
    }
    assert not login_ok(srv, "dave", "dave-1", "SCRAM-SHA-256")

    if isinstance(srv, KopPulsar):
        # a second instance on the same namespace follows the rotation
        second = start_server(
            "kop-pulsar", tmp_path / "second", namespace=srv.namespace, **{**options, "node_id": 2}
        )
        try:
            assert login_ok(second, "carol", "carol-2")
            assert not login_ok(second, "carol", "carol-1")
            assert alter(admin, [_upsert("carol", "carol-3", ScramMechanism.SCRAM_SHA_512)]) == {
                "carol": None
            }
            wait_for(
                lambda: login_ok(second, "carol", "carol-3"), "the second instance takes carol-3"
            )
            assert not login_ok(second, "carol", "carol-2")
            assert not login_ok(second, "alice", "alice-new")
        finally:
            second.stop()
        final = "carol-3"
    else:
        final = "carol-2"

    srv.restart()
    assert login_ok(srv, "carol", final)
    assert not login_ok(srv, "carol", "carol-1")
    assert not login_ok(srv, "dave", "dave-1", "SCRAM-SHA-256")
    assert login_ok(srv, "alice", "alice-secret")
    assert not login_ok(srv, "alice", "alice-new")
