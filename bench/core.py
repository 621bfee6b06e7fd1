"""seau's core benchmark: upload, list, download, delete, next to a direct client.

One command (``make bench``, or ``.venv/bin/python bench/core.py``) starts moto's
S3 server and a fresh ``seau serve`` per store and scenario, drives seau through
its HTTP API with aiohttp, runs a direct obstore client on the same store with the
same sizes and concurrency, checks every download's SHA-256, and writes
docs/benchmarks.md and docs/benchmarks.png (plus raw JSON under bench/results/).

    .venv/bin/python bench/core.py                  # full: 3 repeats, every scenario
    .venv/bin/python bench/core.py --quick          # 1 repeat, no 512 MiB
    .venv/bin/python bench/core.py --stores local --scenarios 64m --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from obstore.store import LocalStore, S3Store

import harness
import peers
import report
from loads import (
    BenchError,
    Corpus,
    DurableFilesTarget,
    GiB,
    KiB,
    MiB,
    ObstoreTarget,
    PeerTarget,
    SeauTarget,
    Target,
    Timing,
    percentile,
    run_many,
)

ROOT = Path(__file__).resolve().parent.parent
PAGES = 1000
"""Requests of the ``page`` phase (seau: one page of `report.PAGE_SIZE` files)."""
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Scenario:
    key: str
    size: int
    count: int
    concurrency: int

    @property
    def short(self) -> str:
        size = f"{self.size // MiB} MiB" if self.size >= MiB else f"{self.size // KiB} KiB"
        return f"{size} x {self.count} @ {self.concurrency}"


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("4k", 4 * KiB, 2000, 32),
        Scenario("1m", MiB, 200, 16),
        Scenario("64m", 64 * MiB, 4, 2),
        Scenario("512m", 512 * MiB, 1, 1),
    )
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, skip 512 MiB")
    parser.add_argument("--repeats", type=int, help="repeats per scenario (default 3; quick 1)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated among {','.join(SCENARIOS)} (default all; quick: no 512m)",
    )
    parser.add_argument("--stores", default="local,s3", help="comma-separated: local,s3")
    parser.add_argument("--workers", type=int, default=1, help="`seau serve --workers N`")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for seau serve (repeatable), e.g. SEAU_LOG_LEVEL=warning",
    )
    parser.add_argument(
        "--seau-command",
        default="",
        help="command that replaces `seau serve` (gets --host/--port appended); for "
        "trying a patched server, e.g. '.venv/bin/python my_patched_serve.py'",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw (?name=) upload rows")
    parser.add_argument(
        "--direct",
        default="obstore,files+fsync",
        help="direct clients to run next to seau (default obstore,files+fsync; "
        "files+fsync exists for the local store only; 'none' for none)",
    )
    parser.add_argument(
        "--peers",
        default=",".join((*peers.S3_PEERS, *peers.LOCAL_PEERS)),
        help="peer servers of ../shared/peers to run next to seau (default: all: "
        "seed-node on S3, lean-python and null-node on the local store; 'none' for none)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy every seau phase into bench/results/profiles/ (figures are then "
        "perturbed, so docs/ is not written unless --write is given)",
    )
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument(
        "--gil", action="store_true", help="py-spy --gil: only samples holding the GIL"
    )
    parser.add_argument("--write", action="store_true", help="write docs/ even with --profile")
    parser.add_argument("--no-write", action="store_true", help="only print and save JSON")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=RESULTS / "work",
        help="where data directories go; must be on the disk being measured "
        "(default bench/results/work, not /tmp, which may be tmpfs)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RUN.json",
        help="do not measure: rewrite docs/ from a saved bench/results/run-*.json",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    default = ["4k", "1m", "64m"] if args.quick else list(SCENARIOS)
    names = args.scenarios.split(",") if args.scenarios else default
    unknown = set(names) - SCENARIOS.keys()
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    args.scenario_list = [SCENARIOS[n] for n in SCENARIOS if n in names]
    args.store_list = [s for s in ("local", "s3") if s in args.stores.split(",")]
    if not args.store_list:
        parser.error("--stores must name local and/or s3")
    args.extra_env = dict(item.split("=", 1) for item in args.server_env)
    args.direct_list = [] if args.direct == "none" else args.direct.split(",")
    args.peer_list = [] if args.peers == "none" else args.peers.split(",")
    unknown = set(args.peer_list) - {*peers.S3_PEERS, *peers.LOCAL_PEERS}
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}")
    return args


# -- one scenario ---------------------------------------------------------------------


@dataclass
class Context:
    store: str
    scenario: Scenario
    corpus: Corpus
    records: list[dict[str, Any]]
    profile_dir: Path | None
    native: bool
    gil: bool


async def run_cycle(
    ctx: Context,
    target: Target,
    *,
    meter: harness.Meter,
    repeat: int,
    base: int,
    server_pid: int | None,
    phases: Sequence[str] = report.PHASE_ORDER,
    count: int | None = None,
    size: int | None = None,
) -> None:
    """Upload the scenario's files, list them, download and check each, delete each.

    ``count`` and ``size`` override the scenario's (for the warm-up).
    """
    scenario, corpus = ctx.scenario, ctx.corpus
    files = scenario.count if count is None else count
    size = scenario.size if size is None else size
    handles: list[str] = [""] * files

    async def upload(i: int) -> int:
        handles[i] = await target.upload(base + i, size)
        return size

    async def listing(_: int) -> int:
        found = await target.list_all()
        if found != files:
            raise BenchError(f"{target.label} listed {found} files, expected {files}")
        return 0

    async def download(i: int) -> int:
        digest, received = await target.download(handles[i])
        if received != size or digest != corpus.sha256(base + i, size):
            raise BenchError(f"{target.label}: file {base + i} came back different")
        return received

    async def delete(i: int) -> int:
        await target.delete(handles[i])
        return 0

    steps: dict[str, tuple[Callable[[int], Awaitable[int]], int]] = {
        "upload": (upload, files),
        "list": (listing, 1),
        "download": (download, files),
        "delete": (delete, files),
    }
    if isinstance(target, SeauTarget) and files >= report.PAGE_SIZE:

        async def page(_: int) -> int:
            found = await target.list_page(report.PAGE_SIZE)
            if found != report.PAGE_SIZE:
                raise BenchError(f"{target.label} listed {found} files in a page")
            return 0

        steps["page"] = (page, PAGES)
    for phase in report.PHASE_ORDER:
        if phase not in steps or (phase == "page" and phase not in phases):
            continue  # nothing to clean up after a page
        operation, times = steps[phase]
        if phase not in phases:
            # Still done (the next cycle needs a clean store), just not recorded.
            await run_many(operation, count=times, concurrency=scenario.concurrency)
            continue
        profiling = (
            harness.Profiler(
                server_pid,
                ctx.profile_dir / f"{ctx.store}-{scenario.key}-{_slug(target.label)}-{phase}.txt",
                native=ctx.native,
                gil=ctx.gil,
            )
            if ctx.profile_dir is not None and server_pid is not None
            else contextlib.nullcontext()
        )
        with profiling, meter.phase() as usage:
            timing = await run_many(operation, count=times, concurrency=scenario.concurrency)
        ctx.records.append(
            _record(
                ctx, target=target.label, phase=phase, repeat=repeat, timing=timing, usage=usage
            )
        )
        _print_record(ctx.records[-1])
        if ctx.store == "local" and phase == "upload":
            # obstore's LocalStore leaves its writes to the kernel: flush them now so
            # their write-back does not land in the next measurement.
            await asyncio.to_thread(os.sync)


def _slug(label: str) -> str:
    return label.replace(" ", "-").replace("+", "-")


def _record(
    ctx: Context, *, target: str, phase: str, repeat: int, timing: Timing, usage: harness.Usage
) -> dict[str, Any]:
    wall = usage.wall
    record: dict[str, Any] = {
        "store": ctx.store,
        "scenario": ctx.scenario.key,
        "target": target,
        "phase": phase,
        "repeat": repeat,
        "ops": timing.ops,
        "bytes": timing.bytes,
        "wall": wall,
        "mib_s": timing.bytes / MiB / wall,
        "ops_s": (ctx.scenario.count if phase == "list" else timing.ops) / wall,
        "p50_ms": percentile(timing.latencies, 0.50) * 1000,
        "p99_ms": percentile(timing.latencies, 0.99) * 1000,
        "client_cpu": usage.client_cpu,
        "client_cpu_pct": 100 * usage.client_cpu / wall,
        "client_loop_pct": 100 * usage.client_loop_cpu / wall,
        "store_cpu": usage.store_cpu,
        "machine_busy": usage.machine_busy,
        "others_cpu": usage.machine_busy
        - usage.client_cpu
        - (usage.server_cpu or 0)
        - (usage.store_cpu or 0),
    }
    if usage.server_cpu is not None:
        record |= {
            "server_cpu": usage.server_cpu,
            "server_cpu_pct": 100 * usage.server_cpu / wall,
            "server_loop_pct": 100 * usage.server_threads.get("main", 0.0) / wall,
            "server_threads": usage.server_threads,
            "server_cpu_per_gib": usage.server_cpu / (timing.bytes / GiB) if timing.bytes else None,
            "server_cpu_ms_per_op": 1000 * usage.server_cpu / timing.ops if timing.ops else None,
            "server_peak_rss_mib": usage.server_peak_rss_mib,
            "server_sampled_max_rss_mib": usage.server_sampled_max_rss_mib,
            "server_rss_before_mib": usage.server_rss_before_mib,
            "peak_reset": usage.peak_reset,
        }
    return record


def _print_record(r: dict[str, Any]) -> None:
    extra = ""
    if "server_cpu" in r:
        extra = (
            f" server {r['server_cpu_pct']:.0f}% cpu (loop {r['server_loop_pct']:.0f}%)"
            f" rss {r['server_rss_before_mib']:.0f}->{r['server_peak_rss_mib']:.0f} MiB"
        )
    print(
        f"  {r['store']:5} {r['scenario']:4} #{r['repeat']} {r['target']:11} {r['phase']:8}"
        f" {r['mib_s']:9.1f} MiB/s {r['ops_s']:8.1f} op/s p50 {r['p50_ms']:7.1f} ms"
        f" p99 {r['p99_ms']:7.1f} ms client {r['client_cpu_pct']:.0f}%"
        f" (loop {r['client_loop_pct']:.0f}%){extra}",
        flush=True,
    )


async def run_scenario(
    ctx: Context,
    *,
    server: harness.SeauServer,
    direct: Sequence[Target],
    peer_servers: Sequence[peers.PeerServer],
    store_pid: int | None,
    repeats: int,
    raw: bool,
) -> None:
    scenario = ctx.scenario
    seau = SeauTarget(url=server.url, corpus=ctx.corpus, concurrency=scenario.concurrency)
    targets: list[Target] = [seau]
    try:
        await seau.sign_in()
        if raw:
            raw_target = SeauTarget(
                url=server.url, corpus=ctx.corpus, concurrency=scenario.concurrency, raw=True
            )
            raw_target.share_auth(seau)
            targets.append(raw_target)
        for peer in peer_servers:
            targets.append(
                PeerTarget(
                    label=peer.label,
                    url=peer.url,
                    token=peer.token,
                    corpus=ctx.corpus,
                    concurrency=scenario.concurrency,
                )
            )
        seau_meter = harness.Meter(server_pid=server.pid, store_pid=store_pid)
        direct_meter = harness.Meter(server_pid=None, store_pid=store_pid)
        # Each peer's process is metered like seau's: CPU per request compares servers.
        meters = {
            peer.label: harness.Meter(server_pid=peer.pid, store_pid=store_pid)
            for peer in peer_servers
        }
        # Warm-up, not recorded: connections, lazy imports, the code in the page cache.
        for target in targets:
            await run_cycle(
                ctx,
                target,
                meter=seau_meter,
                repeat=-1,
                base=10**6,
                server_pid=None,
                phases=(),
                count=min(scenario.count, 2 * scenario.concurrency),
                size=min(scenario.size, 16 * MiB),
            )
        for repeat in range(repeats):
            base = (repeat + 1) * 100_000
            # Expected hashes, computed before the clock starts.
            for i in range(scenario.count):
                await asyncio.to_thread(ctx.corpus.sha256, base + i, scenario.size)
            everyone: list[Target] = [*targets, *direct]
            # Rotate the order each repeat so drift on the machine hits everyone alike.
            shift = repeat % len(everyone)
            for target in everyone[shift:] + everyone[:shift]:
                is_seau = isinstance(target, SeauTarget)
                await run_cycle(
                    ctx,
                    target,
                    meter=seau_meter if is_seau else meters.get(target.label, direct_meter),
                    repeat=repeat,
                    base=base,
                    server_pid=server.pid if is_seau else None,
                    phases=("upload",) if target.label == "seau raw" else report.PHASE_ORDER,
                )
    finally:
        for target in targets:
            await target.close()


# -- stores ---------------------------------------------------------------------------


def direct_targets(
    store: str,
    *,
    directory: Path,
    endpoint: str | None,
    corpus: Corpus,
    only: Sequence[str],
) -> list[Target]:
    return [t for t in _direct_targets(store, directory, endpoint, corpus) if t.label in only]


def _direct_targets(
    store: str, directory: Path, endpoint: str | None, corpus: Corpus
) -> list[Target]:
    if store == "local":
        obstore_root = directory / "obstore"
        obstore_root.mkdir(parents=True, exist_ok=True)
        return [
            ObstoreTarget(LocalStore(obstore_root, mkdir=True), corpus=corpus, label="obstore"),
            DurableFilesTarget(directory / "files", corpus=corpus),
        ]
    assert endpoint is not None
    store_ = S3Store(
        "direct",
        config={
            "endpoint": endpoint,
            "region": harness.MOTO_REGION,
            "access_key_id": harness.MOTO_ACCESS_KEY,
            "secret_access_key": harness.MOTO_SECRET_KEY,
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True},
    )
    return [ObstoreTarget(store_, corpus=corpus, label="obstore")]


# -- the run --------------------------------------------------------------------------


async def bench(
    args: argparse.Namespace, *, workdir: Path, corpus: Corpus
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    profile_dir = RESULTS / "profiles" if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    for store in args.store_list:
        endpoint_cm = (
            harness.moto_server(workdir) if store == "s3" else contextlib.nullcontext((None, None))
        )
        with endpoint_cm as (endpoint, store_pid):
            if endpoint is not None:
                harness.make_bucket(endpoint, "seau")
                harness.make_bucket(endpoint, "direct")
            for scenario in args.scenario_list:
                directory = Path(tempfile.mkdtemp(prefix=f"{store}-{scenario.key}-", dir=workdir))
                env = {
                    "SEAU_DATA_DIR": str(directory / "seau"),
                    **(
                        {**harness.s3_env(endpoint), "SEAU_STORAGE_URL": "s3://seau"}
                        if endpoint
                        else {}
                    ),
                    **args.extra_env,
                }
                (directory / "seau").mkdir()
                print(f"{store} {scenario.short}: starting seau", flush=True)
                try:
                    with (
                        harness.seau_server(
                            env,
                            cwd=directory,
                            workers=args.workers,
                            command=_absolute(shlex.split(args.seau_command)),
                        ) as server,
                        contextlib.ExitStack() as stack,
                    ):
                        libraries = harness.loaded_libraries(server.pid)
                        facts.setdefault("idle_rss", []).append(
                            {"store": store, "scenario": scenario.key}
                            | harness.idle_memory(server.pid)
                        )
                        facts.setdefault(
                            "server_libraries",
                            {
                                "uvloop": any(n.startswith("loop.cpython") for n in libraries)
                                or any("uvloop" in n for n in libraries),
                                "httptools": any(
                                    "httptools" in n or n.startswith("parser.cpython")
                                    for n in libraries
                                ),
                            },
                        )
                        ctx = Context(
                            store=store,
                            scenario=scenario,
                            corpus=corpus,
                            records=records,
                            profile_dir=profile_dir,
                            native=args.native,
                            gil=args.gil,
                        )
                        running = [
                            stack.enter_context(
                                peers.peer_server(
                                    name,
                                    cache=peers.CACHE,
                                    workdir=directory / "peers",
                                    s3_endpoint=endpoint,
                                )
                            )
                            for name in args.peer_list
                            if name in (peers.S3_PEERS if endpoint else peers.LOCAL_PEERS)
                        ]
                        await run_scenario(
                            ctx,
                            server=server,
                            peer_servers=running,
                            direct=direct_targets(
                                store,
                                directory=directory / "direct",
                                endpoint=endpoint,
                                corpus=corpus,
                                only=args.direct_list,
                            ),
                            store_pid=store_pid,
                            repeats=args.repeats,
                            raw=not args.no_raw,
                        )
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
    return records, facts


def _absolute(command: list[str]) -> list[str]:
    # The server runs in its data directory, so relative paths must be resolved here.
    return [str(Path(part).absolute()) if Path(part).exists() else part for part in command]


def machine_facts(workdir: Path) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mount = max(
        (p for p in psutil.disk_partitions(all=True) if str(workdir).startswith(p.mountpoint)),
        key=lambda p: len(p.mountpoint),
        default=None,
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    versions = {}
    for name in (
        "uvicorn",
        "fastapi",
        "starlette",
        "obstore",
        "aiohttp",
        "moto",
        "uvloop",
        "httptools",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / GiB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": f"{mount.fstype} ({mount.device} on {mount.mountpoint})" if mount else "?",
        "commit": commit + (" + uncommitted changes in src/" if dirty else ""),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def command_line(argv: Sequence[str]) -> str:
    return ".venv/bin/python bench/core.py" + ("" if not argv else " " + shlex.join(argv))


def render(
    records: list[dict[str, Any]],
    facts: dict[str, Any],
    args: argparse.Namespace,
    *,
    argv: Sequence[str],
    elapsed: float,
) -> str:
    grouped = report.group(records)
    libraries = facts.get("server_libraries", {})
    stores, scenarios = args.store_list, args.scenario_list
    out: list[str] = []
    add = out.append
    took = f" in {elapsed / 60:.1f} minutes" if elapsed else ""
    add(f"Measured {facts['date']}{took} with:\n")
    add(f"```sh\n{command_line(argv)}\n```\n")
    make_args = shlex.join(argv)
    add(
        "(the same as `make bench`"
        + (f" `BENCH_ARGS={shlex.quote(make_args)}`" if argv else "")
        + f"); {args.repeats} repeat(s) per scenario; cells are the median "
        "and, in brackets, the min-max over the repeats.\n"
    )
    others = sum(r["others_cpu"] for r in records)
    wall = sum(r["wall"] for r in records)
    add(
        f"**Machine:** {facts['cpus']} CPUs ({facts['cpu_model']}), {facts['memory_gib']} GiB, "
        f"Linux {facts['kernel']}, Python {facts['python']}, data on {facts['filesystem']}; "
        f"seau at commit {facts['commit']}; "
        + ", ".join(f"{k} {v}" for k, v in facts["versions"].items())
        + f". `seau serve` ran with uvloop: {_yes(libraries.get('uvloop'))}, "
        f"httptools: {_yes(libraries.get('httptools'))}"
        + (f", `--workers {args.workers}`" if args.workers != 1 else "")
        + (f", extra environment {args.extra_env}" if args.extra_env else "")
        + (f", **patched server** `{args.seau_command}`" if args.seau_command else "")
        + ".\n"
    )
    add(
        f"**Noise:** load average {facts['load_average_at_start']} at the start; during the "
        f"measured phases, processes other than seau, moto and the benchmark used "
        f"{others / wall:.2f} CPUs on average (from /proc/stat). The machine is shared, so "
        "absolute figures move between runs; the ratios to the direct client, measured "
        "seconds apart in the same repeat, move much less.\n"
    )
    idle = facts.get("idle_rss", [])
    for store in stores:
        mine = [i for i in idle if i["store"] == store]
        if mine:
            rss, anon, peak = (
                statistics.median(i[k] for i in mine)
                for k in ("rss_mib", "anon_mib", "startup_peak_mib")
            )
            add(
                f"**Idle memory, {store} store:** `seau serve` right after start-up holds "
                f"{rss:.0f} MiB resident ({anon:.0f} MiB anonymous, the rest mapped files); "
                f"its start-up (migrations included) peaked at {peak:.0f} MiB "
                f"(medians over {len(mine)} starts). Every peak below includes this.\n"
            )
    add("## Summary\n")
    add(
        "Upload and download throughput of seau (multipart/form-data through its HTTP API, "
        "the whole request timed until the 201 with the file's row) next to obstore on the same "
        "store, and seau's peak resident memory during each.\n"
    )
    out += report.summary_table(grouped, stores=stores, scenarios=scenarios)
    add("")
    plot_name = args.output.with_suffix(".png").name
    add(f"![MiB/s by scenario, seau next to direct clients]({plot_name})\n")
    add("## Per request: every server\n")
    add(
        "Requests per second and the server's CPU per request (user + system time of the "
        "server's process tree over the phase, divided by its requests), for seau and the "
        "peers of `../shared/peers/` in the same run: the course's design `seed-node` "
        "(Express + multer + aws-sdk + MariaDB, S3 only), `lean-python` (the same durable "
        "work as a seau request on Starlette, nothing else: Python's floor) and `null-node` "
        "(node:http + busboy, no storage: the HTTP ceiling). The direct clients have no "
        "server.\n"
    )
    out += report.per_request_table(grouped, stores=stores, scenarios=scenarios)
    add("")
    add("## Targets\n")
    out += report.targets_table(report.targets(grouped))
    add("")
    for store in stores:
        add(f"## Details: {store} store\n")
        out += report.detail_table(grouped, store=store, scenarios=scenarios)
        add("")
    add("## How it is measured\n")
    add(METHOD)
    return "\n".join(out)


def _yes(value: object) -> str:
    return "?" if value is None else ("yes" if value else "no")


METHOD = """\
- **Servers.** One moto S3 server per run (S3 store) and a fresh `seau serve` per store
  and scenario (SQLite database and, for the local store, objects in a new directory under
  `bench/results/work/`, on the disk being measured), started exactly as an operator would,
  with only `SEAU_DATA_DIR`, and for S3 `SEAU_STORAGE_URL=s3://seau`, `AWS_ENDPOINT_URL`,
  credentials and `SEAU_S3_PATH_STYLE=true`. One unrecorded warm-up cycle runs first.
- **Scenarios.** 4 KiB x 2000 files at concurrency 32, 1 MiB x 200 at 16, 64 MiB x 4 at 2,
  512 MiB x 1. Each repeat uploads every file, lists them all (pages of 1000), downloads
  every file and checks its SHA-256 against what was sent, and deletes every file, with
  `concurrency` requests in flight. seau also answers 1,000 requests for the first page
  of 100 files (`page`), where a scenario has that many. Repeats rotate the order of the clients.
- **seau client.** aiohttp on uvloop, one connection per request in flight (keep-alive).
  Upload bodies are multipart/form-data with an exact Content-Length, streamed in 1 MiB
  slices of a 32 MiB random pool (each file starts at its own offset), so no body is ever
  built whole; 4 KiB and 1 MiB bodies go in one write. seau's answer must name the size
  and SHA-256 that were sent. "seau raw" is the same upload as a raw body with `?name=`.
  Downloads are read as they arrive (1 MiB read buffer) and hashed; bodies over 4 MiB
  are hashed in 4 MiB batches by a worker thread (hashlib releases the GIL), so the
  client's event loop is not what limits large downloads.
- **Direct clients.** `obstore`: obstore 0.12 on the same store: `LocalStore` in a sibling
  directory on the same disk (it does **not** fsync, see docs/decisions.md) or `S3Store`
  on the same moto server (bucket `direct`). Files up to 8 MiB go up as one `put` of
  bytes; larger ones stream from the same blocks with seau's S3 settings (8 MiB parts,
  2 in flight). Downloads stream in >= 1 MiB chunks and are hashed like seau's.
  `files+fsync` (local only): plain `os.write` of 1 MiB blocks in a worker thread, fsync,
  rename, fsync of the directory: the durability seau's local store promises, with no
  HTTP. Ratios are seau / obstore in the same repeat.
- **Peers.** From `../shared/peers/`, copied to `~/.cache/seau-bench/peers/` (`npm ci` there),
  started fresh per scenario next to seau and driven by the same aiohttp client with the
  same files (multipart field `file`; downloads hashed and checked): `seed-node` on the
  same moto server with its own MariaDB database and user (`bench_seed_<pid>`, dropped
  afterwards), `lean-python` writing under the scenario's directory, `null-node` in
  memory. Their process's CPU is metered like seau's.
- **Figures.** MiB/s and req/s are bytes or requests over the wall time of the whole phase;
  p50/p99 are per request (for `list`, the whole listing). Server CPU is user+system time
  of the `seau serve` process (all threads, including obstore's) over the phase, also per
  GiB moved; "loop thread" is the share of the main (event-loop) thread alone. Server
  peak RSS is VmHWM after resetting it (`/proc/PID/clear_refs`) at the phase start, and
  the RSS is also sampled every 20 ms. Client CPU is the whole benchmark process (load
  client, hashing, the sampler; for the direct clients, obstore's own threads too), and
  in brackets its event-loop thread: while that stays well under 100 %, the client is
  not what limits the figures. On the local store, downloads are served from the page
  cache (the files were just written), for seau and obstore alike.
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.from_json is not None:
        return rerender(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    facts = machine_facts(workdir)
    print(f"seau benchmark: {command_line(argv)}\n{json.dumps(facts)}", flush=True)
    corpus = Corpus()
    started = time.monotonic()
    try:
        records, server_facts = _run_loop(bench(args, workdir=workdir, corpus=corpus))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    facts |= server_facts
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / f"run-{stamp}.json"
    raw.write_text(
        json.dumps(
            {
                "command": command_line(argv),
                "argv": argv,
                "elapsed": elapsed,
                "facts": facts,
                "records": records,
            },
            indent=1,
        )
    )
    print(f"\nraw records: {raw}")
    if not args.no_write and (not args.profile or args.write):
        write_docs(records, facts, args, argv=argv, elapsed=elapsed)
    return 0


def rerender(options: argparse.Namespace) -> int:
    """Rebuild docs/ from a saved run: its command, machine facts and records."""
    saved = json.loads(options.from_json.read_text())
    argv = saved.get("argv", shlex.split(saved["command"])[2:])
    args = parse_args(argv)
    args.output = options.output
    write_docs(saved["records"], saved["facts"], args, argv=argv, elapsed=saved.get("elapsed", 0.0))
    return 0


def write_docs(
    records: list[dict[str, Any]],
    facts: dict[str, Any],
    args: argparse.Namespace,
    *,
    argv: Sequence[str],
    elapsed: float,
) -> None:
    text = render(records, facts, args, argv=argv, elapsed=elapsed)
    print(f"\n{text}")
    report.write_markdown(args.output, text)
    report.plot(
        report.group(records),
        stores=args.store_list,
        scenarios=args.scenario_list,
        path=args.output.with_suffix(".png"),
        title=f"seau vs direct clients, {facts['date']}, {facts['cpus']} CPUs "
        f"(median of {args.repeats}, bars min-max)",
    )
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")


def _run_loop(coroutine: Awaitable[Any]) -> Any:
    """Run on uvloop when it is installed (it is, through uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
