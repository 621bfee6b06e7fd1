"""The peer servers of ``../shared/peers/`` started next to seau in the same run.

- ``seed-node``: the course's design (Express + multer + aws-sdk + MariaDB), on the
  same moto server as seau's S3 store, with a MariaDB database and user of its own
  (``bench_seed_<pid>``, dropped afterwards).
- ``null-node``: the same API on ``node:http`` + busboy, no storage: the loopback
  HTTP + multipart ceiling.
- ``lean-python``: Starlette on uvicorn doing a seau request's durable work and
  nothing else: the floor of Python's cost per request.

The peers' folders are read-only; each is copied under ``~/.cache/seau-bench/peers/``
(``$XDG_CACHE_HOME``; outside the checkout, where mypy and ruff would lint the copies)
and ``npm ci`` runs there once (again only when its ``package-lock.json`` changes).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt

import harness

PEERS_HOME = Path(
    os.environ.get("SEAU_BENCH_PEERS", Path(__file__).resolve().parents[2] / "shared" / "peers")
)
LOCAL_PEERS = ("lean-python", "null-node")
S3_PEERS = ("seed-node",)
TOKEN = "bench-peer-token"  # noqa: S105 - a fixed bearer for a loopback-only peer
LEAN_SECRET = "s" * 48  # the key lean-python verifies with (its app.py)
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seau-bench" / "peers"
MARIADB = {"host": "127.0.0.1", "port": "3306", "user": "root"}


@dataclass
class PeerServer:
    label: str
    process: subprocess.Popen[bytes]
    url: str
    token: str

    @property
    def pid(self) -> int:
        return self.process.pid


def available(name: str) -> bool:
    """The peer's sources are there and, for the Node peers, Node.js is installed."""
    if not (PEERS_HOME / name).is_dir():
        return False
    return name == "lean-python" or shutil.which("node") is not None


def prepare(name: str, cache: Path) -> Path:
    """A writable copy of the peer, with its dependencies installed (Node peers)."""
    source = PEERS_HOME / name
    copy = cache / name
    lock = source / "package-lock.json"
    fresh = copy.is_dir() and (
        not lock.exists()
        or (
            (copy / "node_modules").is_dir()
            and filecmp.cmp(lock, copy / "package-lock.json", shallow=False)
        )
    )
    if fresh:
        # Sources are small: refresh them, keep node_modules.
        shutil.copytree(source, copy, dirs_exist_ok=True)
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    if lock.exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=copy,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return copy


@contextlib.contextmanager
def peer_server(
    name: str, *, cache: Path, workdir: Path, s3_endpoint: str | None = None
) -> Iterator[PeerServer]:
    """Start peer ``name`` on a free port; its data (if any) goes under ``workdir``."""
    folder = prepare(name, cache)
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    env |= {"HOST": "127.0.0.1", "PORT": str(port), "API_TOKEN": TOKEN}
    token = TOKEN
    with contextlib.ExitStack() as stack:
        if name == "lean-python":
            data = workdir / "lean-python"
            data.mkdir(parents=True, exist_ok=True)
            env["LEAN_DIR"] = str(data)
            token = jwt.encode({"sub": "u1", "tv": 0, "aud": "seau"}, LEAN_SECRET, "HS256")
            argv = [str(harness.BIN / "python"), "-m", "uvicorn", "app:app"]
            argv += ["--app-dir", str(folder), "--host", "127.0.0.1", "--port", str(port)]
            argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        elif name == "null-node":
            argv = ["node", "server.js"]
        elif name == "seed-node":
            if s3_endpoint is None:
                raise ValueError("seed-node needs an S3 endpoint")
            database = stack.enter_context(_mariadb_database(folder))
            env |= {
                "S3_ENDPOINT": s3_endpoint,
                "S3_REGION": harness.MOTO_REGION,
                "S3_BUCKET": "seed-node",
                "S3_ACCESS_KEY_ID": harness.MOTO_ACCESS_KEY,
                "S3_SECRET_ACCESS_KEY": harness.MOTO_SECRET_KEY,
                "DB_HOST": MARIADB["host"],
                "DB_PORT": MARIADB["port"],
                "DB_USER": database,
                "DB_PASSWORD": database,
                "DB_NAME": database,
            }
            argv = ["node", "src/index.js"]
        else:
            raise ValueError(f"unknown peer {name}")
        log = workdir / f"{name}-{port}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        stack.callback(harness.stop_process, process)
        url = f"http://127.0.0.1:{port}"
        harness.wait_http(f"{url}/health", process=process, log=log, timeout=60)
        yield PeerServer(label=name, process=process, url=url, token=token)


@contextlib.contextmanager
def _mariadb_database(folder: Path) -> Iterator[str]:
    """A database and a user named ``bench_seed_<pid>`` (password: the same), with the
    peer's schema; both dropped afterwards. (The peer reads an empty password as unset.)"""
    name = f"bench_seed_{os.getpid()}"
    _mariadb(
        f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; "
        f"CREATE OR REPLACE USER '{name}'@'%' IDENTIFIED BY '{name}'; "
        f"GRANT ALL ON {name}.* TO '{name}'@'%';"
    )
    _mariadb((folder / "dbms" / "ddl" / "ddl.sql").read_text(), database=name)
    try:
        yield name
    finally:
        _mariadb(f"DROP DATABASE IF EXISTS {name}; DROP USER IF EXISTS '{name}'@'%';")


def _mariadb(script: str, *, database: str = "") -> None:
    argv = ["mariadb", "-h", MARIADB["host"], "-P", MARIADB["port"], "-u", MARIADB["user"]]
    subprocess.run([*argv, *([database] if database else [])], input=script.encode(), check=True)
