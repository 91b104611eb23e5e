"""kop: a Kafka wire-protocol server with an embedded log (and, later, Apache Pulsar) storage.

import kop
with kop.Server(kop.Config(listeners=["PLAINTEXT://127.0.0.1:0"], storage="memory://")) as s:
    print(s.bootstrap_servers)
"""

from __future__ import annotations

from importlib import metadata

from kop.config import Config, ConfigError
from kop.hooks import (
    ConnectionInfo,
    Decision,
    Operation,
    Principal,
    RequestContext,
    Resource,
    ResourceType,
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
    "Server",
    "__version__",
]

try:
    __version__ = metadata.version("kop")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
