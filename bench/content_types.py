"""What deciding types from the bytes costs an upload.

1. libmagic alone: `seau.files.types.detect` on the first `SNIFF_BYTES` of each file
   of the tests' corpus (tests/files/corpus.py) and of a few larger texts (this
   repository's Markdown, JavaScript and HTML), median over ``--calls`` calls.
2. Whole uploads: a real `seau serve` (one worker, SQLite, local store), ``--uploads``
   raw uploads of ``--size`` bytes, ``--concurrency`` at a time, of a text body and of
   a binary (PNG) body. Modes, alternated over ``--repeats`` rounds, each on a fresh
   server: ``detect`` (this tree) and ``off`` (this tree with `TypePolicy.detect`
   answering `application/octet-stream` at once, through a `sitecustomize` on the
   server's `PYTHONPATH`). Reports uploads per second and the server's CPU time
   per upload.

    .venv/bin/python bench/content_types.py [--uploads 2000] [--concurrency 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from tests.files import corpus
from tests.support.server import seau_server

from seau.files.types import SNIFF_BYTES, detect

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-types-" + "k" * 52
PASSWORD = "correct horse battery"  # noqa: S105  (a scratch account)
OFF = """\
import seau.files.types as types


async def _no_detection(self, head):
    return "application/octet-stream"


types.TypePolicy.detect = _no_detection
"""


def libmagic(calls: int) -> None:
    texts = {
        "decisions.md": (ROOT / "docs" / "decisions.md").read_bytes(),
        "app.js": (ROOT / "src" / "seau" / "web" / "static" / "app.js").read_bytes(),
        "index.html": b"<!DOCTYPE html>\n"
        + (ROOT / "src" / "seau" / "web" / "static" / "index.html").read_bytes() * 8,
    }
    rows = [(s.name, s.data) for s in corpus.samples()] + list(texts.items())
    print(f"libmagic on the first {SNIFF_BYTES} bytes (median of {calls} calls):")
    timings = []
    for name, data in rows:
        head = data[:SNIFF_BYTES]
        detect(head)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            found = detect(head)
            samples.append(time.perf_counter() - started)
        median = statistics.median(samples)
        timings.append(median)
        print(f"  {name:>16} {len(head):>6} B  {median * 1e6:>8.0f} µs  {found}")
    print(
        f"  all: median {statistics.median(timings) * 1e6:.0f} µs, max {max(timings) * 1e6:.0f} µs"
    )


async def one_round(
    mode: str, body: bytes, *, uploads: int, concurrency: int
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "SEAU_DATA_DIR": tmp,
            "SEAU_SECRET_KEY": SECRET_KEY,
            "SEAU_LOG_LEVEL": "warning",
            "SEAU_GC_INTERVAL_SECONDS": "0",
        }
        if mode == "off":
            (Path(tmp) / "sitecustomize.py").write_text(OFF)
            env["PYTHONPATH"] = tmp
        with seau_server(env, cwd=Path(tmp)) as server:
            async with httpx.AsyncClient(
                base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
            ) as client:
                auth = await _account(client)
                queue = iter(range(uploads))

                async def worker() -> None:
                    for i in queue:
                        made = await client.post(
                            "/api/v1/files", params={"name": f"f{i}"}, content=body, headers=auth
                        )
                        assert made.status_code == 201, made.text

                for _ in range(200):  # warm-up
                    await client.post(
                        "/api/v1/files", params={"name": "w"}, content=body, headers=auth
                    )
                process = psutil.Process(server.process.pid)
                processes = [process, *process.children(recursive=True)]
                cpu = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - started
                spent = sum(p.cpu_times().user + p.cpu_times().system for p in processes) - cpu
                return uploads / elapsed, spent / uploads


async def _account(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def main(options: argparse.Namespace) -> None:
    libmagic(options.calls)
    text = (ROOT / "docs" / "decisions.md").read_bytes()[: options.size]
    binary = (corpus.png() + bytes(options.size))[: options.size]
    for label, body in (("text", text), ("png", binary)):
        results: dict[str, list[tuple[float, float]]] = {"detect": [], "off": []}
        for round_ in range(options.repeats):
            modes = ["detect", "off"] if round_ % 2 == 0 else ["off", "detect"]
            for mode in modes:
                rate, cpu = await one_round(
                    mode, body, uploads=options.uploads, concurrency=options.concurrency
                )
                results[mode].append((rate, cpu))
                print(
                    f"{label} round {round_ + 1} {mode:>6}: {rate:.0f} uploads/s, "
                    f"{cpu * 1e3:.2f} ms CPU per upload",
                    flush=True,
                )
        for mode, values in results.items():
            rate = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            print(f"{label} {mode:>6}: median {rate:.0f} uploads/s, {cpu * 1e3:.2f} ms CPU/upload")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per upload")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200, help="libmagic calls per file")
    asyncio.run(main(parser.parse_args()))
