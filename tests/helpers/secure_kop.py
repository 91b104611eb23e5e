"""A kop with SASL, TLS and hook options for the security end-to-end tests, and the client
calls they share (produce, consume, end offsets, raw SASL steps)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from helpers import ck, wire
from helpers.certs import Pki
from helpers.servers import HOST, make_server

kop = pytest.importorskip("kop")

USERS = ("admin:admin-secret", "alice:alice-secret", "bob:bob-secret")
PASSWORDS = dict(u.split(":", 1) for u in USERS)


class Kop:
    """An embedded kop with several listeners (``helpers.servers.make_server``); ``addr[NAME]``
    is each one's host:port, ``server`` the running ``kop.Server``."""

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
        hooks = {
            name: config.pop(f"{name}_hook") for name in hook_names if f"{name}_hook" in config
        }
        self.handle = make_server("kop-embedded", data, hooks=hooks, **config)
        self.pki = pki
        self.start()

    @property
    def server(self) -> Any:
        return self.handle.server

    def start(self) -> None:
        self.handle.start()
        self.addr = {name: f"{HOST}:{port}" for name, _, port in self.server.bound_addresses}

    def stop(self) -> None:
        self.handle.stop()

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


# api keys
METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 17, 36


def handshake(sock: socket.socket, mech: str, cid: int = 1) -> tuple[int, list[str]]:
    wire.send_all(sock, wire.request(SASL_HANDSHAKE, 1, cid, wire.string(mech)))
    r = wire._Reader(wire.read_frame(sock))
    assert r.i32() == cid
    err = r.i16()
    mechs = [r.string() or "" for _ in range(r.i32())]
    return err, mechs


def authenticate(sock: socket.socket, token: bytes, cid: int = 2) -> tuple[int, str | None, bytes]:
    wire.send_all(sock, wire.request(SASL_AUTHENTICATE, 1, cid, wire.nbytes(token)))
    r = wire._Reader(wire.read_frame(sock))
    assert r.i32() == cid
    err = r.i16()
    msg = r.string()
    size = r.i32()
    data = r.take(size) if size > 0 else b""
    r.i64()
    return err, msg, data


def metadata_v1(topic: str, cid: int = 9) -> bytes:
    return wire.request(METADATA, 1, cid, wire.i32(1) + wire.string(topic))


def sasl_sock(srv: Kop) -> socket.socket:
    host, port = srv.addr["SASL_PLAINTEXT"].split(":")
    return wire.connect(host, int(port))
