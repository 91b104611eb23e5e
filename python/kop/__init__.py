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

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing at start-up

if TYPE_CHECKING:
    from typing import Any

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

__version__: str  # set on first use, by __getattr__

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

# Where each public name lives. They are imported on first use (PEP 562), so that `kop serve`
# and `kop --version` load only the modules they need: the hooks module alone pulls in asyncio
# (~15-40 ms of start-up).
_HOME = {
    "Config": "kop.config",
    "ConfigError": "kop.config",
    "ConnectionInfo": "kop.hooks",
    "Decision": "kop.hooks",
    "Operation": "kop.hooks",
    "Principal": "kop.hooks",
    "RequestContext": "kop.hooks",
    "Resource": "kop.hooks",
    "ResourceType": "kop.hooks",
    "ScramCredential": "kop.hooks",
    "Server": "kop.server",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _HOME:
        import importlib

        value = getattr(importlib.import_module(_HOME[name]), name)
    else:
        raise AttributeError(f"module 'kop' has no attribute {name!r}")
    globals()[name] = value  # found once; later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _version() -> str:
    # The native module carries the version (maturin takes it from Cargo) and is loaded
    # anyway to serve; importlib.metadata alone costs ~60 ms of start-up.
    try:
        from kop import _native

        return str(_native.version())
    except ImportError:  # built without the extension (docs, unit tests)
        from importlib import metadata

        try:
            return metadata.version("kop")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
