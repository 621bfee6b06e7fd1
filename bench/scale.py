"""Issue 16, point 5: many instances under load and faults (a program, not a test).

nginx (deploy/nginx.conf, rendered into a temporary prefix with loopback addresses)
in front of three `seau serve --workers 2` instances, on a scratch PostgreSQL
database and a bucket on Ceph's RADOS Gateway (tests/support/ceph.py: one mon, one
memstore OSD, one gateway). 200 clients (asyncio + aiohttp) upload files of 4 KiB to
64 MiB (raw, multipart and tus), and download (SHA-256 checked), list and delete
between uploads. Meanwhile one instance is SIGKILLed (its whole process group: the
supervisor and its workers, as a crash of the machine would) and restarted, twice, and
then all three are restarted one by one with SIGTERM. Afterwards, `seau gc` with a
1 s grace, and the invariants:

- every acknowledged upload (201, or tus 204 at the last byte) is listed, with its
  size and SHA-256, and downloads with the right SHA-256 from each instance in turn;
- nothing is listed that was not acknowledged (beyond uploads whose every answer was
  lost, counted apart) or that was deleted; no name twice;
- the bucket holds exactly the ready rows' objects (sizes equal), no other object, no
  unfinished multipart upload; no unfinished upload row;
- the quota invariant (tests/quotas/invariant.py);
- no 5xx in any instance's log; clients' failures (5xx, connection errors) only while
  an instance was down after a SIGKILL; none during the rolling restart.

    .venv/bin/python bench/scale.py            # 10,000 uploads, 200 clients (~15 min)
    .venv/bin/python bench/scale.py --quick    # 500 uploads, 50 clients, one kill

It prints the figures and the checks, writes them to bench/results/scale-*.json, and
exits 1 if a check failed. On this 2-core machine the full run does not fit CI's ten
minutes; docs/benchmarks.md ("Many instances under load and faults") has its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import boto3
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.quotas.invariant import check_invariant  # noqa: E402
from tests.support.ceph import CephCluster, CephUnavailable  # noqa: E402
from tests.support.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY  # noqa: E402

BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = ROOT / "deploy" / "nginx.conf"
RESULTS = ROOT / "bench" / "results"
KiB, MiB = 1024, 1024 * 1024
PASSWORD = "scale test password"  # noqa: S105 - scratch accounts
SECRET_KEY = "bench-scale-" + "s" * 40
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
TUS = {"Tus-Resumable": "1.0.0"}
# How long one upload, delete or download keeps retrying through faults: longer than
# an idempotency claim of a killed process lasts (90 s) and a tus lease (30 s).
RETRY_SECONDS = 150.0
# Failures up to this long after an instance answers again still count as its fault
# (nginx marks an upstream failed for fail_timeout after max_fails).
AFTER_RECOVERY_SLACK = 2.0


# -- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    count: int
    low: int
    high: int


def plan_sizes(uploads: int, rng: random.Random) -> list[int]:
    """Sizes, log-uniform within bands: 80 % 4-128 KiB, 17 % 128 KiB-1 MiB,
    2.5 % 1-16 MiB, the rest (48 of 10,000) 16-64 MiB."""
    large = max(1, round(uploads * 0.0048))
    medium = max(1, round(uploads * 0.0252))
    middle = round(uploads * 0.17)
    bands = [
        Band(uploads - large - medium - middle, 4 * KiB, 128 * KiB),
        Band(middle, 128 * KiB, MiB),
        Band(medium, MiB, 16 * MiB),
        Band(large, 16 * MiB, 64 * MiB),
    ]
    sizes = [
        int(math.exp(rng.uniform(math.log(b.low), math.log(b.high))))
        for b in bands
        for _ in range(b.count)
    ]
    rng.shuffle(sizes)
    return sizes


class Pool:
    """Random bytes that files are cut from: a unique 32-byte head, then a slice."""

    def __init__(self, rng: random.Random) -> None:
        self.data = rng.randbytes(64 * MiB + 64 * KiB)
        self.rng = rng

    def content(self, number: int, size: int) -> bytes:
        head = f"{number:010d}-{secrets.token_hex(10)}-".encode()[:32].ljust(32, b".")
        start = self.rng.randrange(0, len(self.data) - size)
        return (head + self.data[start : start + max(0, size - len(head))])[:size]


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Instance:
    """One `seau serve --workers 2`, in a process group of its own."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, workers: int) -> None:
        self.name = name
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"seau-{name}.log"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self.peak_rss_per_process = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    *(str(BIN / "seau"), "serve", "--host", "127.0.0.1"),
                    *("--port", str(self.port), "--workers", str(self.workers)),
                ],
                env=self.env,
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Until /readyz answers 200 directly; returns when (monotonic)."""
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return time.monotonic()
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the supervisor and its workers at once."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def rss(self) -> tuple[int, int]:
        """(sum over the supervisor and workers, the largest single process), bytes."""
        if self.process is None or self.process.poll() is not None:
            return 0, 0
        try:
            top = psutil.Process(self.process.pid)
            each = [p.memory_info().rss for p in [top, *top.children(recursive=True)]]
        except psutil.Error:
            return 0, 0
        return sum(each), max(each)


def render_site(instances: list[Instance], port: int) -> str:
    """deploy/nginx.conf with the instances' loopback addresses and a loopback listen."""
    text = CONFIG.read_text()
    servers = re.compile(r"^(\s*)server \d+\.\d+\.\d+\.\d+:\d+ (.*);$", re.MULTILINE)
    found = servers.findall(text)
    if len(found) != len(instances):
        raise RuntimeError(f"deploy/nginx.conf lists {len(found)} servers, not {len(instances)}")
    numbered = iter(instances)
    text = servers.sub(
        lambda m: f"{m.group(1)}server 127.0.0.1:{next(numbered).port} {m.group(2)};", text
    )
    text, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", text)
    assert listens == 1
    return text


def nginx_main(prefix: Path, site: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format scale '$msec $status $request_method $upstream_addr $upstream_status '
                     '$request_time "$request_uri"';
    access_log {prefix}/access.log scale;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


# -- what the clients record ------------------------------------------------------------


@dataclass
class Attempt:
    kind: str
    start: float
    end: float
    status: int  # 0: no HTTP answer
    error: str = ""


@dataclass
class Sent:
    number: int
    user: int
    name: str
    size: int
    sha256: str
    via: str
    file_id: str = ""
    acked: bool = False
    deleted: bool = False
    latency: float = 0.0


@dataclass
class Window:
    what: str
    instance: str
    start: float
    end: float = 0.0


@dataclass
class Run:
    t0: float
    attempts: list[Attempt] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    done_uploads: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class Failed(Exception):
    """An answer the client cannot retry."""


RETRYABLE = {409, 423, 429, 500, 502, 503, 504}


async def attempt(
    run: Run,
    kind: str,
    call: Callable[[], Awaitable[aiohttp.ClientResponse]],
) -> tuple[int, dict[str, str], bytes]:
    """One request; records it; returns (status, headers, body), status 0 if no answer."""
    start = time.monotonic()
    try:
        async with await call() as response:
            body = await response.read()
            status = response.status
            headers = {k.lower(): v for k, v in response.headers.items()}
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        run.attempts.append(Attempt(kind, start, time.monotonic(), 0, type(exc).__name__))
        return 0, {}, b""
    ok = status < 400 or (kind == "delete" and status == 404)
    run.attempts.append(
        Attempt(kind, start, time.monotonic(), status, "" if ok else body[:200].decode("latin-1"))
    )
    return status, headers, body


def retry_delay(status: int, headers: dict[str, str]) -> float:
    try:
        return min(5.0, max(0.2, float(headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


class Client:
    def __init__(
        self,
        run: Run,
        session: aiohttp.ClientSession,
        url: str,
        token: str,
        user: int,
        rng: random.Random,
    ) -> None:
        self.run, self.session, self.url, self.user, self.rng = run, session, url, user, rng
        self.auth = {"Authorization": f"Bearer {token}"}
        self.mine: list[Sent] = []

    # uploads

    async def upload(self, item: Sent, data: bytes) -> None:
        start = time.monotonic()
        if item.via == "tus":
            await self._tus(item, data)
        else:
            await self._post(item, data)
        if item.acked:
            item.latency = time.monotonic() - start
            self.run.latencies[f"upload {item.via}"].append(item.latency)
            self.run.bytes_up += item.size
            self.mine.append(item)

    async def _post(self, item: Sent, data: bytes) -> None:
        key = str(uuid.uuid4())
        headers = {**self.auth, "Idempotency-Key": key}
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            if item.via == "raw":
                status, answer, body = await attempt(
                    self.run,
                    "upload raw",
                    lambda: self.session.post(
                        f"{self.url}/api/v1/files",
                        params={"name": item.name},
                        data=data,
                        headers={**headers, "Content-Type": "application/octet-stream"},
                    ),
                )
            else:
                form = aiohttp.FormData()
                form.add_field(
                    "file", data, filename=item.name, content_type="application/octet-stream"
                )
                status, answer, body = await attempt(
                    self.run,
                    "upload multipart",
                    lambda form=form: self.session.post(  # type: ignore[misc]
                        f"{self.url}/api/v1/files", data=form, headers=headers
                    ),
                )
            if status == 201:
                made = json.loads(body)
                made = made["files"][0] if "files" in made else made
                self._acked(item, made)
                return
            if status and status not in RETRYABLE:
                self.run.problems.append(f"upload {item.name}: {status} {body[:200]!r}")
                return
            await asyncio.sleep(retry_delay(status, answer))

    def _acked(self, item: Sent, made: dict[str, Any]) -> None:
        item.file_id, item.acked = made["id"], True
        if made["size"] != item.size or made["sha256"] != item.sha256:
            self.run.problems.append(f"{item.name}: answered {made['size']} {made['sha256']}")

    async def _tus(self, item: Sent, data: bytes) -> None:
        deadline = time.monotonic() + RETRY_SECONDS
        metadata = "filename " + base64.b64encode(item.name.encode()).decode()
        headers = {
            **self.auth,
            **TUS,
            "Idempotency-Key": str(uuid.uuid4()),
            "Upload-Length": str(item.size),
            "Upload-Metadata": metadata,
        }
        location = ""
        while not location and time.monotonic() < deadline:
            status, answer, body = await attempt(
                self.run,
                "tus create",
                lambda: self.session.post(f"{self.url}/api/v1/uploads", headers=headers),
            )
            if status == 201:
                location = answer["location"]
            elif status and status not in RETRYABLE:
                self.run.problems.append(f"tus create {item.name}: {status} {body[:200]!r}")
                return
            else:
                await asyncio.sleep(retry_delay(status, answer))
        if not location:
            return
        item.file_id = location.rstrip("/").rsplit("/", 1)[1]
        chunk = 8 * MiB
        offset = 0
        while time.monotonic() < deadline:
            end = min(item.size, offset + chunk)
            status, answer, body = await attempt(
                self.run,
                "tus patch",
                lambda offset=offset, end=end: self.session.patch(  # type: ignore[misc]
                    location,
                    data=memoryview(data)[offset:end],
                    headers={
                        **self.auth,
                        **TUS,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                ),
            )
            if status == 204:
                offset = int(answer["upload-offset"])
                if offset == item.size:
                    item.acked = True
                    return
                continue
            if status and status not in RETRYABLE:
                self.run.problems.append(f"tus patch {item.name}: {status} {body[:200]!r}")
                break
            await asyncio.sleep(retry_delay(status, answer))
            # Where does the upload stand? (A lost answer may have stored the bytes.)
            while time.monotonic() < deadline:
                status, answer, body = await attempt(
                    self.run,
                    "tus head",
                    lambda: self.session.head(location, headers={**self.auth, **TUS}),
                )
                if status == 200:
                    offset = int(answer["upload-offset"])
                    break
                if status and status not in RETRYABLE:
                    self.run.problems.append(f"tus head {item.name}: {status}")
                    return
                await asyncio.sleep(retry_delay(status, answer))
            if offset == item.size:
                item.acked = True  # the last PATCH stored everything; its answer was lost
                return
        # Gave up: terminate, so nothing is left behind.
        await attempt(
            self.run,
            "tus delete",
            lambda: self.session.delete(location, headers={**self.auth, **TUS}),
        )

    # the rest of the mix

    async def download(self) -> None:
        if not self.mine:
            return
        item = self.rng.choice(self.mine)
        start = time.monotonic()
        while time.monotonic() - start < RETRY_SECONDS:
            try:
                digest, size, status = await self._get(item)
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                self.run.attempts.append(
                    Attempt("download", start, time.monotonic(), 0, type(exc).__name__)
                )
                await asyncio.sleep(1)
                continue
            self.run.attempts.append(Attempt("download", start, time.monotonic(), status))
            if status == 200:
                self.run.latencies["download"].append(time.monotonic() - start)
                self.run.bytes_down += size
                if digest != item.sha256:
                    self.run.problems.append(f"download {item.name}: SHA-256 {digest}")
                return
            if status not in RETRYABLE:
                self.run.problems.append(f"download {item.name}: {status}")
                return
            await asyncio.sleep(1)

    async def _get(self, item: Sent) -> tuple[str, int, int]:
        digest = hashlib.sha256()
        size = 0
        async with self.session.get(
            f"{self.url}/api/v1/files/{item.file_id}/content", headers=self.auth
        ) as response:
            if response.status != 200:
                await response.read()
                return "", 0, response.status
            async for piece in response.content.iter_chunked(256 * KiB):
                digest.update(piece)
                size += len(piece)
        return digest.hexdigest(), size, 200

    async def listing(self) -> None:
        start = time.monotonic()
        while time.monotonic() - start < RETRY_SECONDS:
            status, answer, body = await attempt(
                self.run,
                "list",
                lambda: self.session.get(
                    f"{self.url}/api/v1/files", params={"limit": "50"}, headers=self.auth
                ),
            )
            if status == 200:
                self.run.latencies["list"].append(time.monotonic() - start)
                return
            if status and status not in RETRYABLE:
                self.run.problems.append(f"list: {status} {body[:200]!r}")
                return
            await asyncio.sleep(retry_delay(status, answer))

    async def delete(self) -> None:
        if not self.mine:
            return
        item = self.mine.pop(self.rng.randrange(len(self.mine)))
        start = time.monotonic()
        retried = False
        while time.monotonic() - start < RETRY_SECONDS:
            status, answer, body = await attempt(
                self.run,
                "delete",
                lambda: self.session.delete(
                    f"{self.url}/api/v1/files/{item.file_id}", headers=self.auth
                ),
            )
            # 404 on a first try too: nginx sends a DELETE (idempotent) to another
            # instance when the first died under it, after it may have deleted.
            if status in (204, 404):
                item.deleted = True
                if status == 404 and not retried:
                    self.run.latencies["delete answered 404 (retried by nginx)"].append(0.0)
                self.run.latencies["delete"].append(time.monotonic() - start)
                return
            if status and status not in RETRYABLE:
                self.run.problems.append(f"delete {item.name}: {status} {body[:200]!r}")
                return
            retried = True
            await asyncio.sleep(retry_delay(status, answer))
        item.deleted = True  # unknown: the final listing tells
        self.run.problems.append(f"delete {item.name}: no answer within {RETRY_SECONDS:.0f} s")


# -- the run -----------------------------------------------------------------------------


@dataclass
class Options:
    uploads: int
    clients: int
    users: int
    kills: int
    rolling: bool
    seed: int
    keep: bool


async def create_database(name: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )


@contextlib.contextmanager
def ceph() -> Iterator[CephCluster]:
    cluster = CephCluster(Path(tempfile.mkdtemp(prefix="seau-scale-ceph-")) / "cluster")
    try:
        cluster.start()
    except CephUnavailable as exc:
        sys.exit(f"Ceph did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir.parent, ignore_errors=True)


@contextlib.contextmanager
def nginx(instances: list[Instance], workdir: Path) -> Iterator[str]:
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    site = prefix / "seau.conf"
    site.write_text(render_site(instances, port))
    main = prefix / "nginx.conf"
    main.write_text(nginx_main(prefix, site))
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_url(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def accounts(url: str, users: int) -> list[str]:
    tokens = []
    async with aiohttp.ClientSession() as session:
        for i in range(users):
            email = f"scale-{i}@example.com"
            async with session.post(
                f"{url}/api/v1/users", json={"email": email, "password": PASSWORD}
            ) as made:
                if made.status != 201:
                    raise RuntimeError(f"sign-up: {made.status} {await made.text()}")
            async with session.post(
                f"{url}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            ) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"sign-in: {answer.status} {await answer.text()}")
                tokens.append((await answer.json())["access_token"])
    return tokens


async def faults(
    run: Run, options: Options, instances: list[Instance], total: int, finished: asyncio.Event
) -> None:
    """SIGKILL and restart (at 15 % and 35 % of the uploads), then a rolling SIGTERM
    restart of every instance (from 50 %: each takes half a minute or more on a busy
    machine, and the last must still be under load)."""
    marks = [0.15, 0.35][: options.kills]
    for number, mark in enumerate(marks):
        while run.done_uploads < total * mark and not finished.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        victim = instances[number % len(instances)]
        window = Window("SIGKILL", victim.name, time.monotonic())
        await asyncio.to_thread(victim.kill)
        run.windows.append(window)
        await asyncio.to_thread(victim.start)
        window.end = await asyncio.to_thread(victim.wait_ready)
        print(f"  kill {victim.name}: back in {window.end - window.start:.1f} s", flush=True)
    if not options.rolling:
        return
    while run.done_uploads < total * 0.5 and not finished.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    for instance in instances:
        window = Window("SIGTERM", instance.name, time.monotonic())
        run.windows.append(window)
        code = await asyncio.to_thread(instance.terminate)
        if code != 0:
            run.problems.append(f"{instance.name} exited {code} on SIGTERM")
        await asyncio.to_thread(instance.start)
        window.end = await asyncio.to_thread(instance.wait_ready)
        print(f"  SIGTERM {instance.name}: back in {window.end - window.start:.1f} s", flush=True)


async def sample_rss(instances: list[Instance], finished: asyncio.Event) -> None:
    while not finished.is_set():
        for instance in instances:
            total, largest = instance.rss()
            instance.peak_rss = max(instance.peak_rss, total)
            instance.peak_rss_per_process = max(instance.peak_rss_per_process, largest)
        await asyncio.sleep(0.5)


async def load(
    run: Run, options: Options, url: str, tokens: list[str], instances: list[Instance]
) -> float:
    rng = random.Random(options.seed)
    pool = Pool(rng)
    sizes = plan_sizes(options.uploads, rng)
    ways = ("raw", "multipart", "tus")
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for number, size in enumerate(sizes):
        queue.put_nowait((number, size))
    finished = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)

    async def one_client(index: int) -> None:
        user = index % len(tokens)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = Client(run, session, url, tokens[user], user, random.Random(index))
            while True:
                try:
                    number, size = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                data = pool.content(number, size)
                item = Sent(
                    number=number,
                    user=user,
                    name=f"f{number:05d}-{size}.bin",
                    size=size,
                    sha256=hashlib.sha256(data).hexdigest(),
                    via=ways[number % 3],
                )
                run.sent.append(item)
                await client.upload(item, data)
                del data
                run.done_uploads += 1
                roll = client.rng.random()
                if roll < 0.35:
                    await client.download()
                elif roll < 0.45:
                    await client.listing()
                elif roll < 0.55:
                    await client.delete()

    started = time.monotonic()
    background = [
        asyncio.create_task(faults(run, options, instances, len(sizes), finished)),
        asyncio.create_task(sample_rss(instances, finished)),
    ]

    async def progress() -> None:
        while not finished.is_set():
            await asyncio.sleep(10)
            print(
                f"  {time.monotonic() - started:5.0f} s: {run.done_uploads} uploads done, "
                f"{run.bytes_up / MiB:.0f} MiB up, {run.bytes_down / MiB:.0f} MiB down",
                flush=True,
            )

    background.append(asyncio.create_task(progress()))
    await asyncio.gather(*(one_client(i) for i in range(options.clients)))
    elapsed = time.monotonic() - started
    finished.set()
    await background[0]  # the faults finish (a restart in progress completes)
    for task in background[1:]:
        task.cancel()
    return elapsed


# -- afterwards --------------------------------------------------------------------------


async def verify(
    run: Run,
    url: str,
    tokens: list[str],
    instances: list[Instance],
    database: str,
    s3: Any,
    bucket: str,
) -> tuple[dict[str, Any], list[str]]:
    """The invariants; returns figures and the failures (empty when all hold)."""
    failures: list[str] = []
    by_user: dict[int, list[Sent]] = defaultdict(list)
    for item in run.sent:
        by_user[item.user].append(item)
    listed: dict[str, dict[str, Any]] = {}
    owner_of: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        for user, token in enumerate(tokens):
            cursor: str | None = None
            names: Counter[str] = Counter()
            while True:
                params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
                async with session.get(
                    f"{url}/api/v1/files",
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer:
                    assert answer.status == 200, await answer.text()
                    page = await answer.json()
                for entry in page["items"]:
                    listed[entry["id"]] = entry
                    owner_of[entry["id"]] = user
                    names[entry["name"]] += 1
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            twice = [name for name, n in names.items() if n > 1]
            if twice:
                failures.append(f"user {user}: listed more than once: {twice[:5]}")

    expected = {i.file_id: i for i in run.sent if i.acked and not i.deleted}
    deleted = {i.file_id for i in run.sent if i.acked and i.deleted}
    unanswered = {i.name: i for i in run.sent if not i.acked}
    acknowledged_names = {i.name: i.file_id for i in run.sent if i.acked}
    for file_id, item in expected.items():
        entry = listed.get(file_id)
        if entry is None:
            failures.append(f"acknowledged {item.name} ({file_id}) is not listed")
        elif (entry["size"], entry["sha256"], entry["name"]) != (item.size, item.sha256, item.name):
            failures.append(f"{item.name}: listed as {entry['size']} {entry['sha256']}")
    stray_unanswered = 0
    for file_id, entry in listed.items():
        if file_id in expected:
            continue
        if file_id in deleted:
            failures.append(f"deleted {entry['name']} ({file_id}) is still listed")
        elif entry["name"] in unanswered:
            stray_unanswered += 1  # stored, but every answer to it was lost
        elif entry["name"] in acknowledged_names:
            failures.append(
                f"{entry['name']} stored twice: {file_id} besides the acknowledged "
                f"{acknowledged_names[entry['name']]} (a retry with the same Idempotency-Key "
                "ran again)"
            )
        else:
            failures.append(f"listed {entry['name']} ({file_id}) was never acknowledged")

    # Every listed file, downloaded from each instance in turn.
    digests_ok = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        slots = asyncio.Semaphore(16)

        async def check(number: int, file_id: str) -> None:
            nonlocal digests_ok
            entry = listed[file_id]
            base = instances[number % len(instances)].url
            auth = {"Authorization": f"Bearer {tokens[owner_of[file_id]]}"}
            async with (
                slots,
                session.get(f"{base}/api/v1/files/{file_id}/content", headers=auth) as answer,
            ):
                digest = hashlib.sha256()
                async for piece in answer.content.iter_chunked(256 * KiB):
                    digest.update(piece)
                if answer.status != 200 or digest.hexdigest() != entry["sha256"]:
                    failures.append(f"{entry['name']} from {base}: {answer.status}")
                else:
                    digests_ok += 1

        await asyncio.gather(*(check(n, f) for n, f in enumerate(sorted(listed))))

    # The bucket against the rows.
    connection = await asyncpg.connect(dsn=database.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch("SELECT object_key, size, state FROM user_file")
        unfinished = await connection.fetchval("SELECT COUNT(*) FROM upload WHERE state <> 'done'")
        states = Counter(str(r["state"]) for r in rows)
    finally:
        await connection.close()
    ready = {r["object_key"]: int(r["size"]) for r in rows if r["state"] == "ready"}
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = int(item["Size"])
    multipart = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    missing = [k for k in ready if k not in objects]
    wrong_size = [k for k, size in ready.items() if k in objects and objects[k] != size]
    orphans = [k for k in objects if k not in ready]
    if missing:
        failures.append(f"{len(missing)} ready rows without their object: {missing[:5]}")
    if wrong_size:
        failures.append(f"{len(wrong_size)} objects of the wrong size: {wrong_size[:5]}")
    if orphans:
        failures.append(f"{len(orphans)} orphan objects after gc: {orphans[:5]}")
    if multipart:
        keys = [u["Key"] for u in multipart[:5]]
        failures.append(f"{len(multipart)} unfinished multipart uploads after gc: {keys}")
    if unfinished:
        failures.append(f"{unfinished} upload rows not done")
    if len(ready) != len(listed):
        failures.append(f"{len(ready)} ready rows, {len(listed)} files listed")

    try:
        quota = await check_invariant(database)
    except AssertionError as exc:
        failures.append(f"quota invariant: {exc!r}")
        quota = {}

    return {
        "listed": len(listed),
        "expected": len(expected),
        "deleted": len(deleted),
        "unanswered": len(unanswered),
        "unanswered_but_stored": stray_unanswered,
        "downloads_verified": digests_ok,
        "objects": len(objects),
        "rows": dict(states),
        "quota": quota,
    }, failures


def database_warnings(instances: list[Instance]) -> dict[str, int]:
    """Why the database answered 503: the `seau.db` warnings of every instance's
    log, by message (numbers and names of the moment folded, so alike ones add up)."""
    counts: Counter[str] = Counter()
    for instance in instances:
        for line in instance.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "seau.db" and entry.get("level") == "warning":
                message = re.sub(r"\d+", "N", str(entry.get("message", "")))
                counts[message[:160]] += 1
    return dict(counts.most_common())


def server_errors(instances: list[Instance]) -> dict[str, Counter[str]]:
    """5xx answers and ERROR lines in each instance's log."""
    found: dict[str, Counter[str]] = {}
    for instance in instances:
        counts: Counter[str] = Counter()
        for line in instance.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    counts["traceback"] += 1
                continue
            status = entry.get("status")
            if isinstance(status, int) and status >= 500:
                counts[f"{status} {entry.get('route', '')}"] += 1
            if entry.get("level") in ("ERROR", "CRITICAL", "error", "critical"):
                counts[f"log {entry.get('level')}: {str(entry.get('message', ''))[:80]}"] += 1
        found[instance.name] = counts
    return found


def nginx_answers(prefix: Path, t0_wall: float, t0: float) -> list[tuple[float, int, str]]:
    """(when, on the monotonic clock; status; upstream) of every answer nginx logged."""
    out = []
    for line in (prefix / "access.log").read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].isdigit():
            out.append((float(parts[0]) - t0_wall + t0, int(parts[1]), parts[3]))
    return out


def serving_again(window: Window, port: int, answers: list[tuple[float, int, str]]) -> float:
    """Seconds from the fault to the restarted instance's first 2xx through nginx."""
    mine = f"127.0.0.1:{port}"
    after = [
        t
        for t, status, upstream in answers
        if t > window.start and status < 300 and upstream.split(",")[-1].strip() == mine
    ]
    return round(min(after) - window.start, 2) if after else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def classify(run: Run) -> tuple[Counter[str], list[str]]:
    """Failed attempts by window; failures outside a SIGKILL window are violations."""
    counts: Counter[str] = Counter()
    violations = []
    for a in run.attempts:
        failed = a.status == 0 or a.status >= 500
        if not failed:
            continue
        where = "outside any fault"
        for w in run.windows:
            if a.start <= w.end + AFTER_RECOVERY_SLACK and a.end >= w.start:
                where = f"{w.what} {w.instance}"
                break
        label = str(a.status) if a.status else a.error
        counts[f"{where}: {a.kind} {label}"] += 1
        if not where.startswith("SIGKILL") or a.status not in (0, 502, 503, 504):
            violations.append(f"{a.kind} {label} at {a.start - run.t0:.1f} s ({where})")
    return counts, violations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 uploads, 50 clients, one kill")
    parser.add_argument("--uploads", type=int)
    parser.add_argument("--clients", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--kills", type=int, choices=(0, 1, 2))
    parser.add_argument("--no-rolling", action="store_true")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    options = Options(
        uploads=args.uploads or (500 if args.quick else 10_000),
        clients=args.clients or (50 if args.quick else 200),
        users=args.users or (5 if args.quick else 20),
        kills=args.kills if args.kills is not None else (1 if args.quick else 2),
        rolling=not args.no_rolling,
        seed=args.seed,
        keep=args.keep,
    )
    sys.exit(asyncio.run(scale(options)))


async def scale(options: Options) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="work-scale-", dir=RESULTS))
    name = f"seau_scale_{os.getpid()}_{secrets.token_hex(3)}"
    await create_database(name)
    database = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    print(f"database {name}, work directory {workdir}", flush=True)
    try:
        with ceph() as cluster:
            return await with_stack(options, workdir, database, cluster)
    finally:
        if options.keep:
            print(f"kept: {workdir} and the database {name}", flush=True)
        else:
            await drop_database(name)
            shutil.rmtree(workdir, ignore_errors=True)


async def with_stack(options: Options, workdir: Path, database: str, cluster: CephCluster) -> int:
    s3 = s3_client(cluster.endpoint_url)
    bucket = f"seau-scale-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAU_", "AWS_"))}
    env.update(
        {
            "SEAU_DATABASE_URL": database,
            "SEAU_STORAGE_URL": f"s3://{bucket}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": cluster.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "SEAU_SECRET_KEY": SECRET_KEY,
            "SEAU_TRUSTED_PROXIES": "127.0.0.1",
            "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
            "SEAU_SIGNUP_PER_MINUTE": "0",
            "SEAU_DEFAULT_QUOTA_BYTES": str(1 << 40),
            "SEAU_GC_INTERVAL_SECONDS": "0",
            "SEAU_LOG_LEVEL": "info",
            "SEAU_DATA_DIR": str(workdir / "data"),
        }
    )
    migrated = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "seau"), "db", "upgrade"],
        env=env,
        capture_output=True,
        check=False,
    )
    if migrated.returncode:
        raise RuntimeError(f"seau db upgrade: {migrated.stderr.decode()[-1000:]}")
    instances = [Instance(n, env, workdir, workers=2) for n in ("a", "b", "c")]
    try:
        with nginx(instances, workdir) as url:
            for instance in instances:
                instance.env = {**env, "SEAU_PUBLIC_URL": url}
                instance.start()
            for instance in instances:
                await asyncio.to_thread(instance.wait_ready)
            await wait_url(f"{url}/healthz")
            tokens = await accounts(url, options.users)
            run = Run(t0=time.monotonic())
            t0_wall = time.time()
            print(
                f"{options.uploads} uploads from {options.clients} clients "
                f"({options.users} accounts) through {url}",
                flush=True,
            )
            elapsed = await load(run, options, url, tokens, instances)
            print(f"load done in {elapsed:.0f} s; gc, then the checks", flush=True)
            await asyncio.sleep(2)
            gc = await asyncio.to_thread(
                subprocess.run,
                [str(BIN / "seau"), "gc"],
                env={**env, "SEAU_GC_GRACE_SECONDS": "1"},
                capture_output=True,
                text=True,
                check=False,
            )
            figures, failures = await verify(run, url, tokens, instances, database, s3, bucket)
            rss = {i.name: (i.peak_rss, i.peak_rss_per_process) for i in instances}
            proxied = nginx_answers(workdir / "nginx", t0_wall, run.t0)
            ports = {i.name: i.port for i in instances}
    finally:
        for instance in instances:
            if instance.process is not None and instance.process.poll() is None:
                instance.terminate()
    if gc.returncode:
        failures.append(f"seau gc exited {gc.returncode}: {gc.stderr[-500:]}")
    logged = server_errors(instances)
    why_503 = database_warnings(instances)
    for instance_name, counts in logged.items():
        for what, n in counts.items():
            failures.append(f"instance {instance_name} log: {n} x {what}")
    counts, violations = classify(run)
    failures += [f"failure outside a SIGKILL window: {v}" for v in violations[:20]]
    if len(violations) > 20:
        failures.append(f"... {len(violations) - 20} more failures outside SIGKILL windows")
    failures += [f"client: {p}" for p in run.problems[:20]]
    report = summarise(run, options, elapsed, figures, counts, rss, proxied, ports, gc.stdout)
    report["database_warnings"] = why_503
    report["failures"] = failures
    out = RESULTS / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=2, default=str))
    print(f"written to {out}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("every invariant holds")
    return 0


def summarise(
    run: Run,
    options: Options,
    elapsed: float,
    figures: dict[str, Any],
    counts: Counter[str],
    rss: dict[str, tuple[int, int]],
    proxied: list[tuple[float, int, str]],
    ports: dict[str, int],
    gc_output: str,
) -> dict[str, Any]:
    acked = [i for i in run.sent if i.acked]
    kinds = Counter(a.kind for a in run.attempts)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    for a in run.attempts:
        answers[a.kind][str(a.status) if a.status else a.error] += 1
    names = {f"127.0.0.1:{port}": name for name, port in ports.items()}
    return {
        "options": asdict(options),
        "seconds": round(elapsed, 1),
        "uploads_acknowledged": len(acked),
        "uploads_per_second": round(len(acked) / elapsed, 1),
        "upload_mib": round(run.bytes_up / MiB, 1),
        "upload_mib_per_second": round(run.bytes_up / MiB / elapsed, 1),
        "download_mib": round(run.bytes_down / MiB, 1),
        "requests": dict(kinds),
        "answers": {kind: dict(counts) for kind, counts in sorted(answers.items())},
        "latency_ms": {
            kind: {
                "n": len(values),
                "p50": round(percentile(values, 0.5) * 1000, 1),
                "p99": round(percentile(values, 0.99) * 1000, 1),
                "max": round(max(values) * 1000, 1),
            }
            for kind, values in sorted(run.latencies.items())
        },
        "failed_attempts": dict(counts),
        "nginx_5xx": dict(Counter(f"{s} {names.get(u, u)}" for _, s, u in proxied if s >= 500)),
        # Each 5xx nginx answered: seconds into the run, status, which instance.
        "nginx_5xx_at": [
            (round(t - run.t0, 1), s, names.get(u, u)) for t, s, u in sorted(proxied) if s >= 500
        ],
        "faults": [
            {
                "what": w.what,
                "instance": w.instance,
                "at_s": round(w.start - run.t0, 1),
                "ready_after_s": round(w.end - w.start, 2),
                "serving_after_s": serving_again(w, ports[w.instance], proxied),
            }
            for w in run.windows
        ],
        "peak_rss_mib": {
            name: {"instance": round(total / MiB), "largest_process": round(one / MiB)}
            for name, (total, one) in rss.items()
        },
        "gc": gc_output.strip()[-500:],
        "checks": figures,
    }


if __name__ == "__main__":
    main()
