"""The serving process of `seau serve`: uvicorn and the app, none of the CLI.

`seau serve` checks the database and the store, applies migrations, then
replaces itself (same PID) with ``python -m seau.cli.serve``, so that what
only start-up needs (Alembic, Mako, typer, rich, the client commands, the
heap of the checks) is not resident while files stream through: 18 MiB
measured (114 vs 96 MiB idle on the local store).
Not a command of its own: it trusts that `seau serve` did the checks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp
    from uvicorn.supervisors import Multiprocess

MODULE = "seau.cli.serve"
# prometheus_client's variable, named here so that setting it imports nothing.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


MALLOC_DEFAULTS = {
    # A fixed threshold: blocks of 4 MiB and more (an argon2 hash's 19 MiB, S3
    # parts) get their own mapping and go back to the system when freed. glibc's
    # default raises the threshold to the largest block freed so far, after which
    # such blocks stay in the heap: the first sign-in left 21 MiB resident for
    # good. 1 MiB transfer buffers stay under it and are reused, not re-mapped
    # (a 128 KiB threshold re-mapped them: 8.8 vs 4.3 CPU-s per GiB uploaded).
    "MALLOC_MMAP_THRESHOLD_": str(4 * 1024 * 1024),
    # Setting the threshold also freezes glibc's trim threshold at 128 KiB, so
    # the heap's top was handed back after nearly every 1 MiB chunk and faulted
    # in again for the next: 240 page faults a chunk. 4 MiB keeps a transfer's
    # few buffers: local 64 MiB downloads 0.92 vs 1.2-1.4 CPU-s per GiB, S3
    # 1.0-1.3 vs 2.1-2.4 (docs/benchmarks.md), peaks within noise.
    "MALLOC_TRIM_THRESHOLD_": str(4 * 1024 * 1024),
}
"""glibc's allocator settings, read from the environment when the process
starts: one more reason to exec rather than serve from the CLI's process. A
value the operator set wins; other C libraries ignore the variable."""


def server_argv(*, host: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        MODULE,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def server_environment(environ: dict[str, str], *, code_root: str | None) -> dict[str, str]:
    """The serving process's environment: migrations are done; malloc tuned for
    a long-lived process whose transfers free what they allocate; ``code_root``
    first on the path, when given."""
    env = {**MALLOC_DEFAULTS, **environ, "SEAU_AUTO_MIGRATE": "false"}
    if code_root is not None:
        path = environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([code_root, path]) if path else code_root
    return env


def code_root() -> str | None:
    """The directory this `seau` was imported from, unless it is one a fresh
    interpreter searches anyway (site-packages): a launcher that put a snapshot
    of src/ on sys.path (bench A/B runs) gets the same code after the exec."""
    import site

    import seau

    root = Path(seau.__file__).resolve().parent.parent
    usual = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return None if root in usual else str(root)


def exec_server(*, host: str, port: int, workers: int) -> None:
    """Replace this process with the serving one; does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(  # noqa: S606  (our own interpreter and module, no shell to quote for)
        sys.executable,
        server_argv(host=host, port=port, workers=workers),
        server_environment(dict(os.environ), code_root=code_root()),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seau serve", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    # Metrics of every worker process go to files in a fresh directory, summed by
    # whichever worker answers /metrics. Set before anything imports
    # prometheus_client (which reads it once), removed when the server stops.
    metrics_dir = tempfile.mkdtemp(prefix="seau-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
    try:
        _serve(args)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def serving_app() -> ASGIApp:
    """Factory of the app each worker serves: seau's, behind the proxies trusted."""
    import atexit

    from prometheus_client.multiprocess import mark_process_dead

    from seau import graceful
    from seau.app import create_app
    from seau.proxy import behind_proxies
    from seau.server_protocol import BoundedHttpToolsProtocol
    from seau.settings import load_settings

    # A worker that exits drops its live gauges (one that is killed is dropped at
    # the next scrape, by seau.observability.WorkerProcesses).
    atexit.register(mark_process_dead, os.getpid())
    settings = load_settings()
    # uvicorn loads this factory in each worker before it accepts a connection.
    graceful.install()
    BoundedHttpToolsProtocol.set_timeouts(
        head=settings.request_head_timeout_seconds,
        body_idle=settings.body_idle_timeout_seconds,
    )
    return behind_proxies(create_app(settings), settings.trusted_proxy_list)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from seau.errors import ConfigurationError
    from seau.observability import logging_config
    from seau.server_protocol import BoundedHttpToolsProtocol
    from seau.settings import load_settings

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        # `seau serve` validated the same environment: only a bug gets here.
        sys.exit(f"seau: {exc}")
    # uvicorn handles SIGTERM/SIGINT itself (stop accepting, finish in-flight
    # requests), then re-raises the signal to the handler that was there before
    # it. A no-op one makes a completed graceful shutdown exit with status 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    if args.workers > 1:
        # What uvicorn.run starts the workers with (it names it in uvicorn.main).
        runner = importlib.import_module("uvicorn.main")
        runner.Multiprocess = _supervisor()  # type: ignore[attr-defined]
    uvicorn.run(
        f"{MODULE}:serving_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level),
        # Forwarded headers are read by seau.proxy, from SEAU_TRUSTED_PROXIES only
        # (uvicorn's own default would trust 127.0.0.1).
        proxy_headers=False,
        server_header=False,
        http=BoundedHttpToolsProtocol,
        # On SIGTERM uvicorn stops accepting, then lets in-flight requests finish.
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


def _supervisor() -> type[Multiprocess]:
    """uvicorn's supervisor of `--workers`, letting go of the listening socket as
    soon as it stops.

    uvicorn's keeps its copy open until the workers have finished: meanwhile the
    kernel still completes connections to the port, which no worker accepts any
    more, and resets them when the supervisor exits. A proxy that wrote a POST onto
    one cannot resend it (nginx answered 502 during rolling restarts, found by
    bench/scale.py). Closed, the port refuses once the workers close theirs, and
    the proxy connects to another instance.
    """
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def terminate_all(self) -> None:
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

    return Supervisor


if __name__ == "__main__":
    main()
