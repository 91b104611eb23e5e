"""Client quotas on two kop instances sharing one Pulsar namespace: a quota set through one
instance is stored once and applies on the other (as a Kafka quota applies on every broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import java
from helpers.instances import Pair, wait_for
from helpers.pulsar import PulsarService
from helpers.quotas import produce_for

pytestmark = [pytest.mark.pulsar, pytest.mark.java, pytest.mark.usefixtures("kafka_tools")]

RATE = 100 * 1024  # bytes per second
MEASURE_S = 8.0


def _configs(bootstrap: str, *args: str) -> str:
    return str(java.run_class(java.CONFIG_COMMAND, ["--bootstrap-server", bootstrap, *args]).stdout)


@pytest.mark.timeout(300)
def test_a_quota_set_on_one_instance_throttles_on_the_other(
    pulsar_service: PulsarService, tmp_path: Path
) -> None:
    # Two samples of 1 s: a new client's first burst is one second's worth (see
    # tests/e2e/test_e2e_quotas.py), so 8 s of producing come close to the rate.
    pair = Pair(tmp_path, quota_window_num=2)
    try:
        topic = pair.topic_led_by(2, "quota-pair")
        _configs(
            pair.one.bootstrap,
            "--alter",
            "--add-config",
            f"producer_byte_rate={RATE}",
            "--entity-type",
            "clients",
            "--entity-name",
            "slow",
        )
        # The other instance reads the stored quota in its cluster sync.
        wait_for(
            "instance two describes the quota",
            lambda: (
                f"producer_byte_rate={RATE}"
                in _configs(pair.two.bootstrap, "--describe", "--entity-type", "clients")
            ),
        )
        slow, slow_throttle = produce_for(pair.two.bootstrap, topic, "slow", MEASURE_S)
        fast, fast_throttle = produce_for(pair.two.bootstrap, topic, "fast", 3.0)
        assert 0.6 * RATE < slow < 1.4 * RATE, (slow, RATE)
        assert slow_throttle > 0, slow_throttle
        assert fast > 3 * RATE and fast_throttle == 0, (fast, fast_throttle)
    finally:
        pair.stop()
