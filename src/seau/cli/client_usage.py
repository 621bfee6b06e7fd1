"""`seau usage`: what my files use of my quotas, over HTTP."""

from __future__ import annotations

import typer
from rich.table import Table

from seau.cli.client import PANEL, JsonOption, _print_json, _with_api, out
from seau.cli.client_api import Api
from seau.cli.client_errors import ClientError


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(usage)


async def _usage(api: Api) -> dict[str, int]:
    body = api._json(await api._request("GET", "/api/v1/usage"))
    if not isinstance(body, dict) or not all(isinstance(v, int) for v in body.values()):
        raise ClientError(f"unexpected answer from {api.server}: no usage")
    return {str(k): int(v) for k, v in body.items()}


def usage(as_json: JsonOption = False) -> None:
    """What my files use, what my uploads in flight hold, and my quotas."""
    found = _with_api(_usage)
    if as_json:
        _print_json(found)
        return

    def limit(value: int) -> str:
        return "unlimited" if value == 0 else f"{value:,}"

    table = Table("", "used", "in flight", "quota", box=None)
    table.add_row(
        "bytes",
        f"{found.get('used_bytes', 0):,}",
        f"{found.get('reserved_bytes', 0):,}",
        limit(found.get("quota_bytes", 0)),
    )
    table.add_row(
        "files", f"{found.get('used_files', 0):,}", "", limit(found.get("quota_files", 0))
    )
    out.print(table)
