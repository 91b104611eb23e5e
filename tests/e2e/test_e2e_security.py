"""Security end to end (kop only: it configures listeners and hooks Apache Kafka has no
equivalent for in scripts/kafka.sh): SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 over plain TCP
and TLS with confluent-kafka, kafka-python, aiokafka and the Java tools; TLS client
certificates; Kafka ACLs (kafka-acls, durable across restarts); SCRAM users managed with
kafka-configs; and a negative matrix asserting Kafka's errors and that no data moved (Python
hooks: test_e2e_security_hooks.py)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

from helpers import ck, java, wire
from helpers.certs import Pki, make_pki
from helpers.secure_kop import (
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    Kop,
    authenticate,
    consume,
    end_offset,
    handshake,
    metadata_v1,
    produce,
    sasl_sock,
)

kop = pytest.importorskip("kop")

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def allow_all(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kop]:
    srv = Kop(tmp_path_factory.mktemp("allow-all"), pki, failed_authentication_delay_ms=300)
    yield srv
    srv.stop()


# ---- SASL with real clients --------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "listener,mech",
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_SSL", "PLAIN"),
    ],
)
def test_confluent_sasl(allow_all: Kop, listener: str, mech: str) -> None:
    conf = allow_all.ck_conf(listener, "alice", mech)
    topic = ck.unique(f"ck-{mech.lower()}")
    assert produce(conf, topic) == [None] * 5
    assert consume(conf, topic, 5) == [f"v{i}".encode() for i in range(5)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_sasl(allow_all: Kop, mech: str) -> None:
    common = {
        "bootstrap_servers": allow_all.addr["SASL_PLAINTEXT"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mech,
        "sasl_plain_username": "bob",
        "sasl_plain_password": "bob-secret",
    }
    topic = ck.unique("kp-sasl")
    p = KafkaProducer(acks="all", **common)
    for i in range(5):
        p.send(topic, f"kp{i}".encode(), partition=0).get(timeout=30)
    p.close()
    c = KafkaConsumer(
        group_id=None, auto_offset_reset="earliest", enable_auto_commit=False, **common
    )
    c.assign([KTP(topic, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        for msgs in c.poll(timeout_ms=500).values():
            got += [m.value for m in msgs]
    c.close()
    assert got == [f"kp{i}".encode() for i in range(5)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_aiokafka_scram(allow_all: Kop, listener: str) -> None:
    kw: dict[str, Any] = {
        "bootstrap_servers": allow_all.addr[listener],
        "security_protocol": listener,
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "alice-secret",
    }
    if listener == "SASL_SSL":
        kw["ssl_context"] = create_ssl_context(cafile=str(allow_all.pki.ca))
    topic = ck.unique("aio-sasl")

    async def run() -> list[bytes]:
        p = AIOKafkaProducer(**kw)
        await p.start()
        try:
            for i in range(5):
                await p.send_and_wait(topic, f"a{i}".encode(), partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(auto_offset_reset="earliest", enable_auto_commit=False, **kw)
        await c.start()
        try:
            tp = _aio_tp(topic)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            out: list[bytes] = []
            while len(out) < 5:
                batch = await c.getmany(tp, timeout_ms=1000)
                out += [m.value for m in batch.get(tp, [])]
            return out
        finally:
            await c.stop()

    assert asyncio.run(asyncio.wait_for(run(), 60)) == [f"a{i}".encode() for i in range(5)]


def _aio_tp(topic: str) -> Any:
    from aiokafka.structs import TopicPartition as AioTP

    return AioTP(topic, 0)


@pytest.mark.timeout(300)
def test_java_console_clients_scram(allow_all: Kop, kafka_tools: None, tmp_path: Path) -> None:
    topic = ck.unique("java-sasl")
    props = allow_all.java_props(
        tmp_path / "client.properties", "alice", "SCRAM-SHA-512", "SASL_SSL"
    )
    java.run_class(
        java.CONSOLE_PRODUCER,
        [
            "--bootstrap-server",
            allow_all.addr["SASL_SSL"],
            "--topic",
            topic,
            "--command-config",
            str(props),
        ],
        input="j0\nj1\nj2\n",
    )
    out = java.run_class(
        java.CONSOLE_CONSUMER,
        [
            "--bootstrap-server",
            allow_all.addr["SASL_SSL"],
            "--topic",
            topic,
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
            "--command-config",
            str(props),
        ],
    )
    assert out.stdout.split() == ["j0", "j1", "j2"]


# ---- the negative matrix on the wire ---------------------------------------------------------


def _topic_exists(srv: Kop, topic: str) -> bool:
    md = AdminClient(srv.ck_conf("SASL_PLAINTEXT", "admin")).list_topics(timeout=10)
    return topic in md.topics


def test_wrong_password_is_58_after_the_delay_then_closed(allow_all: Kop) -> None:
    with sasl_sock(allow_all) as s:
        assert handshake(s, "PLAIN")[0] == 0
        started = time.monotonic()
        err, msg, _ = authenticate(s, b"\0alice\0wrong")
        assert err == 58 and msg and "Invalid username or password" in msg
        assert time.monotonic() - started >= 0.25  # failed_authentication_delay_ms = 300
        wire.expect_closed(s)


def _scram_with_a_bad_proof(srv: Kop, user: str) -> tuple[str, int, str | None]:
    """(server-first, final error, final message) of a SCRAM-SHA-256 login with a bad proof."""
    with sasl_sock(srv) as s:
        assert handshake(s, "SCRAM-SHA-256")[0] == 0
        err, _, server_first = authenticate(s, f"n,,n={user},r=abcdefgh".encode())
        assert err == 0, user
        nonce = dict(kv.split("=", 1) for kv in server_first.decode().split(","))["r"]
        proof = base64.b64encode(bytes(32)).decode()
        err, msg, _ = authenticate(s, f"c=biws,r={nonce},p={proof}".encode(), cid=3)
        wire.expect_closed(s)
        return server_first.decode(), err, msg


def test_unknown_user_scram_fails_like_a_wrong_password(allow_all: Kop) -> None:
    # An unknown user gets a challenge too (a stable salt, 4096 iterations), then the same
    # failure as a known user with a wrong password: the exchange does not tell them apart.
    known_first, known_err, known_msg = _scram_with_a_bad_proof(allow_all, "alice")
    first, err, msg = _scram_with_a_bad_proof(allow_all, "nobody")
    again, _, _ = _scram_with_a_bad_proof(allow_all, "nobody")
    assert (err, msg) == (known_err, known_msg) == (58, known_msg)
    assert known_first.endswith(",i=4096") and first.endswith(",i=4096")
    salt = [kv for kv in first.split(",") if kv.startswith("s=")]
    assert salt == [kv for kv in again.split(",") if kv.startswith("s=")]


def test_unsupported_mechanism_is_33_with_the_list(allow_all: Kop) -> None:
    with sasl_sock(allow_all) as s:
        err, mechs = handshake(s, "GSSAPI")
        assert err == 33 and set(mechs) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        wire.expect_closed(s)


def test_request_before_authentication_closes_without_answer_or_effect(allow_all: Kop) -> None:
    topic = ck.unique("before-auth")
    with sasl_sock(allow_all) as s:
        wire.send_all(s, metadata_v1(topic))  # would auto-create the topic if served
        assert wire.expect_closed(s) == b""
    with sasl_sock(allow_all) as s:  # also after a handshake, before SaslAuthenticate
        assert handshake(s, "PLAIN")[0] == 0
        wire.send_all(s, metadata_v1(topic))
        assert wire.expect_closed(s) == b""
    assert not _topic_exists(allow_all, topic)


def test_sasl_bytes_before_the_handshake_close(allow_all: Kop) -> None:
    with sasl_sock(allow_all) as s:
        token = b"\0alice\0alice-secret"
        wire.send_all(s, wire.i32(len(token)) + token)  # raw PLAIN token, no Kafka header
        assert wire.expect_closed(s) == b""
    with sasl_sock(allow_all) as s:  # SaslAuthenticate without SaslHandshake
        wire.send_all(s, wire.request(SASL_AUTHENTICATE, 1, 1, wire.nbytes(token)))
        assert wire.expect_closed(s) == b""


def test_handshake_v0_raw_tokens_and_reauth_rules(allow_all: Kop) -> None:
    with sasl_sock(allow_all) as s:
        wire.send_all(s, wire.request(SASL_HANDSHAKE, 0, 1, wire.string("PLAIN")))
        r = wire._Reader(wire.read_frame(s))
        assert r.i32() == 1 and r.i16() == 0
        token = b"\0alice\0alice-secret"
        wire.send_all(s, wire.i32(len(token)) + token)
        # the (empty) final PLAIN token: a bare size prefix
        assert wire._recv_exact(s, 4, time.monotonic() + 10) == b"\0\0\0\0"
        wire.send_all(s, metadata_v1(ck.unique("raw-ok")))
        r = wire._Reader(wire.read_frame(s))
        assert r.i32() == 9
    # a second SaslAuthenticate once authenticated: ILLEGAL_SASL_STATE
    with sasl_sock(allow_all) as s:
        assert handshake(s, "PLAIN")[0] == 0
        assert authenticate(s, b"\0bob\0bob-secret")[0] == 0
        assert authenticate(s, b"\0bob\0bob-secret", cid=3)[0] == 34


def test_plaintext_listener_answers_sasl_with_illegal_state(allow_all: Kop) -> None:
    host, port = allow_all.addr["PLAINTEXT"].split(":")
    with wire.connect(host, int(port)) as s:
        assert handshake(s, "PLAIN")[0] == 34


def test_confluent_wrong_password_moves_no_data(allow_all: Kop) -> None:
    topic = ck.unique("wrong-pw")
    conf = allow_all.ck_conf("SASL_PLAINTEXT", "alice", "SCRAM-SHA-256", password="nope")
    errors = produce(conf, topic, n=2, timeout=5)
    assert errors and all(e is not None for e in errors), errors
    assert not _topic_exists(allow_all, topic)


def test_tls_listener_rejects_a_client_certificate_from_another_ca(allow_all: Kop) -> None:
    host, port = allow_all.addr["SSL"].split(":")
    ctx = ssl.create_default_context(cafile=str(allow_all.pki.ca))
    ctx.load_cert_chain(str(allow_all.pki.rogue_cert), str(allow_all.pki.rogue_key))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        # TLS 1.3: the server's verdict on the client certificate arrives after the
        # handshake, as an alert on the first read.
        tls.sendall(metadata_v1("x"))
        if not tls.recv(4):
            raise ConnectionError("closed")


# ---- ACLs, mTLS principals, kafka-acls / kafka-configs, restart ---------------------------------


@pytest.fixture(scope="module")
def acl_kop(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kop]:
    srv = Kop(
        tmp_path_factory.mktemp("acl"),
        pki,
        authorizer="acl",
        super_users=["User:admin"],
        ssl_principal_mapping_rules=r"RULE:^CN=([^,]*),OU=clients.*$/$1/L,DEFAULT",
        failed_authentication_delay_ms=0,
    )
    yield srv
    srv.stop()


def _admin(srv: Kop) -> AdminClient:
    return AdminClient(srv.ck_conf("SASL_PLAINTEXT", "admin"))


def _create(srv: Kop, *topics: str) -> None:
    admin = _admin(srv)  # kept alive until the futures complete
    futs = admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    for f in futs.values():
        f.result(30)


def _allow(
    principal: str,
    prefix: str,
    op: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.PREFIXED,
) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC, prefix, pattern, principal, "*", op, AclPermissionType.ALLOW
    )


@pytest.mark.timeout(120)
def test_acls_enforced_for_sasl_and_certificate_principals(acl_kop: Kop) -> None:
    mine, other = ck.unique("alice-t"), ck.unique("bob-t")
    readable = ck.unique("alice-r")  # READ allowed by the prefix, no DENY
    _create(acl_kop, mine, other, readable)
    admin = _admin(acl_kop)
    for f in admin.create_acls(
        [
            _allow("User:alice", "alice-", AclOperation.WRITE),
            _allow("User:alice", "alice-", AclOperation.READ),
            AclBinding(
                ResourceType.TOPIC,
                mine,
                ResourcePatternType.LITERAL,
                "User:alice",
                "*",
                AclOperation.READ,
                AclPermissionType.DENY,
            ),
        ]
    ).values():
        f.result(30)
    alice = acl_kop.ck_conf("SASL_PLAINTEXT", "alice", "SCRAM-SHA-512")
    assert produce(alice, mine) == [None] * 5
    # WRITE on a topic without ACLs: TOPIC_AUTHORIZATION_FAILED, nothing appended
    assert set(produce(alice, other, n=2, timeout=10)) == {"TOPIC_AUTHORIZATION_FAILED"}
    admin_conf = acl_kop.ck_conf("SASL_PLAINTEXT", "admin")
    assert end_offset(admin_conf, other) == 0
    assert end_offset(admin_conf, mine) == 5
    # consuming through a group needs READ on the group (the topic itself is readable here)
    assert produce(alice, readable, n=1) == [None]
    with pytest.raises(AssertionError, match="GROUP_AUTHORIZATION_FAILED"):
        consume(alice, readable, 1, timeout=10, subscribe=True)
    group_read = AclBinding(
        ResourceType.GROUP,
        "g-",  # consume() uses group ids g-<random>
        ResourcePatternType.PREFIXED,
        "User:alice",
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    for f in admin.create_acls([group_read]).values():
        f.result(30)
    assert consume(alice, readable, 1, timeout=20, subscribe=True) == [b"v0"]
    # READ on a topic denied by the DENY ACL even though the prefix allows it
    with pytest.raises(AssertionError, match="TOPIC_AUTHORIZATION_FAILED"):
        consume(alice, mine, 1, timeout=10)
    # Metadata hides what alice may not describe (WRITE implies DESCRIBE for her prefix)
    listed = set(AdminClient(alice).list_topics(timeout=10).topics)
    assert mine in listed and other not in listed
    # the certificate CN=alice,OU=clients,... maps to User:alice on the SSL listener
    cert_alice = acl_kop.ck_conf("SSL")
    assert produce(cert_alice, mine, n=1) == [None]
    # without a certificate the SSL principal is User:ANONYMOUS: denied
    anonymous = acl_kop.ck_conf("SSL", cert="")
    assert set(produce(anonymous, mine, n=1, timeout=10)) == {"TOPIC_AUTHORIZATION_FAILED"}
    assert end_offset(admin_conf, mine) == 6
    # ACL APIs need ALTER on the cluster
    alice_admin = AdminClient(alice)
    futures = alice_admin.create_acls([_allow("User:alice", "x", AclOperation.ALL)])
    with pytest.raises(Exception, match="CLUSTER_AUTHORIZATION_FAILED"):
        next(iter(futures.values())).result(30)


@pytest.mark.timeout(400)
def test_kafka_acls_and_kafka_configs_tools_survive_restart(
    acl_kop: Kop, kafka_tools: None, tmp_path: Path
) -> None:
    props = acl_kop.java_props(tmp_path / "admin.properties", "admin", "PLAIN")
    bootstrap = acl_kop.addr["SASL_PLAINTEXT"]
    topic = ck.unique("carol-t")
    _create(acl_kop, topic)
    java.run_class(
        ACL_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--add",
            "--allow-principal",
            "User:carol",
            "--operation",
            "Write",
            "--operation",
            "Read",
            "--topic",
            "carol-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    # a SCRAM user that exists nowhere in the config
    java.run_class(
        java.CONFIG_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=4096,password=carol-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
    )
    # --describe asks DescribeUserScramCredentials and DescribeClientQuotas (none set yet)
    for entity in (["--entity-name", "carol"], []):
        described_users = java.run_class(
            java.CONFIG_COMMAND,
            [
                "--bootstrap-server",
                bootstrap,
                "--command-config",
                str(props),
                "--describe",
                "--entity-type",
                "users",
                *entity,
            ],
        )
        assert (
            "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=4096"
            in described_users.stdout
        ), described_users.stdout
        assert "Quota configs" not in described_users.stdout
    # a quota for the same user (AlterClientQuotas, ALTER_CONFIGS on the cluster)
    java.run_class(
        java.CONFIG_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--alter",
            "--add-config",
            "producer_byte_rate=1048576",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
    )
    described_users = java.run_class(
        java.CONFIG_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
    )
    assert (
        "Quota configs for user-principal 'carol' are producer_byte_rate=1048576.0"
        in described_users.stdout
    ), described_users.stdout
    admin = _admin(acl_kop)
    described = admin.describe_user_scram_credentials(["carol"])["carol"].result(30)
    infos = [(i.mechanism.name, i.iterations) for i in described.scram_credential_infos]
    assert infos == [("SCRAM_SHA_256", 4096)], infos
    carol = acl_kop.ck_conf("SASL_PLAINTEXT", "carol", "SCRAM-SHA-256", password="carol-secret")
    assert produce(carol, topic, n=2) == [None] * 2

    acl_kop.restart()
    bootstrap = acl_kop.addr["SASL_PLAINTEXT"]
    listed = java.run_class(
        ACL_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--list",
            "--topic",
            "carol-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    assert "User:carol" in listed.stdout and "WRITE" in listed.stdout, listed.stdout
    carol = acl_kop.ck_conf("SASL_PLAINTEXT", "carol", "SCRAM-SHA-256", password="carol-secret")
    assert produce(carol, topic, n=1) == [None]
    assert produce(carol, ck.unique("dave-t"), n=1, timeout=10) == ["TOPIC_AUTHORIZATION_FAILED"]
    # removing the ACL takes effect at once
    java.run_class(
        ACL_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--remove",
            "--force",
            "--allow-principal",
            "User:carol",
            "--operation",
            "Write",
            "--operation",
            "Read",
            "--topic",
            "carol-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    assert produce(carol, topic, n=1, timeout=10) == ["TOPIC_AUTHORIZATION_FAILED"]
