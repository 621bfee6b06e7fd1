"""`seau webhook add|list|rm|failures|replay`: webhook receivers and failed
deliveries, server side, straight to the database (as `seau apikey …`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from seau.db.models import WebhookEndpoint
    from seau.events.service import Failure
    from seau.settings import Settings

webhook_app = typer.Typer(
    help="Webhook receivers and failed deliveries (server side, direct database access).",
    no_args_is_help=True,
)

_out = Console()
_err = Console(stderr=True)
T = TypeVar("T")


# As in `seau.cli.main`, which imports this module (so not the other way round).
def fail(message: str, *, code: int = 1) -> typer.Exit:
    _err.print(f"[bold red]seau:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    from seau.errors import ConfigurationError
    from seau.settings import load_settings

    try:
        return load_settings()
    except ConfigurationError as exc:
        raise fail(str(exc), code=2) from None


def run(work: Coroutine[object, object, T]) -> T:
    return asyncio.run(work)


_JSON = typer.Option("--json", help="Print JSON on stdout, for scripts.")


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")


async def _add(settings: Settings, *, url: str, events: str, secret: str | None) -> WebhookEndpoint:
    from seau.events.types import parse_event_types
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.webhooks.add(url=url, types=parse_event_types(events), secret=secret)


async def _list(settings: Settings) -> list[WebhookEndpoint]:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.webhooks.list()


async def _remove(settings: Settings, endpoint_id: uuid.UUID) -> None:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        await parts.webhooks.remove(endpoint_id)


async def _failures(settings: Settings, *, limit: int) -> list[Failure]:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.webhooks.failures(limit=limit)


async def _replay(settings: Settings, failure: str) -> int:
    from seau.preflight import command_parts

    async with command_parts(settings) as parts:
        return await parts.webhooks.replay(failure)


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise typer.BadParameter(f"not an id: {value!r}") from None


def _failure_ref(value: str) -> str:
    from seau.events.types import parse_failure_ref

    try:
        parse_failure_ref(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value.strip()


def _events(value: str) -> str:
    from seau.events.types import format_event_types, parse_event_types

    try:
        return format_event_types(parse_event_types(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _document(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": endpoint.events.split(",") if endpoint.events else [],
        "created_at": endpoint.created_at.isoformat(),
    }


@webhook_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where the events are POSTed (http or https).")],
    events: Annotated[
        str,
        typer.Option(
            metavar="TYPE,...",
            parser=_events,
            help="Comma-separated: file.ready, file.renamed, file.deleted, upload.expired. "
            "Default: every type.",
            show_default=False,
        ),
    ] = "",
    secret: Annotated[
        str | None,
        typer.Option(
            help="A Standard Webhooks secret (whsec_…). Default: a new one, shown once.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Register a webhook receiver."""
    from seau.errors import PreflightError, SeauError

    settings = settings_or_exit()
    try:
        endpoint = run(_add(settings, url=url, events=events, secret=secret))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({**_document(endpoint), "secret": endpoint.secret}, indent=2))
        return
    kinds = endpoint.events.replace(",", ", ") or "every event"
    _out.print(Text(f"added webhook {endpoint.id} → {endpoint.url} ({kinds})"), soft_wrap=True)
    _out.print(Text(f"secret: {endpoint.secret}"), soft_wrap=True)


@webhook_app.command("list")
def list_(as_json: Annotated[bool, _JSON] = False) -> None:
    """List the registered receivers (never their secrets)."""
    from seau.cli.client_tokens import wide_when_piped
    from seau.errors import PreflightError, SeauError

    settings = settings_or_exit()
    try:
        endpoints = run(_list(settings))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([_document(e) for e in endpoints], indent=2))
        return
    if not endpoints:
        _out.print("no webhooks")
        return
    table = Table("id", "url", "events", "created")
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 36
    for endpoint in endpoints:
        table.add_row(
            str(endpoint.id),
            Text(endpoint.url),
            endpoint.events or "every event",
            endpoint.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    wide_when_piped(_out).print(table)


@webhook_app.command("rm")
def remove(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID", help="The receiver's id.")],
) -> None:
    """Remove a receiver, with its pending and failed deliveries."""
    from seau.errors import PreflightError, SeauError

    wanted = _uuid(endpoint_id)
    settings = settings_or_exit()
    try:
        run(_remove(settings, wanted))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    _out.print(f"removed webhook {wanted}")


@webhook_app.command("failures")
def failures(
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """List deliveries given up on (oldest event first); `seau webhook replay` sends one again."""
    from seau.cli.client_tokens import wide_when_piped
    from seau.errors import PreflightError, SeauError

    settings = settings_or_exit()
    try:
        found = run(_failures(settings, limit=limit))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    from seau.events.types import message_id

    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": str(f.id),
                        "event_id": message_id(f.event_id),
                        "type": f.type,
                        "url": f.url,
                        "attempts": f.attempts,
                        "last_status": f.last_status,
                        "last_error": f.last_error,
                        "created_at": f.created_at.isoformat(),
                    }
                    for f in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        _out.print("no failed deliveries")
        return
    # The event's id first, as its receivers saw it in webhook-id: what
    # `seau webhook replay` takes. The delivery's own id tells receivers apart.
    table = Table("event", "type", "receiver", "attempts", "last answer", "happened", "delivery")
    for column in (table.columns[0], table.columns[-1]):
        column.no_wrap = True
        column.min_width = 36
    for f in found:
        table.add_row(
            message_id(f.event_id),
            f.type,
            Text(f.url or "SEAU_WEBHOOK_URL"),
            str(f.attempts),
            Text(f.last_error or ""),
            f.created_at.strftime("%Y-%m-%d %H:%M"),
            str(f.id),
        )
    wide_when_piped(_out).print(table)


@webhook_app.command("replay")
def replay(
    failure: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A failed event's id as its receivers saw it in webhook-id (msg_…, "
            "`seau webhook failures`): each of its failed deliveries; or a delivery's id.",
        ),
    ],
) -> None:
    """Send a failed delivery again, with its original webhook-id."""
    from seau.errors import PreflightError, SeauError

    wanted = _failure_ref(failure)
    settings = settings_or_exit()
    try:
        count = run(_replay(settings, wanted))
    except (SeauError, PreflightError) as exc:
        raise fail(str(exc)) from None
    deliveries = "1 delivery" if count == 1 else f"{count} deliveries"
    _out.print(Text(f"{wanted}: {deliveries} pending again"), soft_wrap=True)
