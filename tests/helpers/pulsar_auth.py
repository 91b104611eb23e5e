"""A Pulsar standalone with token authentication and authorization on, for the tests of
``authorizer = "pulsar"`` (and tenants): its own start (scripts/pulsar.sh with PULSAR_EXTRA_CONF),
RS256 tokens signed by a key made here, the role ``admin`` a super user.

kop validates the same tokens (PLAIN ``token:<jwt>``) with the public key in ``public_pem``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from helpers.pulsar import _free_port, _run_script

SUPER_USER = "admin"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class AuthPulsar:
    url: str
    admin_url: str
    data_dir: Path
    env: dict[str, str]
    key: rsa.RSAPrivateKey
    public_pem: Path

    def token(self, role: str, ttl_s: int = 3600) -> str:
        """An RS256 JWT with ``sub = role``, as ``pulsar tokens create`` makes."""
        claims = {"sub": role, "exp": int(time.time()) + ttl_s}
        header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        signed = f"{header}.{_b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64url(sig)}"

    def admin(self, method: str, path: str, body: Any = None, role: str = SUPER_USER) -> Any:
        """The admin REST API as ``role``; returns the decoded JSON body (or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.admin_url + path,
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.token(role)}",
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        stopped = _run_script("stop", str(self.data_dir), env=self.env, timeout=120)
        if stopped.returncode != 0:
            print(f"scripts/pulsar.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}")
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_auth_pulsar() -> AuthPulsar:
    data_dir = Path(tempfile.mkdtemp(prefix="kop-test-pulsar-auth-"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    public_pem = data_dir / "token-public.pem"
    public_pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = dict(os.environ)
    env["PULSAR_BROKER_PORT"] = str(_free_port())
    env["PULSAR_WEB_PORT"] = str(_free_port())
    while env["PULSAR_WEB_PORT"] == env["PULSAR_BROKER_PORT"]:
        env["PULSAR_WEB_PORT"] = str(_free_port())
    service = AuthPulsar(
        url=f"pulsar://127.0.0.1:{env['PULSAR_BROKER_PORT']}",
        admin_url=f"http://127.0.0.1:{env['PULSAR_WEB_PORT']}",
        data_dir=data_dir,
        env=env,
        key=key,
        public_pem=public_pem,
    )
    admin_token = service.token(SUPER_USER, ttl_s=24 * 3600)
    extra = data_dir / "auth.conf"
    extra.write_text(
        "authenticationEnabled=true\n"
        "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken\n"
        f"tokenPublicKey=data:;base64,{base64.b64encode(der).decode()}\n"
        "authorizationEnabled=true\n"
        f"superUserRoles={SUPER_USER}\n"
        "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken\n"
        f"brokerClientAuthenticationParameters=token:{admin_token}\n"
    )
    env["PULSAR_EXTRA_CONF"] = str(extra)
    env["PULSAR_ADMIN_TOKEN"] = admin_token
    started = _run_script("start", str(data_dir), env=env, timeout=900)
    if started.returncode != 0:
        _run_script("stop", str(data_dir), env=env, timeout=120)
        raise RuntimeError(
            f"scripts/pulsar.sh start (with auth) failed (exit {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}"
        )
    return service


def refused(call: Any) -> int | None:
    """The HTTP status a refused admin call answered (None when it succeeded)."""
    try:
        call()
    except urllib.error.HTTPError as err:
        return err.code
    return None
