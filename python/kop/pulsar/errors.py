"""The one error the Pulsar bridge raises."""

from __future__ import annotations

__all__ = ["PulsarStorageError"]


class PulsarStorageError(OSError):
    """Pulsar (or its admin API) failed or is unreachable; the message names the URL and topic.

    Rust maps it to KAFKA_STORAGE_ERROR, or for appends to NOT_LEADER_OR_FOLLOWER and a takeover.
    """
