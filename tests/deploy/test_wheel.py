"""The wheel installs with plain pip into a fresh virtual environment and serves.

Builds the wheel from this checkout, installs it as docs/deploy.md says (requirements.lock
with every hash checked, from the package index or pip's cache, then the wheel without
dependencies; `pip check` proves the lock holds all it needs), starts that environment's
`seau serve` on a free port with an empty data directory and waits for /healthz.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_wheel_installs_into_a_fresh_venv_and_serves(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("seau-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seau/db/migrations/env.py" in names
    assert any(n.startswith("seau/web/static/") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    lock = str(ROOT / "requirements.lock")
    # --no-compile: no bytecode written ahead for a throwaway environment (about a
    # quarter of the install's time; Python compiles what it imports as it goes).
    subprocess.run(
        [str(pip), "install", "-q", "--no-compile", "--require-hashes", "-r", lock],
        check=True,
        timeout=600,
    )
    subprocess.run([str(pip), "install", "-q", "--no-deps", str(wheel)], check=True, timeout=120)
    subprocess.run([str(pip), "check"], check=True, timeout=60)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAU_")}
    env["SEAU_DATA_DIR"] = str(tmp_path / "data")
    server = subprocess.Popen(
        [str(env_dir / "bin" / "seau"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                break
            assert time.monotonic() < deadline, "seau serve did not answer /healthz in 60 s"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.communicate(timeout=30)
