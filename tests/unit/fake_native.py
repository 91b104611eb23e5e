"""An in-memory stand-in for kop._native that follows docs/native-api.md (unit tests only)."""

from __future__ import annotations

import json
import re
import threading
import time
import types
from typing import Any, ClassVar


class FakeNativeServer:
    instances: ClassVar[list[FakeNativeServer]] = []
    log_levels: ClassVar[list[str]] = []
    start_error: ClassVar[BaseException | None] = None
    # Behaviour hooks for tests: called on each wait(); may stop the server, raise a signal...
    on_wait: ClassVar[Any] = None
    # Called inside start() (storage opening), before the server runs.
    on_start: ClassVar[Any] = None

    def __init__(
        self,
        config_json: str,
        authenticator: Any = None,
        authorizer: Any = None,
        scram_credentials: Any = None,
        oauthbearer_validator: Any = None,
        storage_backend: Any = None,
        tenant_backends: Any = None,
    ) -> None:
        self.config: dict[str, Any] = json.loads(config_json)
        self.storage_backend = storage_backend
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.scram_credentials = scram_credentials
        self.oauthbearer_validator = oauthbearer_validator
        self.stop_calls: list[float] = []
        self.wait_calls = 0
        self._running = False
        self._stopped = threading.Event()
        type(self).instances.append(self)

    def start(self) -> None:
        if self.on_start is not None:
            self.on_start(self)
        if self.start_error is not None:
            raise self.start_error
        self._running = True

    def bound_addresses(self) -> list[tuple[str, str, int]]:
        out = []
        for i, listener in enumerate(self.config["listeners"]):
            m = re.fullmatch(r"(\w+)://\[?([^\]]+?)\]?:(\d+)", listener)
            assert m, listener
            port = int(m[3]) or 40000 + i  # port 0: "the OS picked" one
            out.append((m[1], m[2], port))
        return out

    def stop(self, timeout_secs: float) -> None:
        self.stop_calls.append(timeout_secs)
        self._running = False
        self._stopped.set()

    def wait(self, timeout_secs: float | None) -> bool:
        self.wait_calls += 1
        if self.on_wait is not None:
            self.on_wait(self)
        return self._stopped.wait(timeout_secs)

    def is_running(self) -> bool:
        return self._running

    def invalidate_authorization_cache(self) -> None:
        pass

    def authorizer_hook_calls(self) -> int:
        return 0

    def bridge_stats(self) -> dict[str, int]:
        return {"queued": 0, "workers": 1, "busy": 0, "done": 7}

    def metrics(self) -> str:
        return "# TYPE kop_fetch_sessions gauge\nkop_fetch_sessions 0\n"

    def metrics_address(self) -> tuple[str, int] | None:
        return None


def _no_log_records(timeout_secs: float, max_records: int) -> list[Any]:
    time.sleep(min(timeout_secs, 0.05))
    return []


def make_module() -> types.ModuleType:
    """A fresh fake module with its own class state."""
    cls = type("NativeServer", (FakeNativeServer,), {"instances": [], "log_levels": []})
    module = types.ModuleType("kop._native")
    module.NativeServer = cls  # type: ignore[attr-defined]
    module.init_logging = cls.log_levels.append  # type: ignore[attr-defined]
    module.take_log_records = _no_log_records  # type: ignore[attr-defined]
    module.log_record_counts = lambda: (0, 0)  # type: ignore[attr-defined]
    module.version = lambda: "0.0.0-fake"  # type: ignore[attr-defined]
    return module
