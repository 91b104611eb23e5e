"""The Kafka Java tools via `scripts/kafka.sh run-class` (jars from Maven Central)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from helpers.servers import KAFKA_SH

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"
CLIENT_COMPATIBILITY_TEST = "org.apache.kafka.tools.ClientCompatibilityTest"
# kafka-configs (in kafka-tools since Kafka 4.2; scripts/kafka.sh runs 4.4).
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"


def fetch() -> None:
    """Resolve the jars once (no-op when cached)."""
    subprocess.run([str(KAFKA_SH), "fetch"], check=True, timeout=900, stdin=subprocess.DEVNULL)


def start_class(cls: str, args: Sequence[str]) -> subprocess.Popen[str]:
    """A Java main class in the background (the JVM itself: kafka.sh execs it, in a session of
    its own), stdout and stderr piped; ``communicate()`` collects them."""
    return subprocess.Popen(
        [str(KAFKA_SH), "run-class", cls, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_class(
    cls: str,
    args: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 180,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a Java main class; with ``check`` a non-zero exit fails with its output."""
    proc = subprocess.run(
        [str(KAFKA_SH), "run-class", cls, *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cls.rsplit('.', 1)[-1]} {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc
