"""`seau serve` does its start-up work, then serves from a process without it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

import seau
from seau.cli.serve import server_environment
from tests.support.server import SEAU, free_port, seau_server, server_env

# Loaded by every Python process that gets this directory on PYTHONPATH: it
# writes the interpreter's command line and its modules to $SEAU_TEST_MODULES,
# again and again, so the last write is the serving process's.
SITECUSTOMIZE = """
import json, os, sys, threading, time

def _dump():
    target = os.environ["SEAU_TEST_MODULES"]
    while True:
        seau = getattr(sys.modules.get("seau"), "__file__", None)
        state = {
            "pid": os.getpid(), "argv": sys.orig_argv, "modules": sorted(sys.modules), "seau": seau
        }
        with open(target + ".new", "w") as out:
            json.dump(state, out)
        os.replace(target + ".new", target)
        time.sleep(0.1)

threading.Thread(target=_dump, daemon=True).start()
"""

START_UP_ONLY = ("alembic", "mako")
CLI_ONLY = ("typer", "rich", "pygments", "httpx", "seau.cli.main", "seau.cli.client")
# PyJWT's optional dependency, for algorithms seau does not use (seau.auth.tokens).
UNUSED = ("cryptography",)


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def sign_up(url: str) -> int:
    return httpx.post(
        f"{url}/api/v1/users",
        json={"email": "someone@example.com", "password": "a long enough password"},
        timeout=30,
    ).status_code


def serving_process(report: Path, pid: int) -> dict[str, Any]:
    """What SITECUSTOMIZE saw in process ``pid`` once it was the serving
    module (the same PID: `seau serve` execs it) and had loaded the app."""
    deadline = time.monotonic() + 30
    while True:
        state = json.loads(report.read_text()) if report.exists() else {}
        if (
            state.get("pid") == pid
            and state["argv"][1:3] == ["-m", "seau.cli.serve"]
            and "seau.app" in state["modules"]
        ):
            return dict(state)
        if time.monotonic() > deadline:
            raise AssertionError(f"no module report from the serving process: {state}")
        time.sleep(0.1)


def reporting(tmp_path: Path) -> dict[str, str]:
    """The environment that makes every Python process report to tmp_path/report.json."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "SEAU_TEST_MODULES": str(tmp_path / "report.json"),
    }


def test_the_serving_process_holds_no_start_up_or_cli_modules(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), **reporting(tmp_path)}
    with seau_server(env, cwd=tmp_path) as server:
        assert sign_up(server.url) == 201
        state = serving_process(tmp_path / "report.json", server.pid)
    modules = state["modules"]
    loaded = [
        name
        for name in modules
        if any(
            name == bad or name.startswith(bad + ".") for bad in START_UP_ONLY + CLI_ONLY + UNUSED
        )
    ]
    assert loaded == []


def test_a_launcher_with_seau_elsewhere_on_its_path_serves_that_seau(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    shutil.copytree(Path(seau.__file__).parent, snapshot / "seau")
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(snapshot)!r})\n"
        "from seau.cli.main import main\n"
        "sys.argv = ['seau', 'serve', *sys.argv[1:]]\n"
        "main()\n"
    )
    port = free_port()
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), **reporting(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, str(launcher), "--port", str(port)],
        cwd=tmp_path,
        env=server_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = serving_process(tmp_path / "report.json", process.pid)
        # Stopped only once it serves: a SIGTERM during start-up is ignored.
        wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert Path(state["seau"]).is_relative_to(snapshot)


def test_serve_migrates_a_new_database_before_serving(tmp_path: Path) -> None:
    with seau_server({"SEAU_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path) as server:
        assert {"user_account", "user_file"} <= tables(tmp_path / "data" / "seau.db")
        assert sign_up(server.url) == 201


def test_serve_without_auto_migrate_leaves_the_schema_alone(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_AUTO_MIGRATE": "false"}
    with seau_server(env, cwd=tmp_path):
        assert "user_account" not in tables(tmp_path / "data" / "seau.db")


def test_a_failed_migration_stops_serve_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "seau.db") as connection:
        # A revision this seau does not know, as a newer release would leave.
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('ffffffffffff')")
    result = subprocess.run(
        [SEAU, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=server_env({"SEAU_DATA_DIR": str(data)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot migrate the database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


@contextmanager
def workers(env: dict[str, str], *, cwd: Path, count: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    with (cwd / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [SEAU, "serve", "--port", str(port), "--workers", str(count)],
            cwd=cwd,
            env=server_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_with_several_workers_serves(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data")}
    with workers(env, cwd=tmp_path, count=2) as (url, pid):
        assert sign_up(url) == 201
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) >= 2
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_sign_ins_leave_no_password_hash_memory_behind(tmp_path: Path) -> None:
    # Each argon2 hash allocates 19 MiB. With glibc's moving mmap threshold
    # the first sign-up left all of it resident (96 -> 117 MiB).
    with seau_server({"SEAU_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path) as server:
        before = resident_mib(server.pid)
        for number in range(3):
            email, password = f"user{number}@example.com", "a long enough password"
            created = httpx.post(
                f"{server.url}/api/v1/users", json={"email": email, "password": password}
            )
            assert created.status_code == 201
            signed_in = httpx.post(
                f"{server.url}/api/v1/auth/token",
                data={"username": email, "password": password},
                timeout=30,
            )
            assert signed_in.status_code == 200
        grown = resident_mib(server.pid) - before
    assert grown < 8, f"{grown:.1f} MiB more resident after three sign-ups and sign-ins"


def test_the_allocator_settings_yield_to_the_operators() -> None:
    chosen = server_environment(
        {"MALLOC_MMAP_THRESHOLD_": "65536", "SEAU_AUTO_MIGRATE": "true"}, code_root=None
    )
    assert chosen["MALLOC_MMAP_THRESHOLD_"] == "65536"
    assert chosen["SEAU_AUTO_MIGRATE"] == "false"
    assert "PYTHONPATH" not in chosen
    default = server_environment({"PYTHONPATH": "/elsewhere"}, code_root="/src")
    assert default["MALLOC_MMAP_THRESHOLD_"] == str(4 * 1024 * 1024)
    assert default["PYTHONPATH"] == os.pathsep.join(["/src", "/elsewhere"])


_CHURN = """
import os, resource
fd = os.open("/dev/zero", os.O_RDONLY)
def churn(times):
    for _ in range(times):
        a = os.pread(fd, 1 << 20, 0)
        b = os.pread(fd, 1 << 20, 0)
        del a, b
churn(50)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(200)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_the_serving_environment_reuses_freed_transfer_buffers() -> None:
    # A download allocates and frees a 1 MiB buffer per chunk; glibc must keep
    # them rather than return the heap's top and fault it in again every time.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env = server_environment(inherited, code_root=None)
    faults = subprocess.run(
        [sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, check=True
    )
    assert int(faults.stdout) < 1000, f"{faults.stdout.strip()} page faults for 400 chunks"
