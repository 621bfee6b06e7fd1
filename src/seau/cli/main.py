"""`seau`: the server-side commands (serve, db, user, apikey, gc); client commands in
`client.py` and `client_tokens.py`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seau import __version__
from seau.cli import (
    admin_quotas,
    admin_webhooks,
    client,
    client_shares,
    client_tokens,
    client_usage,
)
from seau.cli.client_tokens import parse_duration, parse_scope_list
from seau.errors import ConfigurationError
from seau.settings import Settings, load_settings

if TYPE_CHECKING:
    from seau.db.models import AccessKey

T = TypeVar("T")

app = typer.Typer(
    name="seau",
    help="seau: users' files in object storage, one SQL row per file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema: migrate, or print the DDL.", no_args_is_help=True)
user_app = typer.Typer(
    help="Manage accounts (server side, direct database access).", no_args_is_help=True
)
apikey_app = typer.Typer(
    help="Service keys for the application's backend (server side, direct database access).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
client.register(app)
client_tokens.register(app)
client_shares.register(app)
admin_webhooks.register(app)
admin_quotas.register(app)
client_usage.register(app)

err = Console(stderr=True)
out = Console()


def fail(message: str, *, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]seau:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        raise fail(str(exc), code=2) from None


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def _version(value: bool) -> None:
    if value:
        out.print(f"seau {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """seau: users' files in object storage, one SQL row per file."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP server (configuration from SEAU_* variables)."""
    from seau.cli.serve import exec_server
    from seau.errors import PreflightError
    from seau.preflight import migrate, preflight

    settings = settings_or_exit()
    try:
        run(preflight(settings))
        if settings.auto_migrate:
            run(migrate(settings))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    exec_server(host=host, port=port, workers=workers)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations to SEAU_DATABASE_URL."""
    from seau.errors import PreflightError
    from seau.preflight import migrate

    settings = settings_or_exit()
    try:
        run(migrate(settings, revision))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    out.print(f"database at revision {revision}")


@db_app.command("sql")
def db_sql(
    dialect: Annotated[
        Literal["mysql", "postgresql", "sqlite"], typer.Option(help="SQL dialect of the DDL.")
    ] = "mysql",
) -> None:
    """Print the DDL of the whole migration history, to apply by hand."""
    from seau.db.migrate import offline_sql

    sys.stdout.write(offline_sql(dialect))


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove debris of failed uploads: orphan objects, stale pending rows, temp data."""
    from seau.errors import PreflightError
    from seau.preflight import run_gc

    settings = settings_or_exit()
    try:
        report = run(run_gc(settings, dry_run=dry_run))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    verb = "would remove" if dry_run else "removed"
    out.print(f"orphan objects: {len(report.orphan_objects)} found")
    out.print(f"stale pending files: {len(report.stale_pending)} found")
    if not dry_run:
        out.print(f"temporary data: {report.temporary_removed} removed")
    for name, count in report.extra.items():
        out.print(f"{name}: {count} {verb}")
    for error in report.errors:
        err.print(f"[yellow]warning:[/] {error}", highlight=False)
    total = len(report.orphan_objects) + len(report.stale_pending) + sum(report.extra.values())
    if not dry_run:
        total += report.temporary_removed
    out.print(f"gc {verb} {total} item(s) (grace {settings.gc_grace_seconds} s)")
    if report.errors:
        raise typer.Exit(1)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="SEAU_USER_PASSWORD"
        ),
    ],
    admin: Annotated[bool, typer.Option(help="Make the account an administrator.")] = False,
) -> None:
    """Create an account."""
    from pydantic import ValidationError

    from seau.auth.schemas import UserCreate
    from seau.errors import PreflightError, SeauError
    from seau.preflight import with_auth

    settings = settings_or_exit()
    try:
        body = UserCreate(email=email, password=password)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(f"{first['loc'][0]}: {first['msg']}", code=2) from None
    try:
        user = run(
            with_auth(
                settings,
                lambda auth: auth.create_user(
                    email=body.email, password=body.password, is_admin=admin
                ),
            )
        )
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    out.print(f"created {user.email} ({user.id})")


@user_app.command("list")
def user_list() -> None:
    """List accounts."""
    from seau.errors import PreflightError
    from seau.preflight import with_auth

    settings = settings_or_exit()
    try:
        users = run(with_auth(settings, lambda auth: auth.list_users()))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    table = Table("email", "id", "admin", "active", "created")
    for user in users:
        table.add_row(
            user.email,
            str(user.id),
            "yes" if user.is_admin else "",
            "yes" if user.is_active else "no",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@user_app.command("disable")
def user_disable(email: Annotated[str, typer.Option(help="The account's email.")]) -> None:
    """Disable an account: no more logins, and its tokens stop working at once."""
    from seau.cli.admin_users import disable_user
    from seau.errors import NoSuchUser, PreflightError

    settings = settings_or_exit()
    try:
        user = run(disable_user(settings, email))
    except (NoSuchUser, PreflightError) as exc:
        raise fail(str(exc)) from None
    out.print(f"disabled {user.email} ({user.id})")


@user_app.command("delete")
def user_delete(
    email: Annotated[str, typer.Option(help="The account's email.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an account and all its files (rows and stored bytes)."""
    from seau.cli.admin_users import delete_user
    from seau.errors import NoSuchUser, PreflightError

    if not yes:
        typer.confirm(f"Delete {email} and all their files?", abort=True)
    settings = settings_or_exit()
    try:
        deleted = run(delete_user(settings, email))
    except (NoSuchUser, PreflightError) as exc:
        raise fail(str(exc)) from None
    out.print(f"deleted {deleted.email} and {deleted.files} files ({deleted.bytes} bytes)")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[
        str, typer.Option(help="What the key is for, e.g. backend.", show_default=False)
    ],
    scopes: Annotated[
        str,
        typer.Option(
            metavar="SCOPE,...",
            help="Comma-separated: files:read, files:write, act-as (act for the user named "
            "in the Seau-Subject header), admin.",
            show_default=False,
        ),
    ],
    expires_in: Annotated[
        int | None,
        typer.Option(
            metavar="DURATION",
            parser=parse_duration,
            help="Lifetime: seconds, or with a unit: 90m, 12h, 30d, 2w. Default: never expires.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")
    ] = False,
) -> None:
    """Create a service key; it is shown this once."""
    from seau.cli.admin_keys import create_key
    from seau.errors import PreflightError, SeauError

    scope_list = parse_scope_list(scopes)
    settings = settings_or_exit()
    try:
        made = run(create_key(settings, name=name, scopes=scope_list, expires_in=expires_in))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    key = made.key
    if as_json:
        typer.echo(json.dumps({**_key_document(key), "token": made.token}, indent=2))
        return
    expiry = "never expires" if key.expires_at is None else f"expires {_when(key.expires_at)}"
    scopes = ", ".join(_scopes(key))
    lines = [
        f"created service key {key.name} ({key.id}): scopes {scopes}, {expiry}",
        made.token,
        "It is shown only now (seau keeps only its hash); keep it secret. The backend "
        f"sends it as `Authorization: Bearer {made.token}`",
    ]
    if "act-as" in _scopes(key):
        lines[-1] += ", with `Seau-Subject: <the user's subject>` to act for that user"
    for line in lines:
        # soft_wrap: a line the terminal wraps, not cut into several (the token stays whole).
        out.print(Text(line), soft_wrap=True)


@apikey_app.command("list")
def apikey_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout, for scripts.")
    ] = False,
) -> None:
    """List service keys (never the keys themselves)."""
    from seau.cli.admin_keys import list_keys
    from seau.errors import PreflightError

    settings = settings_or_exit()
    try:
        keys = run(list_keys(settings))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([_key_document(key) for key in keys], indent=2))
        return
    if not keys:
        out.print("no service keys")
        return
    table = Table("id", "name", "scopes", "created", "last used", "expires")
    # An id is what `seau apikey revoke` takes: never cut; the rest wraps.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 36
    for key in keys:
        table.add_row(
            str(key.id),
            Text(key.name),
            " ".join(_scopes(key)),
            _when(key.created_at),
            _when(key.last_used_at) or "never",
            _when(key.expires_at) or "never",
        )
    client_tokens.wide_when_piped(out).print(table)


@apikey_app.command("revoke")
def apikey_revoke(
    ref: Annotated[str, typer.Argument(metavar="ID|NAME", help="The key's id, or its exact name.")],
) -> None:
    """Revoke a service key: every instance refuses it from the next request."""
    from seau.cli.admin_keys import revoke_key
    from seau.errors import CommandError, SeauError

    settings = settings_or_exit()
    try:
        key = run(revoke_key(settings, ref))
    except (SeauError, CommandError) as exc:
        raise fail(str(exc)) from None
    out.print(Text(f"revoked service key {key.name} ({key.id})"))


def _scopes(key: AccessKey) -> list[str]:
    return sorted(key.scopes.split())


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _key_document(key: AccessKey) -> dict[str, object]:
    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": str(key.id),
        "name": key.name,
        "scopes": _scopes(key),
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "expires_at": iso(key.expires_at),
    }


def main() -> None:
    app()
