"""A large file sent as a direct upload vs through seau's API, on S3 (moto's server):
seau's CPU seconds, its peak RSS, and the wall time.

A real `seau serve` (one worker, SQLite) per run, on a bucket of its own; the file is
random bytes (so no compression helps). Modes:

- ``api``: one raw `POST /api/v1/files` (every byte through seau);
- ``direct-multi``: `POST /api/v1/direct-uploads` in parts (the default above
  `SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES`), two parts in flight, as `seau upload
  --direct` sends them;
- ``direct-single``: one presigned POST (threshold raised above the size).

moto stores no checksum for a POST, so both direct modes include seau reading the
object back to hash it at completion (on S3 a single part sent with its `sha256` is
verified by S3 and not read back). Peak RSS is the server's VmHWM, so each mode runs
on a fresh server.

    .venv/bin/python bench/direct.py [--mib 512] [--modes api,direct-multi,direct-single]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.moto import make_bucket, running_moto_server
from tests.support.server import seau_server

from seau.cli.client_direct import upload_direct

MiB = 1024 * 1024
PASSWORD = "correct horse battery"  # noqa: S105 (a throw-away account)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _token(client: httpx.AsyncClient) -> str:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    answer = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    token: str = answer.json()["access_token"]
    return token


async def run(mode: str, path: Path, size: int, endpoint: str, tmp: Path) -> str:
    data = tmp / f"data-{mode}"
    data.mkdir()
    env = {
        "SEAU_DATA_DIR": str(data),
        "SEAU_SIGNUP_PER_ADDRESS_PER_HOUR": "0",
        "SEAU_MAX_UPLOAD_BYTES": str(max(size, MiB)),
        "SEAU_STORAGE_URL": f"s3://{make_bucket(endpoint)}",
        "SEAU_S3_PATH_STYLE": "true",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "SEAU_LOG_LEVEL": "warning",
        "SEAU_GC_INTERVAL_SECONDS": "0",
        # moto, in one Python process, can stall for longer than the default 30 s
        # while it assembles a large object.
        "SEAU_STORAGE_TIMEOUT_SECONDS": "300",
    }
    if mode == "direct-single":
        env["SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES"] = str(size + 1)
    with seau_server(env, cwd=tmp) as server:
        process = psutil.Process(server.process.pid)
        async with httpx.AsyncClient(base_url=server.url, timeout=3600) as client:
            headers = {"Authorization": f"Bearer {await _token(client)}"}
            rss_before = process.memory_info().rss
            cpu_before = _cpu(process)
            started = time.monotonic()
            if mode == "api":

                async def body() -> AsyncIterator[bytes]:
                    with path.open("rb") as source:
                        while chunk := source.read(MiB):
                            yield chunk

                response = await client.post(
                    "/api/v1/files",
                    params={"name": "big.bin"},
                    content=body(),
                    headers={**headers, "Content-Length": str(size)},
                )
                assert response.status_code == 201, response.text
            else:
                await upload_direct(
                    client,
                    path,
                    headers=headers,
                    name="big.bin",
                    size=size,
                    content_type="application/octet-stream",
                    on_progress=lambda _: None,
                )
            wall = time.monotonic() - started
            cpu = _cpu(process) - cpu_before
            peak = _peak_rss(process.pid)
    return (
        f"| {mode} | {size // MiB} MiB | {cpu:.2f} | {rss_before / MiB:.0f} | "
        f"{peak / MiB:.0f} | {wall:.1f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--modes", default="api,direct-multi,direct-single")
    args = parser.parse_args()
    size = args.mib * MiB
    with tempfile.TemporaryDirectory() as directory, running_moto_server() as moto:
        tmp = Path(directory)
        path = tmp / "big.bin"
        with path.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(MiB))
        print("| mode | size | seau CPU s | RSS before MiB | peak RSS MiB | wall s |")
        print("|---|---|---|---|---|---|")
        for mode in args.modes.split(","):
            print(await run(mode, path, size, moto.endpoint_url, tmp), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
