"""kop: a Kafka wire-protocol server. Kafka clients and tools produce, fetch, and manage topics,
consumer groups (classic and KIP-848), ACLs and SCRAM users against it. Records are stored in
kop's own log on disk (``file://PATH``), in memory (``memory://``), or in Apache Pulsar
(``pulsar://HOST:PORT``, with the ``kop[pulsar]`` extra; several kop instances may share it).

Run it with ``kop serve`` (options: ``kop serve --help``, docs/configuration.md) or embed it::

    import kop
    with kop.Server(kop.Config(listeners=["PLAINTEXT://127.0.0.1:0"], storage="memory://")) as s:
        print(s.bootstrap_servers)

Python hooks can authenticate and authorize clients (``kop.Server(authorizer=...,
authenticator=..., scram_credentials=..., oauthbearer_validator=...)``; see ``kop.hooks`` and
docs/security.md).
"""

from __future__ import annotations

from kop.config import Config, ConfigError
from kop.hooks import (
    ConnectionInfo,
    Decision,
    Operation,
    Principal,
    RequestContext,
    Resource,
    ResourceType,
    ScramCredential,
)
from kop.server import Server

__all__ = [
    "Config",
    "ConfigError",
    "ConnectionInfo",
    "Decision",
    "Operation",
    "Principal",
    "RequestContext",
    "Resource",
    "ResourceType",
    "ScramCredential",
    "Server",
    "__version__",
]


def _version() -> str:
    # The native module carries the same version (maturin takes it from Cargo) and is loaded
    # anyway to serve; importlib.metadata alone costs ~60 ms of start-up.
    try:
        from kop import _native

        return _native.version()
    except ImportError:  # built without the extension (docs, unit tests)
        from importlib import metadata

        try:
            return metadata.version("kop")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"


__version__ = _version()
