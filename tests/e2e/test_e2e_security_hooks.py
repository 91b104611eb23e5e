"""Security end to end, Python hooks (kop only): authorizer / authenticator hooks with the
decision cache and time-outs, session lifetimes, SCRAM credentials and OAUTHBEARER tokens from
hooks, KoP's PLAIN `token:<jwt>`, and `kop serve` with a module:callable hook from flags."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from kafka import KafkaProducer

from helpers import ck, wire
from helpers.certs import Pki, make_pki
from helpers.secure_kop import (
    SASL_AUTHENTICATE,
    Kop,
    authenticate,
    consume,
    handshake,
    metadata_v1,
    produce,
    sasl_sock,
)
from helpers.servers import HOST, start_server

kop = pytest.importorskip("kop")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# ---- Python hooks ------------------------------------------------------------------------------


class CountingAuthorizer:
    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, str], int] = {}
        self.tenants: set[str | None] = set()
        self.lock = threading.Lock()

    def authorize(self, ctx: Any, op: Any, resource: Any) -> Any:
        key = (str(ctx.principal), op.name, resource.name)
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            self.tenants.add(ctx.tenant)
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


def hook_metric(srv: Any, family: str, hook: str) -> float:
    """One hook's sample of `family` in the server's metrics text."""
    prefix = f'{family}{{hook="{hook}"}} '
    lines = [line for line in srv.server.metrics().splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0][len(prefix) :])


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
        assert hook.tenants == {None}  # no `tenants` option (tests/pulsar has the others)
        calls_before = srv.server.authorizer_hook_calls
        srv.server.invalidate_authorization_cache()
        assert produce(conf, topic, n=1) == [None]
        assert hook.calls[write_key] == 2
        assert srv.server.authorizer_hook_calls > calls_before
        # every crossing ran on kop-py's worker pool, which has nothing left queued
        pool = srv.server.bridge_stats()
        assert pool["done"] >= srv.server.authorizer_hook_calls, pool
        assert pool["queued"] == 0 and 1 <= pool["workers"] <= 6, pool
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
        # every login asked the authenticator; the raising one counts as a failure
        assert hook_metric(srv, "kop_hook_calls_total", "authenticator") >= 4
        assert hook_metric(srv, "kop_hook_failures_total", "authenticator") >= 1
        assert hook_metric(srv, "kop_hook_duration_seconds_count", "authenticator") >= 4
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
            assert handshake(s, "PLAIN")[0] == 0
            wire.send_all(
                s, wire.request(SASL_AUTHENTICATE, 1, 2, wire.nbytes(b"\0alice\0alice-secret"))
            )
            frame = wire.read_frame(s)
            (lifetime,) = struct.unpack(">q", frame[-8:])
            assert lifetime == 1500
            wire.send_all(s, metadata_v1("lifetime-1"))
            wire.read_frame(s)
            # KIP-368 re-authentication with the same principal keeps the connection
            assert handshake(s, "PLAIN", cid=3)[0] == 0
            assert authenticate(s, b"\0alice\0alice-secret", cid=4)[0] == 0
            time.sleep(1.7)
            wire.send_all(s, metadata_v1("lifetime-2"))
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
        # a forged token is rejected (an answer), a raising validator is a failure
        assert hook_metric(srv, "kop_hook_calls_total", "oauthbearer_validator") >= 3
        assert hook_metric(srv, "kop_hook_failures_total", "oauthbearer_validator") >= 1

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
        with sasl_sock(srv) as s:
            assert handshake(s, "OAUTHBEARER")[0] == 0
            err, msg, _ = authenticate(s, f"n,,\x01auth=Bearer {expired}\x01\x01".encode())
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
    srv = start_server(
        "kop-cli",
        tmp_path / "data",
        listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
        env={"PYTHONPATH": str(tmp_path), "KOP_SASL_USERS": "alice:alice-secret"},
        args=["--authorizer", "kop_test_hooks:authorize", "--num-partitions", "1"],
    )
    try:
        conf = {
            "bootstrap.servers": srv.bootstrap,
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
        srv.stop()
