# Stubs for the Rust extension (rust/kop-py). The contract is docs/native-api.md; CI checks this
# file against the built module with `python -m mypy.stubtest kop._native`.
#
# The constructor is written as __new__ because PyO3's #[new] defines __new__ (the class keeps
# object.__init__); stubtest reads its signature from the class's __text_signature__.
# PyO3's add_class/add_function also fill the module's __all__, so the stub declares it.
# Both were checked with stubtest against a PyO3 0.30 abi3 module built to this contract.

from typing import Any, final

__all__ = [
    "AppendDone",
    "AuthenticateReply",
    "AuthorizeReply",
    "NativeServer",
    "ScramCredentialReply",
    "decode_batch",
    "init_logging",
    "log_record_counts",
    "take_log_records",
    "version",
]

@final
class NativeServer:
    def __new__(
        cls,
        config_json: str,
        authenticator: Any = None,
        authorizer: Any = None,
        scram_credentials: Any = None,
        oauthbearer_validator: Any = None,
        storage_backend: Any = None,
    ) -> NativeServer: ...
    def start(self) -> None: ...
    def bound_addresses(self) -> list[tuple[str, str, int]]: ...
    def stop(self, timeout_secs: float) -> None: ...
    def wait(self, timeout_secs: float | None) -> bool: ...
    def is_running(self) -> bool: ...
    def invalidate_authorization_cache(self) -> None: ...
    def authorizer_hook_calls(self) -> int: ...
    def bridge_stats(self) -> dict[str, int]: ...
    def metrics(self) -> str: ...
    def metrics_address(self) -> tuple[str, int] | None: ...

@final
class AuthorizeReply:
    def ok(self, decisions: list[tuple[bool, int | None]]) -> None: ...
    def err(self, message: str) -> None: ...

@final
class AuthenticateReply:
    def ok(self, principal: str | None) -> None: ...
    def err(self, message: str) -> None: ...

@final
class ScramCredentialReply:
    def ok(
        self,
        salt: bytes,
        iterations: int,
        stored_key: bytes,
        server_key: bytes,
        ttl_ms: int | None = None,
    ) -> None: ...
    def ok_password(self, password: str, ttl_ms: int | None = None) -> None: ...
    def unknown(self) -> None: ...
    def err(self, message: str) -> None: ...

@final
class AppendDone:
    def __call__(self, error: str | None = None, too_large: bool = False) -> None: ...

def decode_batch(
    data: bytes,
) -> list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]: ...
def init_logging(level: str) -> None: ...
def take_log_records(
    timeout_secs: float, max_records: int
) -> list[
    tuple[str, int, str, list[tuple[str, Any]], float, str | None, int | None, str | None]
]: ...
def log_record_counts() -> tuple[int, int]: ...
def version() -> str: ...
