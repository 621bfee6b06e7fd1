"""Real `seau serve` processes for tests where the network and processes matter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SEAU = str(Path(sys.executable).parent / "seau")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_bytes(self) -> int:
        """VmHWM: the most resident memory the process has ever used."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


KILL_POINT = Path(__file__).parent / "killpoint"


def kill_after_commit(table: str) -> dict[str, str]:
    """Environment for a `seau serve` that SIGKILLs itself right after committing the
    first transaction that inserted into ``table`` (`tests/support/killpoint`)."""
    path = [str(KILL_POINT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), "SEAU_TEST_KILL_AFTER_COMMIT_OF": table}


def server_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    env.update(settings_env)
    return env


@contextmanager
def seau_server(
    env: dict[str, str],
    *,
    cwd: Path,
    timeout: float = 60.0,
    args: Sequence[str] = (),
    seau: str = SEAU,
) -> Iterator[Server]:
    """`seau serve` on a free port, with ``args`` (e.g. ``["--workers", "2"]``) added;
    ``seau`` is the command, another installation's for an upgrade."""
    port = free_port()
    log = cwd / f"seau-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [seau, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=server_env(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process=process, url=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"seau serve exited {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"seau serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
