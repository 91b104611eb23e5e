"""What DESIGN.md §4.1 relies on, proven against a real Pulsar with the official client.

A kop instance owns a Kafka partition by holding the Pulsar producer of that partition in
``ExclusiveWithFencing`` mode. The takeover writes an epoch marker and waits for its receipt. For
offsets to stay dense and unique, a stale owner ("zombie") must never append again once a new
owner has taken over: not with sends it had in flight, not with new sends, not after its producer
reconnects, and not when the new owner has meanwhile gone away too.

Writer "A" is the old owner, writer "B" the new one. Messages carry ``kb.writer`` and, for
markers, ``kb.type=marker``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pulsar = pytest.importorskip("pulsar")

pytestmark = pytest.mark.pulsar

Mode = pulsar.ProducerAccessMode
WRITER_SCRIPT = Path(__file__).with_name("zombie_writer.py")
SEND_TIMEOUT_MS = 10_000


# ------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def make_client(pulsar_service: Any, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Factory for pulsar.Client objects (one per simulated kop instance), closed at the end."""
    clients: list[Any] = []

    def make() -> Any:
        client = pulsar.Client(
            pulsar_service.url,
            operation_timeout_seconds=10,
            logger=pulsar.FileLogger(pulsar.LoggerLevel.Info, str(tmp_path / "client.log")),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


def owner_producer(
    client: Any, topic: str, mode: Any = None, handoff: bool = False, send_timeout_ms: int = 0
) -> Any:
    """The partition owner's producer. ``handoff``: acquire with ExclusiveWithFencing, close that
    producer at once and hold the topic with a plain Exclusive producer (see the eviction tests)."""

    def create(access_mode: Any) -> Any:
        return client.create_producer(
            topic,
            access_mode=access_mode,
            batching_enabled=False,
            send_timeout_millis=send_timeout_ms or SEND_TIMEOUT_MS,
        )

    if handoff:
        create(Mode.ExclusiveWithFencing).close()
        return create(Mode.Exclusive)
    return create(Mode.ExclusiveWithFencing if mode is None else mode)


def key(msg_id: Any) -> tuple[int, int, int]:
    """Total order of positions in a non-partitioned topic: (ledger, entry, batch index)."""
    if isinstance(msg_id, list):  # from zombie_writer: [ledger, entry, partition, batch]
        return (msg_id[0], msg_id[1], msg_id[3])
    return (msg_id.ledger_id(), msg_id.entry_id(), msg_id.batch_index())


def read_all(client: Any, topic: str) -> list[Any]:
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    out = []
    try:
        while reader.has_message_available():
            out.append(reader.read_next(timeout_millis=10_000))
    finally:
        reader.close()
    return out


def writer_of(msg: Any) -> str:
    props: dict[str, str] = msg.properties()
    if props.get("kb.type") == "marker":
        return "marker:" + props.get("kb.writer", "?")
    return props.get("kb.writer", "?")


def data(writer: str, n: int) -> dict[str, Any]:
    return {
        "content": f"{writer}-{n}".encode(),
        "properties": {"kb.type": "data", "kb.writer": writer, "kb.seq": str(n)},
    }


MARKER = {"content": b"", "properties": {"kb.type": "marker", "kb.writer": "B", "kb.epoch": "1"}}


class ZombieWriter:
    """tests/pulsar/zombie_writer.py in its own OS process, with its events collected."""

    def __init__(
        self,
        url: str,
        topic: str,
        log_dir: Path,
        name: str = "A",
        inflight: int = 16,
        handoff: bool = False,
    ):
        self.name = name
        self._stderr = (log_dir / f"writer-{name}.stderr").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(WRITER_SCRIPT),
                url,
                topic,
                "--name",
                name,
                "--inflight",
                str(inflight),
                "--send-timeout-ms",
                str(SEND_TIMEOUT_MS),
                "--log-file",
                str(log_dir / f"writer-{name}.log"),
                *(["--handoff"] if handoff else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._cv:
                self.events.append(event)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cv:
            return [e for e in self.events if e["ev"] == kind]

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"writer {self.name}: timed out waiting for {what}")
                if self.proc.poll() is not None and not self._reader.is_alive():
                    pytest.fail(f"writer {self.name} exited ({self.proc.returncode}) before {what}")
                self._cv.wait(min(left, 0.2))

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        self._stderr.close()

    def __enter__(self) -> ZombieWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def drop_tcp_connections(pid: int, broker_port: int) -> int:
    """Abort the TCP connections of process ``pid`` to the broker (``ss -K``); returns how many."""
    if shutil.which("ss") is None:
        return 0
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dport", "=", f":{broker_port}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    ports = []
    for line in listing.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]  # Recv-Q Send-Q Local Peer Process (state filtered out)
            ports.append(local.rsplit(":", 1)[1])
    dropped = 0
    for port in ports:
        subprocess.run(
            ["ss", "-K", "state", "established", "sport", "=", f":{port}"],
            capture_output=True,
            check=False,
        )
        still = subprocess.run(
            ["ss", "-Htn", "state", "established", "sport", "=", f":{port}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if not still.strip():
            dropped += 1
    return dropped


def broker_port(url: str) -> int:
    match = re.search(r":(\d+)$", url)
    assert match, url
    return int(match.group(1))


# ------------------------------------------------------------------------------------------------
# in-process: the basic takeover


def test_takeover_fences_the_old_owner(pulsar_service, make_client, topic, pulsar_timings):
    a = owner_producer(make_client(), topic)
    for i in range(3):
        a.send(**data("A", i))
    epoch_a = pulsar_service.topic_epoch(topic)

    t0 = time.monotonic()
    b = owner_producer(make_client(), topic)
    pulsar_timings("ExclusiveWithFencing acquire, live owner present [s]", time.monotonic() - t0)
    assert pulsar_service.topic_epoch(topic) == epoch_a + 1

    # The old owner's next send fails with ProducerFenced: never a receipt.
    t0 = time.monotonic()
    with pytest.raises(pulsar.ProducerFenced) as fenced:
        a.send(**data("A", 3))
    pulsar_timings("fenced owner: send() raises [s]", time.monotonic() - t0)
    assert isinstance(fenced.value, pulsar.PulsarException)
    assert "ProducerFenced" in str(fenced.value)

    # The error is sticky, and send_async reports it to the callback as Result.ProducerFenced.
    with pytest.raises(pulsar.ProducerFenced):
        a.send(**data("A", 4))
    results: list[Any] = []
    done = threading.Event()

    def callback(res: Any, msg_id: Any) -> None:
        results.append((res, msg_id))
        done.set()

    a.send_async(callback=callback, **data("A", 5))
    assert done.wait(15)
    assert [r for r, _ in results] == [pulsar.Result.ProducerFenced]

    b.send(**MARKER)
    for i in range(3):
        b.send(**data("B", i))

    assert [writer_of(m) for m in read_all(make_client(), topic)] == (
        ["A"] * 3 + ["marker:B"] + ["B"] * 3
    )
    publishers = pulsar_service.topic_stats(topic)["publishers"]
    assert [p["accessMode"] for p in publishers] == ["ExclusiveWithFencing"]
    assert publishers[0]["producerName"] == b.producer_name()


def test_foreign_producers_are_kept_out(pulsar_service, make_client, topic, pulsar_timings):
    b = owner_producer(make_client(), topic)
    b.send(**data("B", 0))
    epoch = pulsar_service.topic_epoch(topic)

    t0 = time.monotonic()
    with pytest.raises(pulsar.ProducerBusy):
        make_client().create_producer(topic, access_mode=Mode.Shared)
    pulsar_timings("foreign Shared producer refused [s]", time.monotonic() - t0)
    with pytest.raises(pulsar.ProducerFenced):
        make_client().create_producer(topic, access_mode=Mode.Exclusive)

    # Refused attempts do not disturb the owner.
    b.send(**data("B", 1))
    assert pulsar_service.topic_epoch(topic) == epoch
    assert [writer_of(m) for m in read_all(make_client(), topic)] == ["B", "B"]


def test_wait_for_exclusive_is_not_usable_from_python(pulsar_service, topic, tmp_path):
    """WaitForExclusive blocks create_producer; the client gives up after its operation timeout,
    but the broker keeps the waiter queued and still promotes it (bumping the topic epoch) when the
    owner leaves. Documented so that nobody builds a standby on it."""
    log = pulsar.FileLogger(pulsar.LoggerLevel.Info, str(tmp_path / "client.log"))
    owner_client = pulsar.Client(pulsar_service.url, operation_timeout_seconds=10, logger=log)
    waiter_client = pulsar.Client(pulsar_service.url, operation_timeout_seconds=2, logger=log)
    try:
        b = owner_producer(owner_client, topic)
        b.send(**data("B", 0))
        epoch = pulsar_service.topic_epoch(topic)
        t0 = time.monotonic()
        with pytest.raises(pulsar.Timeout):
            waiter_client.create_producer(topic, access_mode=Mode.WaitForExclusive)
        assert 1.5 < time.monotonic() - t0 < 8
        b.close()
        deadline = time.monotonic() + 10
        while pulsar_service.topic_epoch(topic) == epoch and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pulsar_service.topic_epoch(topic) == epoch + 1  # the abandoned waiter got promoted
    finally:
        waiter_client.close()
        owner_client.close()


def test_owner_keeps_the_partition_across_unload(
    pulsar_service, make_client, topic, pulsar_timings
):
    """Unloading the topic closes every producer; the owner reconnects with its own epoch and
    keeps the partition; strangers stay out."""
    b = owner_producer(make_client(), topic)
    b.send(**data("B", 0))
    epoch = pulsar_service.topic_epoch(topic)

    pulsar_service.unload(topic)
    t0 = time.monotonic()
    b.send(**data("B", 1))
    pulsar_timings("owner's first send after topic unload [s]", time.monotonic() - t0)
    assert pulsar_service.topic_epoch(topic) == epoch
    with pytest.raises(pulsar.ProducerFenced):
        make_client().create_producer(topic, access_mode=Mode.Exclusive)
    b.send(**data("B", 2))
    assert [writer_of(m) for m in read_all(make_client(), topic)] == ["B", "B", "B"]


@pytest.mark.parametrize("handoff", [False, True], ids=["hold-with-fencing", "hold-exclusive"])
def test_fenced_producer_reconnect_and_the_owner(
    handoff, pulsar_service, make_client, topic, pulsar_timings
):
    """The broker does not tell a fenced producer that it was fenced (no CloseProducer); the old
    owner finds out on its next send, when its client reconnects with its old topic epoch and is
    refused. If that reconnect is in ExclusiveWithFencing mode, the broker first closes every
    producer on the topic - the legitimate owner too, silently - and only then refuses the stale
    one. Holding the partition with a plain Exclusive producer (acquire with fencing, then hand
    off) avoids that eviction."""
    a = owner_producer(make_client(), topic, handoff=handoff)
    a.send(**data("A", 0))
    b = owner_producer(make_client(), topic, handoff=handoff)
    b_name = b.producer_name()
    b.send(**data("B", 0))
    epoch_b = pulsar_service.topic_epoch(topic)

    with pytest.raises(pulsar.ProducerFenced):
        a.send(**data("A", 1))
    publishers = [p["producerName"] for p in pulsar_service.topic_stats(topic)["publishers"]]
    if handoff:
        assert publishers == [b_name]
    else:
        assert publishers == []  # B was evicted by A's refused reconnect and does not know it

    # B's next send notices (its connection is dropped), reconnects with B's epoch, succeeds.
    t0 = time.monotonic()
    b.send(**data("B", 1))
    pulsar_timings(
        f"owner's next send after a stale {'Exclusive' if handoff else 'EWF'} reconnect [s]",
        time.monotonic() - t0,
    )
    assert pulsar_service.topic_epoch(topic) == epoch_b
    assert [p["producerName"] for p in pulsar_service.topic_stats(topic)["publishers"]] == [b_name]
    assert [writer_of(m) for m in read_all(make_client(), topic)] == ["A", "B", "B"]


def test_evicted_owner_can_lose_the_partition_and_sees_only_a_timeout(
    pulsar_service, make_client, topic, pulsar_timings
):
    """Worst case of the eviction above: the owner's producer id was closed once on its
    connection already (here by a topic unload), so the broker silently ignores the owner's sends
    after the eviction, and a third producer takes the free partition meanwhile. The owner then
    gets a send *Timeout*, not ProducerFenced. The new owner's data is intact."""
    a = owner_producer(make_client(), topic)
    a.send(**data("A", 0))
    b = owner_producer(make_client(), topic, send_timeout_ms=3000)
    b.send(**data("B", 0))
    pulsar_service.unload(topic)
    b.send(**data("B", 1))  # B is back after the unload

    with pytest.raises(pulsar.ProducerFenced):
        a.send(**data("A", 1))  # A's refused reconnect silently evicts B
    c = owner_producer(make_client(), topic, Mode.Exclusive)  # the partition looks free
    c.send(**data("C", 0))

    t0 = time.monotonic()
    with pytest.raises(pulsar.Timeout):
        b.send(**data("B", 2))
    pulsar_timings("evicted owner: send -> Timeout (send_timeout 3 s) [s]", time.monotonic() - t0)
    with pytest.raises((pulsar.ProducerFenced, pulsar.Timeout)):
        b.send(**data("B", 3))
    c.send(**data("C", 1))
    assert [writer_of(m) for m in read_all(make_client(), topic)] == [
        "A",
        "B",
        "B",
        "C",
        "C",
    ]


def test_restarted_zombie_only_gets_a_free_partition(pulsar_service, make_client, topic):
    """A restarted old owner has a new client and no way to hand its old epoch to a new producer
    (the Python API has none). While the owner holds the partition it is refused; once the owner
    is gone a plain Exclusive producer succeeds with a new epoch: Pulsar fences producer
    *instances*, it does not remember who is stale. Deciding who should own a partition is kop's
    job, and whoever acquires it must run the full takeover (marker, tail read)."""
    a = owner_producer(make_client(), topic)
    a.send(**data("A", 0))
    b = owner_producer(make_client(), topic)
    b.send(**MARKER)
    epoch_b = pulsar_service.topic_epoch(topic)

    restarted = make_client()
    with pytest.raises(pulsar.ProducerFenced):
        restarted.create_producer(topic, access_mode=Mode.Exclusive)
    with pytest.raises(pulsar.ProducerBusy):
        restarted.create_producer(topic, access_mode=Mode.Shared)

    b.close()
    again = owner_producer(restarted, topic, Mode.Exclusive)
    assert pulsar_service.topic_epoch(topic) == epoch_b + 1
    again.send(**data("A2", 0))
    assert [writer_of(m) for m in read_all(make_client(), topic)] == ["A", "marker:B", "A2"]


# ------------------------------------------------------------------------------------------------
# the zombie: a frozen writer process that resumes after the takeover

VARIANTS = ["new-owner-keeps-writing", "new-owner-gone", "connection-dropped"]


@pytest.mark.parametrize("handoff", [False, True], ids=["hold-with-fencing", "hold-exclusive"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_frozen_zombie_never_writes_after_the_marker(
    variant, handoff, pulsar_service, make_client, topic, tmp_path, pulsar_timings
):
    """A sends continuously (16 sends in flight) from its own process. It is frozen with SIGSTOP,
    B takes over and writes its marker, then A is resumed with SIGCONT.

    - new-owner-keeps-writing: B keeps the partition and writes while A is back.
    - new-owner-gone: B closes its producer before A resumes, so nothing but the topic epoch
      stands between A's reconnecting producer and the partition.
    - connection-dropped: A's TCP connections are aborted (ss -K) while it is frozen, so on resume
      it reconnects from scratch.

    hold-with-fencing: both writers keep their ExclusiveWithFencing producer; hold-exclusive: both
    acquire with ExclusiveWithFencing and then hold the topic with a plain Exclusive producer.
    """
    b_client = make_client()
    with ZombieWriter(pulsar_service.url, topic, tmp_path, handoff=handoff) as a:
        a.wait_for("A's producer", lambda: bool(a.of("ready") or a.of("create_err")), 30)
        assert not a.of("create_err"), a.of("create_err")
        pulsar_timings("zombie's initial acquire, free topic [s]", a.of("ready")[0]["acquire_s"])
        a.wait_for("200 acknowledged sends", lambda: len(a.of("ack")) >= 200, 60)

        a.freeze()
        time.sleep(0.3)  # whatever A already handed to the kernel reaches the broker meanwhile
        acks_when_frozen = len(a.of("ack"))

        t0 = time.monotonic()
        b = owner_producer(b_client, topic, handoff=handoff)
        pulsar_timings(
            f"acquire ({'EWF+Exclusive' if handoff else 'EWF'}), owner frozen [s]",
            time.monotonic() - t0,
        )
        b_name = b.producer_name()
        t0 = time.monotonic()
        marker_id = b.send(**MARKER)
        pulsar_timings("marker send+ack after acquire [s]", time.monotonic() - t0)
        epoch_b = pulsar_service.topic_epoch(topic)

        if variant == "connection-dropped" and not drop_tcp_connections(
            a.proc.pid, broker_port(pulsar_service.url)
        ):
            pytest.skip("cannot abort TCP connections here (needs root and ss -K)")
        if variant == "new-owner-gone":
            b.close()

        t_resume = time.time()
        a.resume()
        a.wait_for(
            "an error after resuming",
            lambda: any(e["t"] >= t_resume for e in a.events if e["ev"] == "err"),
            30,
        )
        if variant != "new-owner-gone":
            publishers = pulsar_service.topic_stats(topic)["publishers"]
            # A's refused reconnect evicted B only if A reconnected with ExclusiveWithFencing.
            assert [p["producerName"] for p in publishers] == ([b_name] if handoff else [])
            t0 = time.monotonic()
            for i in range(5):
                b.send(**data("B", i))  # the owner keeps writing (after a reconnect if evicted)
            pulsar_timings(
                "new owner: 5 sends after the zombie's attempt [s]", time.monotonic() - t0
            )
        time.sleep(2.0)  # let the zombie keep trying
        a.stop()

    acks = a.of("ack")
    errors_after = [e for e in a.of("err") if e["t"] >= t_resume]
    pulsar_timings("zombie: SIGCONT -> first send error [s]", errors_after[0]["t"] - t_resume)
    assert len(acks) >= acks_when_frozen

    # 1. No receipt the zombie ever got is for a position after the marker. Receipts that it only
    #    read after resuming were for sends the broker had persisted before B took over.
    assert all(key(e["id"]) < key(marker_id) for e in acks), "zombie got a receipt after marker"
    # 2. Every send it tried after resuming failed, with ProducerFenced.
    assert errors_after
    assert {e["result"] for e in errors_after} == {"ProducerFenced"}, errors_after[:5]

    # 3. The log: nothing from A after the marker; what A has in the log is an unbroken prefix of
    #    its sends, and contains every send it was told had succeeded.
    msgs = read_all(make_client(), topic)
    writers = [writer_of(m) for m in msgs]
    assert writers.count("marker:B") == 1
    at = writers.index("marker:B")
    assert key(msgs[at].message_id()) == key(marker_id)
    assert "A" not in writers[at + 1 :]
    a_seqs = [int(m.properties()["kb.seq"]) for m in msgs[:at] if writer_of(m) == "A"]
    assert a_seqs == list(range(1, len(a_seqs) + 1))
    assert {e["seq"] for e in acks} <= set(a_seqs)
    if variant != "new-owner-gone":
        assert writers[at + 1 :] == ["B"] * 5

    # 4. With the new owner gone, the zombie did not take the free partition back: a newcomer can
    #    acquire it, and the epoch moved only by that newcomer.
    if variant == "new-owner-gone":
        assert pulsar_service.topic_epoch(topic) == epoch_b
        assert pulsar_service.topic_stats(topic)["publishers"] == []
        owner_producer(make_client(), topic, Mode.Exclusive).send(**data("C", 0))
        assert pulsar_service.topic_epoch(topic) == epoch_b + 1
