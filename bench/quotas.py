"""What quota reservation costs an upload: small raw uploads per second on PostgreSQL
(``--database sqlite`` or ``mysql`` for the others).

A real `seau serve` (one worker, local store) on a fresh PostgreSQL database (the
tests' server, `tests.support.databases`), ``--uploads`` raw 4 KiB uploads with
`Content-Length`, ``--concurrency`` at a time, by one account (``--accounts``: spread
over several; one owner's uploads meet on their usage row). Modes, alternated over
``--repeats`` rounds, each on a fresh database and server:

- ``quota``: this tree, `SEAU_DEFAULT_QUOTA_BYTES` = 1 TiB (every upload reserves
  against a limit, then settles);
- ``unlimited``: this tree with no quota (usage is still counted: the same SQL);
- ``before``: the tree of ``--before-src`` (e.g. `git archive HEAD~1 | tar -x -C
  /tmp/before`, then ``--before-src /tmp/before/src``), which has no quotas.

    .venv/bin/python bench/quotas.py [--uploads 3000] [--concurrency 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from tests.support.databases import Kind, scratch_database
from tests.support.server import seau_server

SECRET_KEY = "bench-quotas-" + "k" * 51
PASSWORD = "correct horse battery"  # noqa: S105  (a scratch account)
BODY = os.urandom(4096)


async def one_round(
    mode: str,
    *,
    uploads: int,
    concurrency: int,
    accounts: int,
    before_src: str | None,
    kind: Kind = "postgresql",
) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(kind, Path(tmp)) as database,
    ):
        env = {
            "SEAU_DATA_DIR": tmp,
            "SEAU_DATABASE_URL": database,
            "SEAU_SECRET_KEY": SECRET_KEY,
            "SEAU_LOG_LEVEL": "warning",
            "SEAU_GC_INTERVAL_SECONDS": "0",
        }
        if mode == "quota":
            env["SEAU_DEFAULT_QUOTA_BYTES"] = str(1 << 40)
        if mode == "before":
            assert before_src is not None
            env["PYTHONPATH"] = before_src
        with seau_server(env, cwd=Path(tmp)) as server:
            async with httpx.AsyncClient(
                base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
            ) as client:
                auths = [await _account(client) for _ in range(accounts)]
                auth = auths[0]
                queue = iter(range(uploads))

                async def worker(auth: dict[str, str]) -> None:
                    for i in queue:
                        made = await client.post(
                            "/api/v1/files", params={"name": f"f{i}"}, content=BODY, headers=auth
                        )
                        assert made.status_code == 201, made.text

                # Warm-up: connections, the first statements prepared.
                warm = iter(range(200))
                for _ in warm:
                    await client.post(
                        "/api/v1/files", params={"name": "w"}, content=BODY, headers=auth
                    )
                tree = _tree(server.pid)
                cpu = _cpu(tree)
                started = time.perf_counter()
                await asyncio.gather(*(worker(auths[w % accounts]) for w in range(concurrency)))
                rate = uploads / (time.perf_counter() - started)
                print(
                    f"  {mode}: {(_cpu(tree) - cpu) / uploads * 1000:.2f} ms of server CPU "
                    "per upload",
                    flush=True,
                )
                return rate


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu(tree: list[psutil.Process]) -> float:
    total = 0.0
    for process in tree:
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def _account(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    token = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def main(options: argparse.Namespace) -> None:
    modes = ["quota", "unlimited"] + (["before"] if options.before_src else [])
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(options.repeats):
        for mode in modes if round_ % 2 == 0 else reversed(modes):
            rate = await one_round(
                mode,
                uploads=options.uploads,
                concurrency=options.concurrency,
                accounts=options.accounts,
                before_src=options.before_src,
                kind=options.database,
            )
            rates[mode].append(rate)
            print(f"round {round_ + 1} {mode:>9}: {rate:.0f} uploads/s", flush=True)
    for mode, values in rates.items():
        print(
            f"{mode:>9}: median {statistics.median(values):.0f} uploads/s "
            f"({', '.join(f'{v:.0f}' for v in values)})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uploads", type=int, default=3000)
    parser.add_argument(
        "--database", choices=["postgresql", "sqlite", "mysql"], default="postgresql"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--accounts", type=int, default=1, help="owners the uploads are spread over"
    )
    parser.add_argument("--before-src", help="the `src` directory of the tree to compare with")
    asyncio.run(main(parser.parse_args()))
