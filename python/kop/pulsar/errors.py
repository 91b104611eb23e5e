"""The one error the Pulsar bridge raises."""

from __future__ import annotations

__all__ = ["PulsarStorageError"]


class PulsarStorageError(OSError):
    """Pulsar (or its admin API) failed or is unreachable; the message names the URL and topic.

    ``permanent``: trying again cannot help (Pulsar refused kop's credentials); start-up gives up
    at once instead of waiting for Pulsar. Rust maps the error to KAFKA_STORAGE_ERROR, or for
    appends to NOT_LEADER_OR_FOLLOWER and a takeover.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
