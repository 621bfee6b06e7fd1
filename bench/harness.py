"""Processes the benchmark starts (moto, `seau serve`, py-spy) and what it measures on them.

Everything here is synchronous and Linux-specific: peak memory comes from
``/proc/PID/status`` (VmHWM, reset through ``/proc/PID/clear_refs`` before each
phase) and CPU time from psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing"  # noqa: S105 - moto accepts any fixed key
MOTO_REGION = "us-east-1"
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, *, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers anything below 500; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own URL
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[tuple[str, int]]:
    """moto's standalone S3 server on 127.0.0.1; yields (endpoint URL, pid)."""
    port = free_port()
    log = workdir / f"moto-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint, process=process, log=log, timeout=30)
        yield endpoint, process.pid
    finally:
        stop_process(process)


def make_bucket(endpoint: str, name: str) -> None:
    import boto3  # setup only; the code under test never uses boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_ACCESS_KEY,
        aws_secret_access_key=MOTO_SECRET_KEY,
        region_name=MOTO_REGION,
    ).create_bucket(Bucket=name)


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": MOTO_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET_KEY,
        "AWS_REGION": MOTO_REGION,
        "SEAU_S3_PATH_STYLE": "true",
    }


@dataclass
class SeauServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def seau_server(
    env: dict[str, str],
    *,
    cwd: Path,
    workers: int = 1,
    command: Sequence[str] = (),
    timeout: float = 90.0,
) -> Iterator[SeauServer]:
    """``seau serve`` as a user would run it, with only ``env`` as SEAU_*/AWS_* settings.

    ``command`` replaces ``[BIN/seau, "serve"]`` (a patched launcher, for experiments).
    """
    port = free_port()
    log = cwd / f"seau-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    clean.update(env)
    argv = [*(command or [str(BIN / "seau"), "serve"]), "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    if workers != 1:
        argv += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=clean, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    server = SeauServer(process=process, url=f"http://127.0.0.1:{port}", log=log)
    try:
        wait_http(f"{server.url}/healthz", process=process, log=log, timeout=timeout)
        yield server
    finally:
        stop_process(process)


def loaded_libraries(pid: int) -> set[str]:
    """Names of the shared objects mapped by ``pid`` (to tell whether uvloop/httptools run)."""
    names: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6:
                names.add(Path(parts[5]).name)
    return names


# -- measuring ----------------------------------------------------------------------


def idle_memory(pid: int) -> dict[str, float]:
    """RSS right after start-up, its anonymous part, and the start-up peak (MiB)."""
    return {
        name: _status_kib(pid, field) / 1024
        for name, field in (
            ("rss_mib", "VmRSS"),
            ("anon_mib", "RssAnon"),
            ("startup_peak_mib", "VmHWM"),
        )
    }


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _thread_groups(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread: the event loop (main), obstore's tokio, the rest."""
    groups = {"main": 0.0, "tokio": 0.0, "other": 0.0}
    with contextlib.suppress(psutil.NoSuchProcess):
        for thread in psutil.Process(pid).threads():
            seconds = thread.user_time + thread.system_time
            if thread.id == pid:
                groups["main"] += seconds
                continue
            try:
                comm = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
            except OSError:
                comm = ""
            groups["tokio" if comm.startswith("tokio") else "other"] += seconds
    return groups


class RssSampler:
    """Samples the resident set of a process tree every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, *, interval: float = 0.02) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.max_kib = 0
        self.samples: list[tuple[float, int]] = []

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        while True:
            total = 0
            with contextlib.suppress(OSError, psutil.NoSuchProcess):
                for process in _tree(self._pid):
                    with contextlib.suppress(OSError, RuntimeError):
                        total += _status_kib(process.pid, "VmRSS")
            self.max_kib = max(self.max_kib, total)
            self.samples.append((time.monotonic() - start, total))
            if self._stop.wait(self._interval):
                return


@dataclass
class Usage:
    """What one phase cost, measured around it."""

    wall: float = 0.0
    server_cpu: float | None = None
    server_threads: dict[str, float] = field(default_factory=dict)
    server_rss_before_mib: float | None = None
    server_peak_rss_mib: float | None = None
    """VmHWM after a reset at the phase start, or since start-up if reset failed."""
    server_sampled_max_rss_mib: float | None = None
    peak_reset: bool = False
    client_cpu: float = 0.0
    client_loop_cpu: float = 0.0
    """The benchmark's own event-loop thread: near 100 % of the wall would mean it limits."""
    store_cpu: float | None = None
    """moto's CPU, for the S3 store."""
    machine_busy: float = 0.0
    """CPU seconds used by every process on the machine (from /proc/stat)."""


class Meter:
    """Measures a phase: ``with meter.phase() as usage: ...``."""

    def __init__(self, *, server_pid: int | None, store_pid: int | None) -> None:
        self._server_pid = server_pid
        self._store_pid = store_pid
        self._client = psutil.Process()

    @contextlib.contextmanager
    def phase(self) -> Iterator[Usage]:
        usage = Usage()
        server = _tree(self._server_pid) if self._server_pid else []
        store = [psutil.Process(self._store_pid)] if self._store_pid else []
        if self._server_pid:
            usage.peak_reset = all(reset_peak_rss(p.pid) for p in server)
            usage.server_rss_before_mib = sum(_status_kib(p.pid, "VmRSS") for p in server) / 1024
        threads0 = _thread_groups(self._server_pid) if self._server_pid else {}
        server0, store0, client0 = _cpu(server), _cpu(store), _cpu([self._client])
        client_loop0 = _thread_groups(self._client.pid)["main"]
        machine0 = _machine_busy()
        sampler = RssSampler(self._server_pid) if self._server_pid else None
        start = time.perf_counter()
        with sampler or contextlib.nullcontext():
            yield usage
        usage.wall = time.perf_counter() - start
        usage.client_cpu = _cpu([self._client]) - client0
        usage.client_loop_cpu = _thread_groups(self._client.pid)["main"] - client_loop0
        usage.machine_busy = _machine_busy() - machine0
        if self._server_pid:
            usage.server_cpu = _cpu(server) - server0
            threads1 = _thread_groups(self._server_pid)
            usage.server_threads = {k: threads1[k] - threads0.get(k, 0.0) for k in threads1}
            usage.server_peak_rss_mib = (
                sum(_status_kib(p.pid, "VmHWM") for p in server if p.is_running()) / 1024
            )
            assert sampler is not None
            usage.server_sampled_max_rss_mib = sampler.max_kib / 1024
        if self._store_pid:
            usage.store_cpu = _cpu(store) - store0


def _machine_busy() -> float:
    times = psutil.cpu_times()
    busy: float = times.user + times.nice + times.system + times.irq + times.softirq + times.steal
    return busy


# -- profiling --------------------------------------------------------------------------


class Profiler:
    """``py-spy record`` attached to a process for the length of a ``with`` block."""

    def __init__(
        self, pid: int, output: Path, *, rate: int = 100, native: bool = False, gil: bool = False
    ) -> None:
        self._pid = pid
        self._output = output
        self._rate = rate
        self._native = native
        self._gil = gil
        self._process: subprocess.Popen[bytes] | None = None
        self._log = output.with_suffix(".log")

    def __enter__(self) -> Profiler:
        command = [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(self._pid),
            "--rate",
            str(self._rate),
            "--format",
            "raw",
            "--threads",
            "--output",
            str(self._output),
        ]
        if self._native:
            command.append("--native")
        if self._gil:
            # Only samples holding the GIL: where Python CPU time goes, no waiting threads.
            command.append("--gil")
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # py-spy prints its banner once it has attached; samples start then.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Sampling" not in _tail(self._log):
            if self._process.poll() is not None:
                raise RuntimeError(f"py-spy failed: {_tail(self._log)}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
