"""The client commands of `seau`: they reach a seau server over HTTP only.

Exit status: 0 success, 1 an error (one line on stderr, from the server's problem
details when it sent some), 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.filesize import decimal as human_size
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from seau.cli.client_api import Api, RemoteFile
from seau.cli.client_config import (
    DEFAULT_SERVER,
    SERVER_ENV,
    Connection,
    current,
    normalize_server,
    read_config,
    upload_state_path,
    write_config,
)
from seau.cli.client_direct import SMALLEST_MULTIPART
from seau.cli.client_errors import ClientError, ConfigError
from seau.cli.client_tus import RESUMABLE_THRESHOLD

T = TypeVar("T")

PANEL = "Client commands (talk to a seau server over HTTP)"
SortKey = Literal["created", "-created", "name", "-name", "size", "-size"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")]

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes, or a whole number of K, M, G or T (powers of 1024): ``32M``, ``1GiB``."""
    if isinstance(text, int):
        # Typer hands the default over as it is.
        return text
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a size (e.g. 33554432, 32M, 1G)")
    return int(match[1]) * _UNITS[match[2].lower()]


def register(app: typer.Typer) -> None:
    for command in (login, logout, upload, ls, info, mv, rm, download):
        app.command(rich_help_panel=PANEL)(command)


# -- commands ----------------------------------------------------------------


def login(
    email: Annotated[
        str, typer.Option(prompt=True, envvar="SEAU_EMAIL", help="The account's email.")
    ],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, envvar="SEAU_PASSWORD", help="The account's password."
        ),
    ],
    server: Annotated[
        str | None,
        typer.Option(
            help=f"Server URL; default ${SERVER_ENV}, else the last server used, "
            f"else {DEFAULT_SERVER}.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Log in and keep the token in ~/.config/seau/config.json (mode 0600)."""

    async def work(target: str) -> tuple[str, int | None, object]:
        async with Api(Connection(server=target, token=None)) as api:
            token, expires_in = await api.issue_token(email=email, password=password)
            api.token = token
            user = await api.me()
        return token, expires_in, user.get("email", email)

    with _errors():
        stored = read_config()
        target = normalize_server(
            server or os.environ.get(SERVER_ENV, "").strip() or stored.server or DEFAULT_SERVER
        )
        if _plain_http_to_another_host(target):
            _say_error(f"warning: {target} is plain HTTP; the password travels unencrypted")
        token, expires_in, who = _run(work(target))
        path = write_config(stored.with_token(target, token))
    lifetime = f"; the token lasts {_duration(expires_in)}" if expires_in else ""
    out.print(Text(f"logged in to {target} as {who}{lifetime} (saved in {path})"))


def logout(
    everywhere: Annotated[
        bool,
        typer.Option(
            "--everywhere",
            help="Also revoke, on the server, every token of the account (other "
            "machines, the web page).",
        ),
    ] = False,
) -> None:
    """Forget the token of the current server."""
    with _errors():
        stored = read_config()
        connection = current(stored)
        if everywhere:
            _with_api(lambda api: api.logout_everywhere())
        if connection.server not in stored.tokens:
            if not everywhere:
                out.print(Text(f"not logged in to {connection.server}"))
            return
        write_config(stored.with_token(connection.server, None))
    out.print(Text(f"logged out of {connection.server}"))


def upload(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...",
            help="Files, directories (uploaded recursively) and glob patterns "
            "(quoted, e.g. '*.csv' or 'logs/**/*.gz').",
            show_default=False,
        ),
    ],
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=32, help="Files uploaded at once.")
    ] = 4,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no output; errors only.")
    ] = False,
    resumable_threshold: Annotated[
        int,
        typer.Option(
            "--resumable-threshold",
            metavar="SIZE",
            parser=parse_size,
            envvar="SEAU_RESUMABLE_THRESHOLD",
            help="Files of this size or more go in resumable chunks (tus): uploading "
            "one again after an interruption continues it. Bytes, or K, M, G (binary).",
            show_default="32M",
        ),
    ] = RESUMABLE_THRESHOLD,
    as_json: JsonOption = False,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Send the bytes straight to the server's store (on S3, the bucket) as "
            "direct uploads, which the server verifies before they become files. Files "
            "the server takes in parts (from 100 MiB by default, its "
            "SEAU_DIRECT_MULTIPART_THRESHOLD_BYTES) resume when uploaded again: only the "
            "parts the store lacks are sent. An upload never resumed is removed by the "
            "server once it expires (a day by default).",
        ),
    ] = False,
) -> None:
    """Upload files, directories and globs; exit status 1 if any file failed.

    Each file is named on the server by its own name, without its directory. Large
    files (with --direct, those sent in parts) resume where they stopped when uploaded
    again; the state of unfinished ones is kept in ~/.cache/seau/uploads.json.
    """
    with _errors():
        sources, outcomes = expand_sources(paths)
        connection = current()
    elapsed = 0.0
    if sources:
        interrupted = "interrupted"
        if direct and any(s.size >= SMALLEST_MULTIPART for s in sources):
            interrupted += "; the files sent in parts resume when uploaded again"
        elif not direct and any(s.size >= resumable_threshold for s in sources):
            interrupted += "; the large files resume when uploaded again"
        done, elapsed = _run(
            _upload_all(
                connection,
                sources,
                jobs=jobs,
                resumable_threshold=resumable_threshold,
                direct=direct,
                show_progress=not quiet and err.is_terminal,
                print_each=not (quiet or as_json),
            ),
            interrupted=interrupted,
        )
        outcomes += done
    outcomes.sort(key=lambda o: o.order)
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        _say_error(f"{outcome.label}: {outcome.error}")
    if as_json:
        document = {
            "uploaded": [{**o.remote.data, "path": o.label} for o in outcomes if o.remote],
            "failed": [{"path": o.label, "error": o.error} for o in failed],
        }
        _print_json(document)
    if failed or not quiet:
        err.print(Text(_upload_summary(outcomes, elapsed=elapsed)))
    if failed:
        raise typer.Exit(1)


def ls(
    search: Annotated[
        str | None,
        typer.Option("--search", "-s", help="Only names containing this text (any case)."),
    ] = None,
    sort: Annotated[
        SortKey, typer.Option(help="Sort key; a leading '-' sorts descending.")
    ] = "-created",
    as_json: JsonOption = False,
) -> None:
    """List my files: name, size, type (detected from the bytes), date, id."""

    async def work(api: Api) -> list[RemoteFile]:
        return [f async for f in api.files(sort=sort, query=search)]

    files = _with_api(work)
    if as_json:
        _print_json([f.data for f in files])
        return
    if not files:
        out.print("no files")
        return
    # A narrow terminal shortens the name and the type, never the date or the id.
    table = Table(
        "name",
        "size",
        Column("type", max_width=32, overflow="ellipsis"),
        Column("date", no_wrap=True, min_width=16),
        Column("id", no_wrap=True, min_width=36),
        box=None,
        pad_edge=False,
    )
    table.columns[0].overflow = "fold"
    table.columns[1].justify = "right"
    for f in files:
        table.add_row(
            Text(f.name), human_size(f.size), Text(f.content_type), _local(f.created_at), f.id
        )
    out.print(table)


def info(
    ref: Annotated[str, typer.Argument(metavar="ID|NAME", help="A file id, or an exact name.")],
    as_json: JsonOption = False,
) -> None:
    """Show a file's metadata."""
    file = _with_api(lambda api: api.resolve(ref))
    if as_json:
        _print_json(file.data)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in (
        ("name", file.name),
        ("id", file.id),
        ("size", f"{human_size(file.size)} ({file.size} bytes)"),
        ("type", file.content_type),
        ("declared", file.declared_type or "-"),
        ("sha256", file.sha256),
        ("created", _local(file.created_at)),
        ("updated", _local(file.updated_at)),
    ):
        table.add_row(Text(key, style="bold"), Text(value))
    out.print(table)


def mv(
    ref: Annotated[str, typer.Argument(metavar="ID|NAME", help="A file id, or an exact name.")],
    new_name: Annotated[str, typer.Argument(help="The new name.")],
) -> None:
    """Rename a file."""

    async def work(api: Api) -> tuple[RemoteFile, RemoteFile]:
        before = await api.resolve(ref)
        return before, await api.rename(before.id, new_name)

    before, after = _with_api(work)
    out.print(Text(f"renamed {before.name} to {after.name} ({after.id})"))


def rm(
    refs: Annotated[
        list[str],
        typer.Argument(metavar="ID|NAME...", help="File ids, or exact names.", show_default=False),
    ],
) -> None:
    """Delete files; exit status 1 if any could not be deleted."""

    async def work(api: Api) -> list[tuple[str, RemoteFile | None, str | None]]:
        results: list[tuple[str, RemoteFile | None, str | None]] = []
        for ref in refs:
            try:
                file = await api.resolve(ref)
                await api.delete(file.id)
                results.append((ref, file, None))
            except ClientError as exc:
                results.append((ref, None, str(exc)))
        return results

    results = _with_api(work)
    for ref, file, error in results:
        if file is not None:
            out.print(Text(f"deleted {file.name} ({file.id})"))
        else:
            _say_error(f"{ref}: {error}")
    if any(error is not None for _, _, error in results):
        raise typer.Exit(1)


def download(
    ref: Annotated[str, typer.Argument(metavar="ID|NAME", help="A file id, or an exact name.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Where to save: a file path, or a directory (existing, or ending in /); "
            "default the file's name, here.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no output.")] = False,
) -> None:
    """Download a file; resumes a partial download (PATH.part) and checks the SHA-256."""

    async def work(api: Api) -> tuple[RemoteFile, Path, int]:
        file = await api.resolve(ref)
        dest = await asyncio.to_thread(_destination, output, file.name, force=force)
        with _progress(show=not quiet and err.is_terminal, transient=False) as progress:
            task = progress.add_task(_short(file.name), total=file.size)
            kept = await api.download(
                file, dest=dest, on_progress=lambda done: progress.update(task, completed=done)
            )
        return file, dest, kept

    file, dest, kept = _with_api(work, interrupted="interrupted; run the same command to resume")
    if not quiet:
        resumed = f", resumed after {human_size(kept)}" if kept else ""
        out.print(
            Text(f"downloaded {file.name} to {dest} ({human_size(file.size)}{resumed}), SHA-256 ok")
        )


# -- uploads -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    path: Path
    label: str
    size: int
    order: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    label: str
    order: int
    remote: RemoteFile | None = None
    error: str | None = None


def expand_sources(args: list[str]) -> tuple[list[Source], list[Outcome]]:
    """Regular files named by ``args`` (directories walked, globs expanded), once each,
    and an outcome for each argument that names nothing uploadable."""
    sources: list[Source] = []
    problems: list[Outcome] = []
    seen: set[Path] = set()

    def problem(label: str, error: str) -> None:
        problems.append(Outcome(label=label, order=len(sources) + len(problems), error=error))

    def add(path: Path) -> None:
        try:
            resolved = path.resolve()
            size = path.stat().st_size
        except OSError as exc:
            problem(str(path), _os(exc))
            return
        if resolved not in seen:
            seen.add(resolved)
            sources.append(
                Source(path=path, label=str(path), size=size, order=len(sources) + len(problems))
            )

    def unreadable(exc: OSError) -> None:
        problem(str(exc.filename), _os(exc))

    for arg in args:
        matches = [Path(arg)] if os.path.lexists(arg) else []
        if not matches and _has_magic(arg):
            matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))]
        if not matches:
            problem(arg, "no file matches" if _has_magic(arg) else "no such file or directory")
        for match in matches:
            if match.is_dir():
                # Symbolic links to directories are not followed: they could loop.
                for root, dirs, files in os.walk(match, onerror=unreadable):
                    dirs.sort()
                    for name in sorted(files):
                        candidate = Path(root) / name
                        if candidate.is_file():
                            add(candidate)
            elif match.is_file():
                add(match)
            else:
                problem(str(match), "not a regular file")
    return sources, problems


async def _upload_all(
    connection: Connection,
    sources: list[Source],
    *,
    jobs: int,
    resumable_threshold: int,
    show_progress: bool,
    print_each: bool,
    direct: bool = False,
) -> tuple[list[Outcome], float]:
    """Each source's outcome, and the seconds it all took."""
    limit = asyncio.Semaphore(jobs)
    started = time.monotonic()
    api = Api(
        connection,
        max_connections=jobs,
        resumable_threshold=resumable_threshold,
        upload_state=upload_state_path(),
    )
    async with api:
        # One cheap request first: a wrong server or an expired token is one error,
        # not one per file.
        await api.me()
        with _progress(show=show_progress, transient=True) as progress:
            to_send = sum(s.size for s in sources)
            total = progress.add_task(f"total (0/{len(sources)})", total=to_send)
            finished = 0

            async def one(source: Source) -> Outcome:
                nonlocal finished, to_send
                async with limit:
                    task = progress.add_task(_short(source.label), total=source.size)
                    sent = 0

                    def moved(done: int) -> None:
                        nonlocal sent
                        progress.update(task, completed=done)
                        progress.advance(total, done - sent)
                        sent = done

                    resumed = 0
                    try:
                        if direct:
                            remote, resumed = await api.upload_direct(
                                source.path,
                                name=source.path.name,
                                size=source.size,
                                on_progress=moved,
                            )
                        else:
                            remote, resumed = await api.upload(
                                source.path,
                                name=source.path.name,
                                size=source.size,
                                on_progress=moved,
                            )
                        outcome = Outcome(label=source.label, order=source.order, remote=remote)
                    except OSError as exc:
                        outcome = Outcome(label=source.label, order=source.order, error=_os(exc))
                    except ClientError as exc:
                        outcome = Outcome(label=source.label, order=source.order, error=str(exc))
                    progress.remove_task(task)
                    finished += 1
                    if outcome.error is not None:
                        # The total bar counts the bytes of the files that make it.
                        to_send -= source.size
                        progress.update(total, total=to_send)
                        progress.advance(total, -sent)
                    progress.update(total, description=f"total ({finished}/{len(sources)})")
                    if print_each and outcome.remote is not None:
                        size = human_size(outcome.remote.size)
                        if resumed:
                            size += f", resumed after {human_size(resumed)}"
                        out.print(Text(f"uploaded {source.label} ({size}) as {outcome.remote.id}"))
                    return outcome

            outcomes = list(await asyncio.gather(*(one(s) for s in sources)))
    return outcomes, time.monotonic() - started


def _upload_summary(outcomes: list[Outcome], *, elapsed: float) -> str:
    uploaded = [o.remote for o in outcomes if o.remote is not None]
    failed = sum(1 for o in outcomes if o.error is not None)
    size = sum(f.size for f in uploaded)
    rate = f", {human_size(int(size / elapsed))}/s" if elapsed > 0 and size else ""
    line = f"{len(uploaded)} uploaded ({human_size(size)} in {elapsed:.1f} s{rate})"
    return f"{line}, {failed} failed" if failed else line


# -- plumbing ----------------------------------------------------------------


def _progress(*, show: bool, transient: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
        transient=transient,
    )


def _with_api(work: Callable[[Api], Awaitable[T]], *, interrupted: str = "interrupted") -> T:
    with _errors():
        connection = current()

    async def main() -> T:
        async with Api(connection) as api:
            return await work(api)

    return _run(main(), interrupted=interrupted)


def _run(work: Coroutine[object, object, T], *, interrupted: str = "interrupted") -> T:
    with _errors():
        try:
            return asyncio.run(work)
        except KeyboardInterrupt:
            _say_error(interrupted)
            raise typer.Exit(130) from None


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (ClientError, ConfigError) as exc:
        _say_error(str(exc))
        raise typer.Exit(1) from None


def _print_json(document: object) -> None:
    # Plain text, not rich: scripts get exactly the JSON, whatever the terminal.
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _say_error(message: str) -> None:
    err.print(Text.assemble(("seau:", "bold red"), " ", message))


def _os(exc: OSError) -> str:
    return f"cannot read: {exc.strerror or exc}"


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _short(label: str, width: int = 32) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _plain_http_to_another_host(server: str) -> bool:
    parts = urlsplit(server)
    return parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1")


def _destination(output: str | None, name: str, *, force: bool) -> Path:
    """Where ``-o`` says to save the file named ``name``, checked before any byte moves."""
    # The server keeps only a last path segment, but a name is still not trusted as a path.
    safe = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    if safe in ("", ".", ".."):
        safe = "download"
    path = Path(output) if output is not None else Path(safe)
    if output is not None and (output.endswith(("/", os.sep)) or path.is_dir()):
        if not path.is_dir():
            raise ClientError(f"no such directory: {output}")
        path = path / safe
    if not path.parent.is_dir():
        raise ClientError(f"no such directory: {path.parent}")
    if path.exists() and not force:
        raise ClientError(f"{path} already exists; use --force to replace it")
    return path
