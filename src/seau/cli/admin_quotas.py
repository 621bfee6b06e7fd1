"""`seau quota set|show`: an owner's quotas and usage, server side, straight to the
database (as `seau webhook …`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seau.cli.admin_webhooks import fail, run, settings_or_exit

if TYPE_CHECKING:
    from seau.quotas.ledger import Usage
    from seau.settings import Settings

quota_app = typer.Typer(
    help="Owners' quotas and usage (server side, direct database access).",
    no_args_is_help=True,
)

_out = Console()
_JSON = typer.Option("--json", help="Print JSON on stdout, for scripts.")
_SUBJECT = typer.Option(
    "--subject",
    help="The owner: its subject (a token's `sub`; `seau user list` shows seau's own "
    "accounts' ids, which are their subjects).",
)
DEFAULT = "default"


def register(app: typer.Typer) -> None:
    app.add_typer(quota_app, name="quota")


def _bytes(value: str) -> str:
    from seau.cli.client import parse_size

    if value.strip().lower() == DEFAULT:
        return DEFAULT
    return str(parse_size(value))


def _files(value: str) -> str:
    if value.strip().lower() == DEFAULT:
        return DEFAULT
    if not value.strip().isdigit():
        raise typer.BadParameter(f"{value!r} is not a number of files (or `default`)")
    return str(int(value))


def _value(text: str) -> int | None:
    return None if text == DEFAULT else int(text)


async def _set(settings: Settings, subject: str, values: dict[str, int | None]) -> Usage:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.quotas.set_quota(subject, values=values)


async def _show(settings: Settings, subject: str) -> Usage:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.quotas.of_subject(subject)


def _document(subject: str, usage: Usage) -> dict[str, object]:
    return {
        "subject": subject,
        "used_bytes": usage.used_bytes,
        "used_files": usage.used_files,
        "reserved_bytes": usage.reserved_bytes,
        "reserved_files": usage.reserved_files,
        "quota_bytes": usage.quota_bytes,
        "quota_files": usage.quota_files,
        "own_quota_bytes": usage.own_quota_bytes,
        "own_quota_files": usage.own_quota_files,
    }


def _print(subject: str, usage: Usage, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_document(subject, usage), indent=2))
        return

    def limit(value: int, own: int | None) -> str:
        shown = "unlimited" if value == 0 else f"{value:,}"
        return shown if own is not None else f"{shown} (server default)"

    table = Table("", "used", "reserved", "quota", box=None)
    table.add_row(
        "bytes",
        f"{usage.used_bytes:,}",
        f"{usage.reserved_bytes:,}",
        limit(usage.quota_bytes, usage.own_quota_bytes),
    )
    table.add_row(
        "files",
        f"{usage.used_files:,}",
        f"{usage.reserved_files:,}",
        limit(usage.quota_files, usage.own_quota_files),
    )
    _out.print(Text(f"owner {subject}"), soft_wrap=True)
    _out.print(table)


@quota_app.command("set")
def set_(
    subject: Annotated[str, _SUBJECT],
    bytes_: Annotated[
        str | None,
        typer.Option(
            "--bytes",
            metavar="SIZE",
            parser=_bytes,
            help="Bytes the owner may store: 100MiB, 5G, 1048576; 0 = unlimited; "
            "`default` = the server's (SEAU_DEFAULT_QUOTA_BYTES).",
            show_default=False,
        ),
    ] = None,
    files: Annotated[
        str | None,
        typer.Option(
            "--files",
            metavar="N",
            parser=_files,
            help="Files the owner may have; 0 = unlimited; `default` = the server's.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Set an owner's quotas (those not given stay as they are)."""
    from seau.errors import PreflightError, SeauError

    values: dict[str, int | None] = {}
    if bytes_ is not None:
        values["quota_bytes"] = _value(bytes_)
    if files is not None:
        values["quota_files"] = _value(files)
    if not values:
        raise fail("give --bytes, --files or both", code=2)
    settings = settings_or_exit()
    try:
        usage = run(_set(settings, subject, values))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    _print(subject, usage, as_json=as_json)


@quota_app.command("show")
def show(
    subject: Annotated[str, _SUBJECT],
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """An owner's usage, reservations in flight, and quotas."""
    from seau.errors import PreflightError, SeauError

    settings = settings_or_exit()
    try:
        usage = run(_show(settings, subject))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    _print(subject, usage, as_json=as_json)
