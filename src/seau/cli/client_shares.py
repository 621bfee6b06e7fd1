"""`seau share`, `seau shares` and `seau unshare`: share links, over HTTP only."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from seau.cli.client import PANEL, JsonOption, _errors, _print_json, _run, out
from seau.cli.client_api import Api
from seau.cli.client_config import current
from seau.cli.client_errors import ClientError
from seau.cli.client_tokens import _when, parse_duration, wide_when_piped

T = TypeVar("T")

PASSWORD_ENV = "SEAU_SHARE_PASSWORD"  # noqa: S105  (a variable's name, not a secret)


def register(app: typer.Typer) -> None:
    for command in (share, shares, unshare):
        app.command(rich_help_panel=PANEL)(command)


class SharesApi(Api):
    """The client API, plus the share routes."""

    async def create_share(
        self,
        file_id: str,
        *,
        expires_in: int | None,
        password: str | None,
        max_downloads: int | None,
    ) -> dict[str, object]:
        document = {
            "expires_in": expires_in,
            "password": password,
            "max_downloads": max_downloads,
        }
        body = await self._send_json("POST", f"/api/v1/files/{_quoted(file_id)}/shares", document)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise ClientError(f"unexpected answer from {self.server}: no share URL")
        made = {str(k): v for k, v in body.items()}
        # Without SEAU_PUBLIC_URL the server answers a path, for the URL it was reached at.
        made["url"] = urllib.parse.urljoin(self.server + "/", str(made["url"]))
        return made

    async def shares(self, file_id: str | None = None) -> list[dict[str, object]]:
        path = "/api/v1/shares" if file_id is None else f"/api/v1/files/{_quoted(file_id)}/shares"
        body = self._json(await self._request("GET", path))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ClientError(f"unexpected answer from {self.server}: no share list")
        return [{str(k): v for k, v in item.items()} for item in items]

    async def revoke_share(self, share_id: str) -> None:
        await self._request("DELETE", f"/api/v1/shares/{_quoted(share_id)}")

    async def _send_json(self, method: str, url: str, document: object) -> object:
        data = json.dumps(document).encode()

        async def content() -> AsyncIterator[bytes]:
            yield data

        response = await self._request(
            method,
            url,
            content=content(),
            headers={"Content-Type": "application/json", "Content-Length": str(len(data))},
        )
        return self._json(response)


# -- commands ----------------------------------------------------------------


def share(
    ref: Annotated[str, typer.Argument(metavar="FILE", help="A file id, or an exact name.")],
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            "--expires",
            metavar="DURATION",
            parser=parse_duration,
            help="Lifetime: seconds, or 90m, 12h, 7d, 2w. Default: the server's "
            "(SEAU_SHARE_DEFAULT_TTL_SECONDS).",
            show_default=False,
        ),
    ] = None,
    password: Annotated[
        bool,
        typer.Option(
            "--password",
            help=f"Ask downloaders for a password: typed at a prompt, or ${PASSWORD_ENV}.",
        ),
    ] = False,
    max_downloads: Annotated[
        int | None,
        typer.Option(
            "--max-downloads", metavar="N", min=1, help="Downloads allowed; default: no limit."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Share a file by link and print the URL (shown this once)."""
    secret = None
    if password:
        secret = os.environ.get(PASSWORD_ENV) or typer.prompt(
            "Share password", hide_input=True, confirmation_prompt=True
        )

    async def work(api: SharesApi) -> dict[str, object]:
        file = await api.resolve(ref)
        return await api.create_share(
            file.id, expires_in=expires_in, password=secret, max_downloads=max_downloads
        )

    made = _with_api(work)
    if as_json:
        _print_json(made)
        return
    out.print(Text(str(made["url"])))


def shares(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="[FILE]", help="Only this file's (an id, or an exact name)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List my share links with their download counts (never their secrets)."""

    async def work(api: SharesApi) -> list[dict[str, object]]:
        file_id = None if ref is None else (await api.resolve(ref)).id
        return await api.shares(file_id)

    items = _with_api(work)
    if as_json:
        _print_json(items)
        return
    if not items:
        out.print("no shares")
        return
    table = Table("id", "file", "downloads", "password", "expires", box=None)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 36
    table.columns[1].overflow = "fold"
    for item in items:
        limit = item.get("max_downloads")
        table.add_row(
            str(item.get("id")),
            Text(str(item.get("file_name"))),
            f"{item.get('downloads')}/{limit}" if limit is not None else str(item.get("downloads")),
            "yes" if item.get("has_password") else "no",
            _when(item.get("expires_at")),
        )
    wide_when_piped(out).print(table)


def unshare(
    share_id: Annotated[str, typer.Argument(metavar="ID", help="A share's id (`seau shares`).")],
) -> None:
    """Revoke a share link: every server refuses it from the next request."""
    _with_api(lambda api: api.revoke_share(share_id))
    out.print(Text(f"revoked share {share_id}"))


# -- plumbing ----------------------------------------------------------------


def _with_api(work: Callable[[SharesApi], Awaitable[T]]) -> T:
    with _errors():
        connection = current()

    async def main() -> T:
        async with SharesApi(connection) as api:
            return await work(api)

    return _run(main())


def _quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")
