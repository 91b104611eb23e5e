"""Security end to end (kop only: it configures listeners and hooks Apache Kafka has no
equivalent for in scripts/kafka.sh): SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 over plain TCP
and TLS with confluent-kafka, kafka-python, aiokafka and the Java tools; TLS client
certificates; Kafka ACLs (kafka-acls, durable across restarts); SCRAM users managed with
kafka-configs; Python authorizer / authenticator hooks with the decision cache; and a negative
matrix asserting Kafka's errors and that no data moved."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

from helpers import ck, java, wire
from helpers.certs import Pki, make_pki
from helpers.servers import HOST, free_port

kop = pytest.importorskip("kop")

USERS = ("admin:admin-secret", "alice:alice-secret", "bob:bob-secret")
PASSWORDS = dict(u.split(":", 1) for u in USERS)
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"

# api keys
METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 17, 36


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Kop:
    """An embedded kop with several listeners; ``addr[NAME]`` is each one's host:port."""

    def __init__(self, data: Path, pki: Pki, **config: Any) -> None:
        config.setdefault(
            "listeners",
            [
                f"PLAINTEXT://{HOST}:0",
                f"SASL_PLAINTEXT://{HOST}:0",
                f"SSL://{HOST}:0",
                f"SASL_SSL://{HOST}:0",
            ],
        )
        config.setdefault("sasl_users", list(USERS))
        config.setdefault("ssl_certfile", str(pki.server_cert))
        config.setdefault("ssl_keyfile", str(pki.server_key))
        config.setdefault("ssl_cafile", str(pki.ca))
        config.setdefault("ssl_client_auth", "requested")
        config.setdefault("num_partitions", 1)
        hook_names = ("authorizer", "authenticator", "scram_credentials", "oauthbearer_validator")
        self.hooks = {
            name: config.pop(f"{name}_hook") for name in hook_names if f"{name}_hook" in config
        }
        self.cfg = kop.Config(storage=f"file://{data}", **config)
        self.pki = pki
        self.server: Any = None
        self.start()

    def start(self) -> None:
        self.server = kop.Server(self.cfg, **self.hooks)
        self.server.start()
        self.addr = {name: f"{HOST}:{port}" for name, _, port in self.server.bound_addresses}

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- client configs --------------------------------------------------------------------

    def ck_conf(
        self,
        listener: str,
        user: str | None = None,
        mech: str = "PLAIN",
        password: str | None = None,
        cert: str = "client",
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.addr[listener],
            "security.protocol": listener,
            "socket.timeout.ms": 10000,
        }
        if "SASL" in listener:
            conf.update(
                {
                    "sasl.mechanism": mech,
                    "sasl.username": user,
                    "sasl.password": password if password is not None else PASSWORDS[user or ""],
                }
            )
        if "SSL" in listener:
            conf["ssl.ca.location"] = str(self.pki.ca)
            if listener == "SSL" and cert:
                conf["ssl.certificate.location"] = str(getattr(self.pki, f"{cert}_cert"))
                conf["ssl.key.location"] = str(getattr(self.pki, f"{cert}_key"))
        return conf

    def java_props(
        self, path: Path, user: str, mech: str = "SCRAM-SHA-256", listener: str = "SASL_PLAINTEXT"
    ) -> Path:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if mech == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        lines = [
            f"security.protocol={listener}",
            f"sasl.mechanism={mech}",
            f"sasl.jaas.config={module} required "
            f'username="{user}" password="{PASSWORDS.get(user, "")}";',
        ]
        if "SSL" in listener:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.pki.ca}"]
        path.write_text("\n".join(lines) + "\n")
        return path


def produce(conf: dict[str, Any], topic: str, n: int = 5, timeout: float = 30) -> list[str | None]:
    """Produce n records; returns each delivery's error name (None = delivered)."""
    p = Producer({**conf, "message.timeout.ms": int(timeout * 1000), "retries": 0})
    errors: list[str | None] = []

    def cb(err: Any, msg: Any) -> None:
        errors.append(err.name() if err is not None else None)

    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), on_delivery=cb)
    p.flush(timeout + 5)
    return errors


def consume(
    conf: dict[str, Any], topic: str, n: int, timeout: float = 30, subscribe: bool = False
) -> list[bytes]:
    """``n`` records of ``topic`` from offset 0 of partition 0 (assigned), or through a group
    (``subscribe``: the group is joined before anything is fetched, so a group error always
    comes first)."""
    c = Consumer(
        {
            **conf,
            "group.id": ck.unique("g"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        if subscribe:
            c.subscribe([topic])
        else:
            c.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise AssertionError(f"consume {topic}: {m.error()}")
            out.append(m.value())
        return out
    finally:
        c.close()


def end_offset(conf: dict[str, Any], topic: str) -> int:
    c = Consumer({**conf, "group.id": ck.unique("g"), "enable.auto.commit": False})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high)
    finally:
        c.close()


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


def _handshake(sock: socket.socket, mech: str, cid: int = 1) -> tuple[int, list[str]]:
    wire.send_all(sock, wire.request(SASL_HANDSHAKE, 1, cid, wire.string(mech)))
    r = wire._Reader(wire.read_frame(sock))
    assert r.i32() == cid
    err = r.i16()
    mechs = [r.string() or "" for _ in range(r.i32())]
    return err, mechs


def _authenticate(sock: socket.socket, token: bytes, cid: int = 2) -> tuple[int, str | None, bytes]:
    wire.send_all(sock, wire.request(SASL_AUTHENTICATE, 1, cid, wire.nbytes(token)))
    r = wire._Reader(wire.read_frame(sock))
    assert r.i32() == cid
    err = r.i16()
    msg = r.string()
    size = r.i32()
    data = r.take(size) if size > 0 else b""
    r.i64()
    return err, msg, data


def _metadata_v1(topic: str, cid: int = 9) -> bytes:
    return wire.request(METADATA, 1, cid, wire.i32(1) + wire.string(topic))


def _sasl_sock(srv: Kop) -> socket.socket:
    host, port = srv.addr["SASL_PLAINTEXT"].split(":")
    return wire.connect(host, int(port))


def _topic_exists(srv: Kop, topic: str) -> bool:
    md = AdminClient(srv.ck_conf("SASL_PLAINTEXT", "admin")).list_topics(timeout=10)
    return topic in md.topics


def test_wrong_password_is_58_after_the_delay_then_closed(allow_all: Kop) -> None:
    with _sasl_sock(allow_all) as s:
        assert _handshake(s, "PLAIN")[0] == 0
        started = time.monotonic()
        err, msg, _ = _authenticate(s, b"\0alice\0wrong")
        assert err == 58 and msg and "Invalid username or password" in msg
        assert time.monotonic() - started >= 0.25  # failed_authentication_delay_ms = 300
        wire.expect_closed(s)


def _scram_with_a_bad_proof(srv: Kop, user: str) -> tuple[str, int, str | None]:
    """(server-first, final error, final message) of a SCRAM-SHA-256 login with a bad proof."""
    with _sasl_sock(srv) as s:
        assert _handshake(s, "SCRAM-SHA-256")[0] == 0
        err, _, server_first = _authenticate(s, f"n,,n={user},r=abcdefgh".encode())
        assert err == 0, user
        nonce = dict(kv.split("=", 1) for kv in server_first.decode().split(","))["r"]
        proof = base64.b64encode(bytes(32)).decode()
        err, msg, _ = _authenticate(s, f"c=biws,r={nonce},p={proof}".encode(), cid=3)
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
    with _sasl_sock(allow_all) as s:
        err, mechs = _handshake(s, "GSSAPI")
        assert err == 33 and set(mechs) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        wire.expect_closed(s)


def test_request_before_authentication_closes_without_answer_or_effect(allow_all: Kop) -> None:
    topic = ck.unique("before-auth")
    with _sasl_sock(allow_all) as s:
        wire.send_all(s, _metadata_v1(topic))  # would auto-create the topic if served
        assert wire.expect_closed(s) == b""
    with _sasl_sock(allow_all) as s:  # also after a handshake, before SaslAuthenticate
        assert _handshake(s, "PLAIN")[0] == 0
        wire.send_all(s, _metadata_v1(topic))
        assert wire.expect_closed(s) == b""
    assert not _topic_exists(allow_all, topic)


def test_sasl_bytes_before_the_handshake_close(allow_all: Kop) -> None:
    with _sasl_sock(allow_all) as s:
        token = b"\0alice\0alice-secret"
        wire.send_all(s, wire.i32(len(token)) + token)  # raw PLAIN token, no Kafka header
        assert wire.expect_closed(s) == b""
    with _sasl_sock(allow_all) as s:  # SaslAuthenticate without SaslHandshake
        wire.send_all(s, wire.request(SASL_AUTHENTICATE, 1, 1, wire.nbytes(token)))
        assert wire.expect_closed(s) == b""


def test_handshake_v0_raw_tokens_and_reauth_rules(allow_all: Kop) -> None:
    with _sasl_sock(allow_all) as s:
        wire.send_all(s, wire.request(SASL_HANDSHAKE, 0, 1, wire.string("PLAIN")))
        r = wire._Reader(wire.read_frame(s))
        assert r.i32() == 1 and r.i16() == 0
        token = b"\0alice\0alice-secret"
        wire.send_all(s, wire.i32(len(token)) + token)
        # the (empty) final PLAIN token: a bare size prefix
        assert wire._recv_exact(s, 4, time.monotonic() + 10) == b"\0\0\0\0"
        wire.send_all(s, _metadata_v1(ck.unique("raw-ok")))
        r = wire._Reader(wire.read_frame(s))
        assert r.i32() == 9
    # a second SaslAuthenticate once authenticated: ILLEGAL_SASL_STATE
    with _sasl_sock(allow_all) as s:
        assert _handshake(s, "PLAIN")[0] == 0
        assert _authenticate(s, b"\0bob\0bob-secret")[0] == 0
        assert _authenticate(s, b"\0bob\0bob-secret", cid=3)[0] == 34


def test_plaintext_listener_answers_sasl_with_illegal_state(allow_all: Kop) -> None:
    host, port = allow_all.addr["PLAINTEXT"].split(":")
    with wire.connect(host, int(port)) as s:
        assert _handshake(s, "PLAIN")[0] == 34


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
        tls.sendall(_metadata_v1("x"))
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
    # --describe asks DescribeUserScramCredentials and DescribeClientQuotas (none: kop
    # enforces no quotas)
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
    # quotas cannot be set: AlterClientQuotas is not served, and the tool says so
    quota = java.run_class(
        java.CONFIG_COMMAND,
        [
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            str(props),
            "--alter",
            "--add-config",
            "producer_byte_rate=1024",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
        check=False,
    )
    assert quota.returncode != 0
    assert "ALTER_CLIENT_QUOTAS" in quota.stdout + quota.stderr, quota.stdout + quota.stderr
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


# ---- Python hooks ------------------------------------------------------------------------------


class CountingAuthorizer:
    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, str], int] = {}
        self.lock = threading.Lock()

    def authorize(self, ctx: Any, op: Any, resource: Any) -> Any:
        key = (str(ctx.principal), op.name, resource.name)
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
        if resource.name.startswith("boom-"):
            raise RuntimeError("hook bug")
        if resource.name.startswith("hang-"):
            time.sleep(5)
        if resource.name.startswith("deny-"):
            return False
        if resource.name.startswith("short-"):
            return kop.Decision(True, ttl_ms=0)  # never cached
        return True


async def async_authenticator(username: str, password: str, conn: Any) -> Any:
    await asyncio.sleep(0)
    if username == "boom":
        raise RuntimeError("authenticator bug")
    if (
        username == "hooked"
        and password == "hook-pw"
        and conn.security_protocol == "SASL_PLAINTEXT"
    ):
        return kop.Principal("User", "hooked-user")
    return False


@pytest.mark.timeout(120)
def test_hooks_cache_fail_closed_and_time_out(pki: Pki, tmp_path: Path) -> None:
    hook = CountingAuthorizer()
    srv = Kop(
        tmp_path / "data",
        pki,
        listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
        authorizer_hook=hook,
        authenticator_hook=async_authenticator,
        hook_timeout_ms=500,
        failed_authentication_delay_ms=0,
        auto_create_topics=True,
    )
    try:
        conf = srv.ck_conf("SASL_PLAINTEXT", "hooked", password="hook-pw")
        topic = ck.unique("cached")
        for _ in range(3):
            assert produce(conf, topic, n=20) == [None] * 20
        write_key = ("User:hooked-user", "WRITE", topic)
        assert hook.calls[write_key] == 1, hook.calls  # one call per key per TTL
        calls_before = srv.server.authorizer_hook_calls
        srv.server.invalidate_authorization_cache()
        assert produce(conf, topic, n=1) == [None]
        assert hook.calls[write_key] == 2
        assert srv.server.authorizer_hook_calls > calls_before
        short = ck.unique("short")
        assert produce(conf, short, n=1) == [None]
        assert produce(conf, short, n=1) == [None]
        assert hook.calls[("User:hooked-user", "WRITE", short)] >= 2  # ttl 0: asked each time
        # denied, raising and hanging hooks all deny, and nothing is written
        for prefix in ("deny", "boom", "hang"):
            t = ck.unique(prefix)
            started = time.monotonic()
            assert set(produce(conf, t, n=1, timeout=10)) == {"TOPIC_AUTHORIZATION_FAILED"}, prefix
            if prefix == "hang":
                assert time.monotonic() - started < 8
        # the authenticator hook: raising or wrong passwords are rejected
        for user, pw in (("boom", "x"), ("hooked", "bad"), ("nobody", "x")):
            bad = srv.ck_conf("SASL_PLAINTEXT", user, password=pw)
            errors = produce(bad, ck.unique("authn"), n=1, timeout=5)
            assert errors and errors[0] is not None
        # sasl_users still work without asking the authenticator
        assert produce(srv.ck_conf("SASL_PLAINTEXT", "alice"), ck.unique("cfg-user"), n=1) == [None]
    finally:
        srv.stop()


@pytest.mark.timeout(60)
def test_session_lifetime_is_reported_and_enforced(pki: Pki, tmp_path: Path) -> None:
    srv = Kop(
        tmp_path / "d", pki, listeners=[f"SASL_PLAINTEXT://{HOST}:0"], sasl_session_lifetime_ms=1500
    )
    try:
        host, port = srv.addr["SASL_PLAINTEXT"].split(":")
        with wire.connect(host, int(port)) as s:
            assert _handshake(s, "PLAIN")[0] == 0
            wire.send_all(
                s, wire.request(SASL_AUTHENTICATE, 1, 2, wire.nbytes(b"\0alice\0alice-secret"))
            )
            frame = wire.read_frame(s)
            (lifetime,) = struct.unpack(">q", frame[-8:])
            assert lifetime == 1500
            wire.send_all(s, _metadata_v1("lifetime-1"))
            wire.read_frame(s)
            # KIP-368 re-authentication with the same principal keeps the connection
            assert _handshake(s, "PLAIN", cid=3)[0] == 0
            assert _authenticate(s, b"\0alice\0alice-secret", cid=4)[0] == 0
            time.sleep(1.7)
            wire.send_all(s, _metadata_v1("lifetime-2"))
            assert wire.expect_closed(s) == b""  # expired: closed
        # clients that re-authenticate by themselves keep working past the lifetime
        conf = srv.ck_conf("SASL_PLAINTEXT", "alice", "SCRAM-SHA-256")
        topic = ck.unique("reauth")
        p = Producer({**conf, "retries": 0})
        delivered: list[Any] = []
        for _ in range(4):
            p.produce(topic, value=b"x", on_delivery=lambda e, m: delivered.append(e))
            p.flush(10)
            time.sleep(0.8)
        assert delivered == [None] * 4
    finally:
        srv.stop()


# ---- SCRAM credentials and OAUTHBEARER tokens from Python hooks, authorized operations --------


class CredentialStore:
    """A SCRAM credential hook (async) that counts its calls."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}

    async def __call__(self, username: str, mechanism: str, conn: Any) -> Any:
        await asyncio.sleep(0)
        self.calls[(username, mechanism)] = self.calls.get((username, mechanism), 0) + 1
        if username == "dora":  # a password: kop derives the credential
            return "dora-secret"
        if username == "erin":  # a stored credential, as Kafka keeps it
            return kop.ScramCredential.from_password(mechanism, "erin-secret", iterations=8192)
        if username == "boom":
            raise RuntimeError("credential store down")
        return None


def validate_token(token: str, conn: Any) -> Any:
    """An OAUTHBEARER validator: tokens 'tok-NAME' log in as User:NAME."""
    if token == "raise":
        raise ValueError("bad token")
    return kop.Principal("User", token[4:]) if token.startswith("tok-") else None


def own_prefix_authorizer(ctx: Any, op: Any, resource: Any) -> bool:
    """Topics and groups starting with the principal's name (groups: READ/DESCRIBE only);
    DESCRIBE and IDEMPOTENT_WRITE (idempotent producers) on the cluster."""
    own = resource.name.startswith(ctx.principal.name + "-")
    if resource.type == kop.ResourceType.TOPIC:
        return own
    if resource.type == kop.ResourceType.GROUP:
        return own and op in (kop.Operation.READ, kop.Operation.DESCRIBE)
    cluster_ops = (kop.Operation.DESCRIBE, kop.Operation.IDEMPOTENT_WRITE)
    return resource.type == kop.ResourceType.CLUSTER and op in cluster_ops


@pytest.mark.timeout(180)
def test_scram_and_oauthbearer_hooks_and_authorized_operations(pki: Pki, tmp_path: Path) -> None:
    store = CredentialStore()
    srv = Kop(
        tmp_path / "d",
        pki,
        listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
        sasl_enabled_mechanisms=["SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"],
        scram_credentials_hook=store,
        oauthbearer_validator_hook=validate_token,
        authorizer_hook=own_prefix_authorizer,
        failed_authentication_delay_ms=0,
        auto_create_topics=True,
    )

    def oauth(token: str) -> dict[str, Any]:
        conf = srv.ck_conf("SASL_PLAINTEXT", "x", "OAUTHBEARER", password="")
        for k in ("sasl.username", "sasl.password"):
            conf.pop(k)
        conf["oauth_cb"] = lambda _cfg: (token, time.time() + 600)
        return conf

    try:
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            for user in ("dora", "erin"):
                conf = srv.ck_conf("SASL_PLAINTEXT", user, mech, password=f"{user}-secret")
                assert produce(conf, ck.unique(f"{user}-t"), n=2) == [None] * 2, (user, mech)
        # kafka-python's SCRAM client (an idempotent producer) against a stored credential
        # with 8192 iterations
        kp = KafkaProducer(
            bootstrap_servers=srv.addr["SASL_PLAINTEXT"],
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="erin",
            sasl_plain_password="erin-secret",
        )
        kp.send(ck.unique("erin-kp"), b"kp", partition=0).get(timeout=30)
        kp.close()
        # the credential is cached in Rust: one hook call per user and mechanism
        dora = srv.ck_conf("SASL_PLAINTEXT", "dora", "SCRAM-SHA-256", password="dora-secret")
        assert produce(dora, ck.unique("dora-t"), n=1) == [None]
        assert store.calls[("dora", "SCRAM-SHA-256")] == 1, store.calls
        for user, pw in (("dora", "wrong"), ("nobody", "x"), ("boom", "x")):
            bad = srv.ck_conf("SASL_PLAINTEXT", user, "SCRAM-SHA-256", password=pw)
            errors = produce(bad, ck.unique(f"{user}-t"), n=1, timeout=3)
            assert errors and errors[0] is not None, user
        # a new password takes effect once the cache is forgotten
        srv.server.invalidate_authorization_cache()
        assert produce(dora, ck.unique("dora-t"), n=1) == [None]
        assert store.calls[("dora", "SCRAM-SHA-256")] == 2

        # OAUTHBEARER through the validator hook; the authorizer sees its principal
        frank = oauth("tok-frank")
        topic = ck.unique("frank-t")
        assert produce(frank, topic, n=2) == [None] * 2
        assert produce(frank, ck.unique("other"), n=1, timeout=10) == ["TOPIC_AUTHORIZATION_FAILED"]
        for bad_token in ("forged", "raise"):
            errors = produce(oauth(bad_token), ck.unique("frank-t"), n=1, timeout=3)
            assert errors and errors[0] is not None, bad_token

        # authorized operations, per principal, from the hook
        group = ck.unique("frank-g")
        consumer = Consumer({**frank, "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        finally:
            consumer.close()
        admin = AdminClient(frank)
        calls_before = srv.server.authorizer_hook_calls
        described = admin.describe_topics(
            TopicCollection([topic]), include_authorized_operations=True
        )[topic].result(30)
        assert srv.server.authorizer_hook_calls - calls_before <= 1
        assert {op.name for op in described.authorized_operations} == {
            "READ",
            "WRITE",
            "CREATE",
            "DELETE",
            "ALTER",
            "DESCRIBE",
            "DESCRIBE_CONFIGS",
            "ALTER_CONFIGS",
        }
        cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
        assert {op.name for op in cluster.authorized_operations} == {
            "DESCRIBE",
            "IDEMPOTENT_WRITE",
        }
        groups = admin.describe_consumer_groups([group], include_authorized_operations=True)
        described_group = groups[group].result(30)
        assert {op.name for op in described_group.authorized_operations} == {"READ", "DESCRIBE"}
    finally:
        srv.stop()


# ---- OAUTHBEARER and KoP's PLAIN token:<jwt> -------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]) -> str:
    signed = (
        _b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
        + "."
        + _b64url(json.dumps(claims).encode())
    )
    r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return signed + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@pytest.mark.timeout(120)
def test_oauthbearer_and_plain_token(pki: Pki, tmp_path: Path) -> None:
    key, rogue = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "jwt-pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    srv = Kop(
        tmp_path / "d",
        pki,
        listeners=[f"SASL_PLAINTEXT://{HOST}:0", f"SASL_SSL://{HOST}:0"],
        sasl_enabled_mechanisms=["PLAIN", "OAUTHBEARER"],
        oauthbearer_public_key_files=[str(pub)],
        oauthbearer_audience="kafka",
        plain_token_auth=True,
        authorizer="acl",
        super_users=["User:svc-writer"],
        failed_authentication_delay_ms=0,
    )
    now = int(time.time())
    good = es256_jwt(key, {"sub": "svc-writer", "aud": "kafka", "exp": now + 600})
    expired = es256_jwt(key, {"sub": "svc-writer", "aud": "kafka", "exp": now - 5})
    forged = es256_jwt(rogue, {"sub": "svc-writer", "aud": "kafka", "exp": now + 600})
    other_aud = es256_jwt(key, {"sub": "svc-writer", "aud": "other", "exp": now + 600})

    def oauth(listener: str, token: str) -> dict[str, Any]:
        conf = srv.ck_conf(listener, "x", "OAUTHBEARER", password="")
        for k in ("sasl.username", "sasl.password"):
            conf.pop(k)
        conf["oauth_cb"] = lambda _cfg: (token, time.time() + 600)
        return conf

    try:
        for listener in ("SASL_PLAINTEXT", "SASL_SSL"):
            topic = ck.unique("oauth")
            conf = oauth(listener, good)
            assert produce(conf, topic) == [None] * 5
            assert consume(conf, topic, 5) == [f"v{i}".encode() for i in range(5)]
        kop_style = srv.ck_conf("SASL_PLAINTEXT", "public/default", password=f"token:{good}")
        assert produce(kop_style, ck.unique("kop-token"), n=2) == [None] * 2
        for bad in (expired, forged, other_aud):
            t = ck.unique("bad-token")
            errors = produce(oauth("SASL_PLAINTEXT", bad), t, n=1, timeout=5)
            assert errors and errors[0] is not None
            errors = produce(
                srv.ck_conf("SASL_PLAINTEXT", "u", password=f"token:{bad}"), t, n=1, timeout=5
            )
            assert errors and errors[0] is not None
        with _sasl_sock(srv) as s:
            assert _handshake(s, "OAUTHBEARER")[0] == 0
            err, msg, _ = _authenticate(s, f"n,,\x01auth=Bearer {expired}\x01\x01".encode())
            assert err == 58 and msg and "expired" in msg
    finally:
        srv.stop()


# ---- the CLI: listeners, users and a module:callable hook from flags / KOP_* ------------------

HOOK_MODULE = """
def authorize(ctx, op, resource):
    # only topics starting with the principal's name
    return resource.type.name != "TOPIC" or resource.name.startswith(ctx.principal.name + "-")
"""


@pytest.mark.timeout(120)
def test_cli_serve_with_sasl_and_a_hook_from_a_module(tmp_path: Path) -> None:
    (tmp_path / "kop_test_hooks.py").write_text(HOOK_MODULE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOP_")}
    env["PYTHONPATH"] = str(tmp_path)
    env["KOP_SASL_USERS"] = "alice:alice-secret"
    log = (tmp_path / "kop.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "kop", "serve",
            "--listeners", f"SASL_PLAINTEXT://{HOST}:{port}",
            "--storage", f"file://{tmp_path / 'data'}",
            "--authorizer", "kop_test_hooks:authorize",
            "--num-partitions", "1",
        ],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wire.wait_until_serving(HOST, port, 30.0, alive=lambda: proc.poll() is None)
        conf = {
            "bootstrap.servers": f"{HOST}:{port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "alice",
            "sasl.password": "alice-secret",
        }
        assert produce(conf, ck.unique("alice-cli"), n=2) == [None, None]
        assert produce(conf, ck.unique("bob-cli"), n=1, timeout=10) == [
            "TOPIC_AUTHORIZATION_FAILED"
        ]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
