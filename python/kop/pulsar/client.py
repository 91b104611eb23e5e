"""The few ways kop uses ``pulsar-client``: the client itself, owner producers, bounded reads.

Every blocking call here has a timeout, and every failure becomes a PulsarStorageError that names
the Pulsar URL and topic.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kop.lifecycle import StartCancelled, sleep_unless
from kop.pulsar.errors import PulsarStorageError

try:
    import pulsar
except ImportError as _err:  # an optional extra: say which
    raise ImportError(
        "kop's Pulsar storage needs the pulsar-client package: pip install 'kop[pulsar]'"
    ) from _err

__all__ = [
    "MessageKey",
    "PulsarIO",
    "message_id",
    "message_key",
]

log = logging.getLogger("kop.pulsar")

# (ledger id, entry id): the total order of positions in one non-partitioned topic; kop never
# uses Pulsar-side batching, so the batch index carries nothing.
MessageKey = tuple[int, int]

# Errors that waiting will not change: kop's credentials are refused.
_REFUSED = (pulsar.AuthenticationError, pulsar.AuthorizationError)

_HANDOFF_ATTEMPTS = 5
_HANDOFF_BACKOFF_S = 0.05


def message_key(msg_id: Any) -> MessageKey:
    return (msg_id.ledger_id(), msg_id.entry_id())


def message_id(ledger_id: int, entry_id: int) -> Any:
    """The id of entry ``entry_id`` of ledger ``ledger_id`` of a non-partitioned topic."""
    return pulsar.MessageId(partition=-1, ledger_id=ledger_id, entry_id=entry_id)


class PulsarIO:
    """One ``pulsar.Client`` and the helpers every store uses."""

    def __init__(
        self,
        service_url: str,
        token: str | None,
        operation_timeout_s: float,
        send_timeout_ms: int,
        log_path: str | None,
    ) -> None:
        self.url = service_url
        self.send_timeout_ms = send_timeout_ms
        self.operation_timeout_ms = max(1, int(operation_timeout_s * 1000))
        # The client logs from its own C++ threads. Through a Python logger, a line logged while
        # the interpreter shuts down kills the process (std::terminate, seen on `kop serve`
        # exit), so its log stays in C++: warnings and errors on stdout (the client's console
        # logger), or everything at INFO in `log_path`.
        logger: Any = (
            pulsar.FileLogger(pulsar.LoggerLevel.Info, log_path)
            if log_path
            else pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)
        )
        with self.errors("create a client"):
            self.client = pulsar.Client(
                service_url,
                authentication=pulsar.AuthenticationToken(token) if token else None,
                operation_timeout_seconds=max(1, round(operation_timeout_s)),
                connection_timeout_ms=self.operation_timeout_ms,
                logger=logger,
            )
        # Readers closed off the caller's path (a close waits for the broker's answer).
        self._to_close: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closer: threading.Thread | None = None
        self._closer_lock = threading.Lock()

    def close(self) -> None:
        self._to_close.put(None)
        with contextlib.suppress(Exception):
            self.client.close()

    def close_later(self, thing: Any) -> None:
        """Close ``thing`` (a reader) on a background thread: the read that let it go, e.g. a
        fetch that moved a partition's cursor, does not wait for Pulsar's answer."""
        if thing is None:
            return
        with self._closer_lock:
            if self._closer is None:
                self._closer = threading.Thread(
                    target=self._close_queued, name="kop-pulsar-closer", daemon=True
                )
                self._closer.start()
        self._to_close.put(thing)

    def _close_queued(self) -> None:
        while (thing := self._to_close.get()) is not None:
            self.close_quietly(thing)

    @contextlib.contextmanager
    def errors(self, what: str, topic: str | None = None) -> Iterator[None]:
        """Turn anything the client raises into a PulsarStorageError naming URL and topic."""
        try:
            yield
        except PulsarStorageError:
            raise
        except Exception as err:
            raise self.error(what, topic, err) from err

    def error(self, what: str, topic: str | None, err: Exception) -> PulsarStorageError:
        where = f"{self.url} {topic}" if topic else self.url
        return PulsarStorageError(
            f"Pulsar {where}: {what} failed: {type(err).__name__}: {err}",
            permanent=isinstance(err, _REFUSED),
        )

    # -- producers -------------------------------------------------------------------------------

    def owner_producer(self, topic: str, batching: bool = False) -> Any:
        """Take ``topic`` over as its single writer: acquire with ExclusiveWithFencing (the topic
        epoch moves, the previous writer is fenced), close that producer and hold the topic with
        a plain Exclusive one, whose stale reconnects cannot evict a later owner
        (docs/pulsar-fencing.md S2, S4).

        Between the close and the Exclusive create the broker can still count a producer on the
        topic for a moment: the fenced writer's one reconnect attempt ("existing exclusive
        producer") or a producer it is still removing ("existing shared producers"). Seen on 4.2.4
        in about 1 of 5 takeovers while the previous writer kept sending.
        Both are gone within milliseconds, so the hand-off is retried a few times.

        ``batching``: Pulsar batching on, for the ``pulsar`` entry format (a Kafka batch's records
        are one Pulsar batch entry: the writer flushes after each Kafka batch)."""
        mode = pulsar.ProducerAccessMode
        for attempt in range(_HANDOFF_ATTEMPTS):
            with self.errors("acquire the producer (ExclusiveWithFencing)", topic):
                self._producer(topic, mode.ExclusiveWithFencing).close()
            try:
                return self._producer(topic, mode.Exclusive, batching)
            except (pulsar.ProducerFenced, pulsar.ProducerBusy) as err:
                if attempt + 1 == _HANDOFF_ATTEMPTS:
                    what = f"hold the producer (Exclusive, {_HANDOFF_ATTEMPTS} attempts)"
                    raise self.error(what, topic, err) from err
                log.info("%s: Exclusive producer refused (%s), taking over again", topic, err)
                time.sleep(_HANDOFF_BACKOFF_S * (attempt + 1))
            except Exception as err:
                raise self.error("hold the producer (Exclusive)", topic, err) from err
        raise AssertionError("unreachable")

    def wait_for_exclusive_producer(
        self, topic: str, poll_s: float = 0.5, cancelled: Callable[[], bool] = lambda: False
    ) -> Any:
        """Hold ``topic`` with a plain Exclusive producer once nobody else does (a standby
        waiting for the serving instance to go away). Polls: the client's WaitForExclusive mode
        is not used from Python (docs/pulsar-fencing.md). StartCancelled once ``cancelled()``."""
        waiting_since = time.monotonic()
        while True:
            if cancelled():
                raise StartCancelled(f"stopped while standing by for {topic}")
            try:
                producer = self._producer(topic, pulsar.ProducerAccessMode.Exclusive)
            except (pulsar.ProducerBusy, pulsar.ProducerFenced) as err:
                if time.monotonic() - waiting_since < poll_s * 1.5:
                    log.info("%s is held by another kop instance; standing by (%s)", topic, err)
                sleep_unless(cancelled, poll_s)
                continue
            except Exception as err:
                raise self.error("hold the producer (Exclusive)", topic, err) from err
            log.info("%s: free after %.1f s; taking over", topic, time.monotonic() - waiting_since)
            return producer

    def shared_producer(self, topic: str) -> Any:
        with self.errors("create a producer", topic):
            return self._producer(topic, pulsar.ProducerAccessMode.Shared)

    def _producer(self, topic: str, access_mode: Any, batching: bool = False) -> Any:
        # Batching: only the writer's flush after each Kafka batch ends a Pulsar batch.
        batch_limits = (
            {
                "batching_max_messages": 1_000_000,
                "batching_max_allowed_size_in_bytes": 1 << 30,
                "batching_max_publish_delay_ms": 60_000,
            }
            if batching
            else {}
        )
        return self.client.create_producer(
            topic,
            access_mode=access_mode,
            batching_enabled=batching,  # else one Kafka batch = one Pulsar message
            **batch_limits,
            send_timeout_millis=self.send_timeout_ms,
            # Rust bounds what is in flight; the client's default of 1000 would turn a burst into
            # ProducerQueueIsFull, which reads as a lost partition.
            # (one message per record with batching: more of them)
            max_pending_messages=1_000_000 if batching else 100_000,
            block_if_queue_full=False,  # append must never block
        )

    # -- readers ---------------------------------------------------------------------------------

    def reader(
        self, topic: str, start: Any = None, queue_size: int = 1000, read_compacted: bool = False
    ) -> Any:
        """A reader at ``start`` (a message id, inclusive) or at the earliest message;
        ``read_compacted``: of the topic's compacted view (the last message of each key)."""
        with self.errors("create a reader", topic):
            return self.client.create_reader(
                topic,
                pulsar.MessageId.earliest if start is None else start,
                receiver_queue_size=queue_size,
                start_message_id_inclusive=True,
                is_read_compacted=read_compacted,
            )

    def read_next(self, reader: Any, topic: str) -> Any:
        with self.errors(f"read (within {self.operation_timeout_ms} ms)", topic):
            return reader.read_next(timeout_millis=self.operation_timeout_ms)

    def drain(self, reader: Any, topic: str) -> Iterator[Any]:
        """Every message from the reader's position to the end of the topic as of now."""
        while True:
            with self.errors("ask for available messages", topic):
                more = reader.has_message_available()
            if not more:
                return
            yield self.read_next(reader, topic)

    def read_until(self, reader: Any, topic: str, stop: MessageKey) -> Iterator[Any]:
        """Messages before ``stop``; consumes ``stop`` itself and ends there."""
        while True:
            msg = self.read_next(reader, topic)
            key = message_key(msg.message_id())
            if key >= stop:
                if key > stop:
                    raise PulsarStorageError(f"Pulsar {self.url} {topic}: skipped past {stop}")
                return
            yield msg

    @staticmethod
    def close_quietly(thing: Any) -> None:
        if thing is not None:
            with contextlib.suppress(Exception):
                thing.close()


def result_ok(res: Any) -> bool:
    return bool(res == pulsar.Result.Ok)


def result_too_large(res: Any) -> bool:
    """Whether a send failed because the message exceeds the broker's maxMessageSize: a
    permanent error of that one message, raised by the client before sending (the producer and
    the partition it holds are unaffected). Every other send error may mean the partition is
    lost (docs/pulsar-fencing.md)."""
    return bool(res == pulsar.Result.MessageTooBig)
