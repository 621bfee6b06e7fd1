"""A real S3 engine for tests: Ceph's RADOS Gateway, on a throw-away single-host cluster.

moto is a mock: it accepts any credentials, dates every multipart upload 2010 and
answers what AWS documents more faithfully than some real servers do. Ceph's RGW is
the S3 engine behind several providers, and where it and moto disagree with AWS, seau
follows AWS and the test names the server that deviates (tests/storage/test_ceph.py).

`ceph-rgw-up.sh` (beside this file) starts one ``ceph-mon``, one ``ceph-osd`` (memstore:
objects in RAM) and one ``radosgw`` in a temporary directory on free loopback ports, in
about 2 s. Use the session fixture ``ceph_server`` and a bucket of each test's own
(`tests.support.moto.make_bucket` works: the S3 user has moto's keys). A test that
kills a gateway takes one of its own over the same cluster: ``ceph_server.gateway()``.
Unlike moto, a gateway that comes back finds every bucket and object where it was.

Without the Debian packages (``ceph-mon``, ``ceph-osd``, ``radosgw``, ``ceph-common``),
a test fails in CI (``CI`` set) and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.moto import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    free_port,
    restartable_port,
    unavailable,
)

SCRIPT = Path(__file__).with_name("ceph-rgw-up.sh")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "uuidgen", "curl")
PACKAGES = "ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl"
START_TIMEOUT_SECONDS = 60.0


class CephUnavailable(RuntimeError):
    """The cluster could not be started, or a gateway did not come up."""


class CephGateway:
    """One ``radosgw`` of the cluster: an S3 endpoint that can be killed and restarted.

    Shaped like `MotoServer` (``endpoint_url``, ``port``, ``running``, ``start``,
    ``stop``), so the fault harness drives either.
    """

    def __init__(self, cluster: CephCluster, *, name: str, port: int) -> None:
        self.cluster = cluster
        self.name = name
        self.host = "127.0.0.1"
        self.port = port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.cluster.data_dir / "run" / f"client.rgw.{self.name}.pid"

    def _pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self._pid()
        return pid is not None and _alive(pid)

    def start(self) -> None:
        """(Re)start the gateway on its port and wait until it answers (~0.1 s)."""
        if self.running:
            return
        self.cluster.script("rgw", self.name, str(self.port))

    def stop(self) -> None:
        """SIGKILL the gateway, as a crash would: the cluster keeps every object."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """Stop the gateway cleanly (SIGTERM): it lets go of its watches on the cluster,
        which a killed one holds for a few seconds, delaying the others' bucket writes."""
        self._signal(signal.SIGTERM)

    def _signal(self, number: signal.Signals) -> None:
        pid = self._pid()
        if pid is None or not _alive(pid):
            return
        os.kill(pid, number)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


class CephCluster:
    """One mon, one memstore OSD and gateway ``a``, all under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._gateways: list[CephGateway] = []
        self.ready_ms: int | None = None

    @property
    def endpoint_url(self) -> str:
        return self._gateways[0].endpoint_url

    @property
    def port(self) -> int:
        return self._gateways[0].port

    def start(self) -> None:
        """Start the cluster; raises `CephUnavailable` with the reason."""
        missing = [name for name in BINARIES if shutil.which(name) is None]
        if missing:
            raise CephUnavailable(
                f"{', '.join(missing)} not found (apt-get install --no-install-recommends "
                f"{PACKAGES})"
            )
        rgw, mon, osd = restartable_port(), free_port(), free_port()
        answer = self.script("start", str(rgw), str(mon), str(osd))
        values = dict(line.split("=", 1) for line in answer.splitlines() if "=" in line)
        self.ready_ms = int(values.get("CEPH_READY_MS", "0"))
        self._gateways = [CephGateway(self, name="a", port=rgw)]

    def gateway(self) -> CephGateway:
        """A further gateway over the same data, on a port of its own, started."""
        name = "abcdefghijklmnopqrstuvwxyz"[len(self._gateways)]
        added = CephGateway(self, name=name, port=restartable_port())
        self._gateways.append(added)
        added.start()
        return added

    def stop(self) -> None:
        """Stop every daemon and remove the data directory."""
        if self.data_dir.exists():
            self.script("stop")

    def script(self, command: str, *arguments: str) -> str:
        env = {**os.environ, "S3_ACCESS_KEY": ACCESS_KEY_ID, "S3_SECRET_KEY": SECRET_ACCESS_KEY}
        try:
            done = subprocess.run(
                ["bash", str(SCRIPT), command, str(self.data_dir), *arguments],
                env=env,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CephUnavailable(
                f"ceph-rgw-up.sh {command} took over {exc.timeout:.0f} s"
            ) from exc
        if done.returncode != 0:
            raise CephUnavailable(
                f"ceph-rgw-up.sh {command} failed ({done.returncode}): {done.stderr[-800:]!r}"
            )
        return done.stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a daemon's zombie (until PID 1 reaps it) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextmanager
def running_ceph_cluster() -> Iterator[CephCluster]:
    """A cluster of its own in a fresh temporary directory, stopped and removed on exit."""
    # A short path: the daemons' admin sockets live under it (at most 107 bytes).
    cluster = CephCluster(Path(tempfile.mkdtemp(prefix="seau-ceph-")) / "cluster")
    try:
        cluster.start()
    except CephUnavailable as exc:
        # The script keeps the daemons' logs of a failed start (named in the message).
        if not cluster.data_dir.exists():
            cluster.data_dir.parent.rmdir()
        unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def ceph_server() -> Iterator[CephCluster]:
    """One cluster for the whole run. Kill only gateways of your own (`CephCluster.gateway`)."""
    with running_ceph_cluster() as cluster:
        yield cluster
