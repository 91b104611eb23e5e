"""A Pulsar standalone with the pieces only a few tests need (tests/pulsar/test_pulsar_functions.py,
test_pulsar_io_sink.py, test_tiered_storage.py): the functions worker (thread runtime,
scripts/pulsar/functions_worker.yml) and the filesystem offloader (``scripts/pulsar.sh
offloaders``), with small ledgers so that a test fills several. The session's standalone stays
as it is: these cost start-up time (the worker) and change ledger rollover for every topic.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.pulsar import PULSAR_SH, REPO, PulsarService, _free_port, _run_script

WORKER_CONF = REPO / "scripts" / "pulsar" / "functions_worker.yml"
# Entries per ledger: a test's few dozen batches fill several ledgers, and a closed ledger is
# what Pulsar offloads.
ENTRIES_PER_LEDGER = 20


@dataclass(frozen=True)
class ExtrasPulsar(PulsarService):
    env: dict[str, str] = field(default_factory=dict)
    offload_dir: Path = Path()

    def stop(self) -> None:
        assert self.data_dir is not None
        stopped = _run_script("stop", str(self.data_dir), env=self.env, timeout=120)
        if stopped.returncode != 0:
            print(f"scripts/pulsar.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}")
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- functions ---------------------------------------------------------------------------

    def create_function(self, config: dict[str, Any], jar: Path) -> None:
        """``pulsar-admin functions create``: the multipart upload of the jar and the
        FunctionConfig JSON (``POST /admin/v3/functions/{tenant}/{namespace}/{name}``)."""
        self._upload("functions", "functionConfig", config, jar)

    def create_sink(self, config: dict[str, Any], jar: Path) -> None:
        """``pulsar-admin sinks create --archive JAR``: the multipart upload of the jar and the
        SinkConfig JSON (``POST /admin/v3/sinks/{tenant}/{namespace}/{name}``)."""
        self._upload("sinks", "sinkConfig", config, jar)

    def _upload(self, kind: str, part: str, config: dict[str, Any], jar: Path) -> None:
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"\r\n'
                f"Content-Type: application/json\r\n\r\n{json.dumps(config)}\r\n".encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="data"; '
                f'filename="{jar.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
                jar.read_bytes(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        path = f"/admin/v3/{kind}/{config['tenant']}/{config['namespace']}/{config['name']}"
        req = urllib.request.Request(
            self.admin_url.rstrip("/") + path,
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as err:
                # 503 while the worker is still initialising (the admin API answers first).
                if err.code != 503 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def function_status(self, tenant: str, namespace: str, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.admin(
            "GET", f"/admin/v3/functions/{tenant}/{namespace}/{name}/status"
        )
        return status

    def sink_status(self, tenant: str, namespace: str, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.admin(
            "GET", f"/admin/v3/sinks/{tenant}/{namespace}/{name}/status"
        )
        return status

    def delete_sink(self, tenant: str, namespace: str, name: str) -> None:
        """``pulsar-admin sinks delete``."""
        self.admin("DELETE", f"/admin/v3/sinks/{tenant}/{namespace}/{name}")

    # -- tiered storage ----------------------------------------------------------------------

    def internal_info(self, topic: str) -> dict[str, Any]:
        info: dict[str, Any] = self.admin("GET", self.topic_path(topic) + "/internal-info")
        return info

    def offload(self, topic: str, timeout: float = 60) -> list[int]:
        """``pulsar-admin topics offload --size-threshold 0``: offload every closed ledger of
        ``topic`` (all before the one being written), wait for the offload to succeed; the ids
        of the ledgers offloaded."""
        path = self.topic_path(topic)
        ledgers = self.internal_info(topic)["ledgers"]
        current = ledgers[-1]["ledgerId"]
        self.admin("PUT", path + "/offload", {"ledgerId": current, "entryId": 0})
        deadline = time.monotonic() + timeout
        while True:
            status = self.admin("GET", path + "/offload")
            if status["status"] == "SUCCESS":
                break
            assert status["status"] == "RUNNING", status
            assert time.monotonic() < deadline, f"offload of {topic} still running"
            time.sleep(0.2)
        return [
            lg["ledgerId"]
            for lg in self.internal_info(topic)["ledgers"]
            if lg.get("isOffloaded") and lg["ledgerId"] != current
        ]


def compile_jar(source: Path, api_jars: tuple[str, ...], out: Path) -> Path:
    """``source`` (a Function or an IO sink) compiled with javac against the cached Maven
    Central jars matching ``api_jars`` (only those on the class path: javac scanning all 300
    jars costs seconds), zipped as ``out/<name>.jar``: the package the functions worker takes
    with an explicit class name (no NAR needed)."""
    lib = Path(
        subprocess.run(
            ["bash", str(PULSAR_SH), "lib"], check=True, capture_output=True, text=True, timeout=600
        ).stdout.strip()
    )
    classpath = [str(jar) for pattern in api_jars for jar in lib.glob(pattern)]
    assert len(classpath) == len(api_jars), classpath
    classes = out / "classes"
    subprocess.run(
        ["javac", "-cp", ":".join(classpath), "-d", str(classes), str(source)],
        check=True,
        timeout=120,
    )
    jar = out / f"{source.stem}.jar"
    with zipfile.ZipFile(jar, "w") as z:
        for cls in classes.glob("*.class"):
            z.write(cls, cls.name)
    return jar


def start_extras_pulsar() -> ExtrasPulsar:
    data_dir = Path(tempfile.mkdtemp(prefix="kop-test-pulsar-extras-"))
    offloaders = _run_script("offloaders", env=dict(os.environ), timeout=600)
    if offloaders.returncode != 0:
        raise RuntimeError(f"scripts/pulsar.sh offloaders failed:\n{offloaders.stderr}")
    offload_dir = data_dir / "offloaded"
    core_site = data_dir / "offload-core-site.xml"
    core_site.write_text(
        '<?xml version="1.0"?>\n<configuration>\n'
        "  <property><name>io.file.buffer.size</name><value>65536</value></property>\n"
        "</configuration>\n"
    )
    extra = data_dir / "extras.conf"
    extra.write_text(
        "functionsWorkerEnabled=true\n"
        # The filesystem offloader writes under fileSystemURI (+ the managed ledger's name).
        "managedLedgerOffloadDriver=filesystem\n"
        f"offloadersDirectory={offloaders.stdout.strip()}\n"
        f"narExtractionDirectory={data_dir / 'nar'}\n"
        f"fileSystemProfilePath={core_site}\n"
        f"fileSystemURI=file://{offload_dir}\n"
        # Bookies' copies of offloaded ledgers go at once (at the next trim, every 2 s), so
        # reads of offloaded ledgers can only be served from the offload store.
        "managedLedgerOffloadDeletionLagMs=0\n"
        "retentionCheckIntervalInSeconds=2\n"
        f"managedLedgerMaxEntriesPerLedger={ENTRIES_PER_LEDGER}\n"
        "managedLedgerMinLedgerRolloverTimeMinutes=0\n"
        # No broker entry cache: reads go to storage.
        "managedLedgerCacheSizeMB=0\n"
    )
    env = dict(os.environ)
    env["PULSAR_BROKER_PORT"] = str(_free_port())
    env["PULSAR_WEB_PORT"] = str(_free_port())
    while env["PULSAR_WEB_PORT"] == env["PULSAR_BROKER_PORT"]:
        env["PULSAR_WEB_PORT"] = str(_free_port())
    env["PULSAR_EXTRA_CONF"] = str(extra)
    env["PULSAR_FUNCTIONS_WORKER_CONF"] = str(WORKER_CONF)
    service = ExtrasPulsar(
        url=f"pulsar://127.0.0.1:{env['PULSAR_BROKER_PORT']}",
        admin_url=f"http://127.0.0.1:{env['PULSAR_WEB_PORT']}",
        data_dir=data_dir,
        env=env,
        offload_dir=offload_dir,
    )
    started = _run_script("start", str(data_dir), env=env, timeout=900)
    if started.returncode != 0:
        _run_script("stop", str(data_dir), env=env, timeout=120)
        raise RuntimeError(
            f"{PULSAR_SH} start (functions worker, offloader) failed "
            f"(exit {started.returncode}):\n{started.stdout}\n{started.stderr}"
        )
    return service
