"""Resumable (tus) uploads next to a plain POST of the same file, on both stores.

    .venv/bin/python bench/tus.py [--size-mib 512] [--stores local,s3] [--repeats 1]

For each store (moto for S3) and each way of uploading, it starts a fresh
`seau serve`, warms it up, and uploads the same bytes as: one raw
`POST /api/v1/files?name=`; tus with 8 MiB PATCHes; with 64 MiB PATCHes; with
10 MiB PATCHes (whole S3 parts at the default 5 MiB part size: no tail object);
and with 8 MiB PATCHes whose last one goes through a second instance (which has
not seen every byte, so it reads the object back once to hash it). It prints a
Markdown table: wall time, throughput, and the server's peak RSS above idle.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import make_bucket, moto_server, reset_peak_rss, s3_env, seau_server

MiB = 1024 * 1024
WORK = Path(__file__).parent / "results" / "work-tus"
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Row:
    store: str
    method: str
    seconds: float
    size: int
    peak_rss_mib: float

    @property
    def mib_per_second(self) -> float:
        return self.size / MiB / self.seconds


def body(size: int, block: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sign_in(url: str) -> dict[str, str]:
    email, password = f"bench-{secrets.token_hex(4)}@example.com", "benchmark password"
    httpx.post(f"{url}/api/v1/users", json={"email": email, "password": password})
    token = httpx.post(
        f"{url}/api/v1/auth/token", data={"username": email, "password": password}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def plain_post(url: str, auth: dict[str, str], size: int, block: bytes) -> str:
    response = httpx.post(
        f"{url}/api/v1/files",
        params={"name": "plain.bin"},
        headers={**auth, "Content-Type": "application/octet-stream", "Content-Length": str(size)},
        content=body(size, block),
        timeout=3600,
    )
    response.raise_for_status()
    file_id: str = response.json()["id"]
    return file_id


def tus_upload(
    urls: list[str], auth: dict[str, str], size: int, block: bytes, *, chunk: int
) -> str:
    """Create through ``urls[0]``; every PATCH through ``urls[0]`` except the last,
    which goes through ``urls[-1]``."""
    name = base64.b64encode(b"tus.bin").decode()
    created = httpx.post(
        f"{urls[0]}/api/v1/uploads",
        headers={**auth, **TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"},
    )
    created.raise_for_status()
    location = created.headers["location"]
    offset = 0
    while offset < size:
        length = min(chunk, size - offset)
        url = urls[-1] if offset + length == size else urls[0]
        response = httpx.patch(
            f"{url}{location}",
            headers={
                **auth,
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
                "Upload-Offset": str(offset),
            },
            content=body(length, block),
            timeout=3600,
        )
        response.raise_for_status()
        offset = int(response.headers["upload-offset"])
    return str(location.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Method:
    label: str
    chunk: int | None
    """PATCH size; None for a plain POST."""
    second_instance: bool = False


METHODS = [
    Method("plain POST (raw body)", None),
    Method("tus, 8 MiB PATCHes", 8 * MiB),
    Method("tus, 64 MiB PATCHes", 64 * MiB),
    Method("tus, 10 MiB PATCHes (whole S3 parts)", 10 * MiB),
    Method("tus, 8 MiB PATCHes, last via a 2nd instance", 8 * MiB, second_instance=True),
]


def measure(
    method: Method, env: dict[str, str], *, size: int, workdir: Path
) -> tuple[float, float]:
    """One upload by ``method`` on fresh servers: (seconds, peak RSS above idle in MiB)."""
    block = os.urandom(MiB)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(seau_server(env, cwd=workdir))
        servers = [first]
        if method.second_instance:
            servers.append(stack.enter_context(seau_server(env, cwd=workdir)))
        urls = [server.url for server in servers]
        auth = sign_in(first.url)
        # Warm up (imports, connection pools, the S3 clients) on every instance.
        tus_upload(urls, auth, 2 * MiB, block, chunk=MiB)
        plain_post(first.url, auth, MiB, block)
        idle = max(vm_rss_mib(server.pid) for server in servers)
        for server in servers:
            reset_peak_rss(server.pid)
        start = time.perf_counter()
        if method.chunk is None:
            file_id = plain_post(first.url, auth, size, block)
        else:
            file_id = tus_upload(urls, auth, size, block, chunk=method.chunk)
        seconds = time.perf_counter() - start
        peak = max(vm_hwm_mib(server.pid) for server in servers)
        # moto keeps every object in memory and slows down as it fills.
        httpx.delete(f"{first.url}/api/v1/files/{file_id}", headers=auth).raise_for_status()
    return seconds, peak - idle


def bench_store(store: str, *, size: int, repeats: int, workdir: Path) -> list[Row]:
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        env = {
            "SEAU_DATA_DIR": str(workdir / "data"),
            "SEAU_MAX_UPLOAD_BYTES": str(max(size, 5 * 1024 * MiB)),
            "SEAU_LOG_LEVEL": "warning",
        }
        if store == "s3":
            endpoint, _ = stack.enter_context(moto_server(workdir))
            bucket = f"bench-tus-{secrets.token_hex(4)}"
            make_bucket(endpoint, bucket)
            env |= s3_env(endpoint) | {"SEAU_STORAGE_URL": f"s3://{bucket}"}
        for _ in range(repeats):
            for method in METHODS:
                seconds, peak = measure(method, env, size=size, workdir=workdir)
                rows.append(Row(store, method.label, seconds, size, peak))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--stores", default="local,s3")
    parser.add_argument("--repeats", type=int, default=1)
    options = parser.parse_args()
    size = options.size_mib * MiB
    rows: list[Row] = []
    for store in options.stores.split(","):
        workdir = WORK / store
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            rows += bench_store(store, size=size, repeats=options.repeats, workdir=workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"| store | {options.size_mib} MiB uploaded as | seconds | MiB/s | peak RSS above idle |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.store} | {row.method} | {row.seconds:.1f} | {row.mib_per_second:.0f} "
            f"| {row.peak_rss_mib:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
