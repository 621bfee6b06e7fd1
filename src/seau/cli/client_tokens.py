"""`seau token create|list|revoke` and `seau whoami`: client commands, over HTTP only.

A personal access token (`seau_pat_…`) is for scripts: made by a signed-in user,
limited to the scopes given, shown once. Any client command uses it through
`SEAU_TOKEN`, like the token `seau login` keeps.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seau.cli.client import PANEL, JsonOption, _errors, _local, _print_json, _run, out
from seau.cli.client_api import Api
from seau.cli.client_config import TOKEN_ENV, current
from seau.cli.client_errors import ClientError

T = TypeVar("T")

token_app = typer.Typer(
    help="Personal access tokens for scripts: long-lived, limited to scopes (on the "
    "server, over HTTP; needs `seau login`).",
    no_args_is_help=True,
)

_DURATION = re.compile(r"(\d+)\s*(s|sec|m|min|h|d|w)?", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WIDE = 200
# How the server names the ways a caller signs in (`via` in /api/v1/users/me).
_VIA = {
    "session": "seau account (email and password)",
    "oidc": "the identity provider's token (OpenID Connect)",
    "app": "a token the application signed",
    "personal": "personal access token",
    "service": "service key",
}


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token", rich_help_panel=PANEL)
    app.command(rich_help_panel=PANEL)(whoami)


def wide_when_piped(console: Console) -> Console:
    """``console``, or on a pipe one that writes a table row on one line whatever its
    width (for grep and awk; rich assumes 80 columns there)."""
    if console.is_terminal:
        return console
    return Console(file=console.file, highlight=False, width=WIDE)


def parse_duration(text: str | int | None) -> int | None:
    """Seconds, or a whole number of s, m (min), h, d or w: ``30d``, ``12h``, ``90m``."""
    if text is None or isinstance(text, int):
        # Typer hands the default over as it is.
        return text
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 3600, 12h, 30d, 2w)")
    return int(match[1]) * _SECONDS[(match[2] or "").lower()]


def parse_scope_list(text: str) -> list[str]:
    """``files:read,files:write`` (commas or spaces) as a list, in the order given."""
    scopes = [s for s in re.split(r"[,\s]+", text) if s]
    if not scopes:
        raise typer.BadParameter("give at least one scope, e.g. files:read")
    return list(dict.fromkeys(scopes))


ScopesOption = Annotated[
    str,
    typer.Option(
        "--scopes",
        metavar="SCOPE,...",
        help="What the token may do, comma-separated: files:read (list, download), "
        "files:write (upload, rename, delete).",
        show_default=False,
    ),
]
ExpiresOption = Annotated[
    int | None,
    typer.Option(
        "--expires-in",
        metavar="DURATION",
        parser=parse_duration,
        help="Lifetime: seconds, or with a unit: 90m, 12h, 30d, 2w. Default: never expires.",
        show_default=False,
    ),
]


class TokensApi(Api):
    """The client API, plus the personal access token routes."""

    async def create_token(
        self, *, name: str, scopes: list[str], expires_in: int | None
    ) -> dict[str, object]:
        body = await self._send_json(
            "POST", "/api/v1/tokens", {"name": name, "scopes": scopes, "expires_in": expires_in}
        )
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ClientError(f"unexpected answer from {self.server}: no token")
        return {str(k): v for k, v in body.items()}

    async def tokens(self) -> list[dict[str, object]]:
        body = self._json(await self._request("GET", "/api/v1/tokens"))
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise ClientError(f"unexpected answer from {self.server}: no token list")
        return [{str(k): v for k, v in item.items()} for item in body]

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"/api/v1/tokens/{urllib.parse.quote(token_id, safe='')}")

    async def resolve_token(self, ref: str) -> dict[str, object]:
        """The token ``ref`` names: an id, else the one token with exactly that name."""
        tokens = await self.tokens()
        try:
            wanted = str(uuid.UUID(ref.strip()))
        except ValueError:
            matches = [t for t in tokens if t.get("name") == ref]
        else:
            matches = [t for t in tokens if t.get("id") == wanted]
            if not matches:
                # Not listed: let the server say so (404 token_not_found).
                return {"id": wanted, "name": None}
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ClientError(f"no token named {ref!r} (and it is not an id)")
        ids = ", ".join(str(t.get("id")) for t in matches)
        raise ClientError(f"{len(matches)} tokens are named {ref!r}; give one id: {ids}")

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


@token_app.command("create")
def token_create(
    name: Annotated[
        str, typer.Option(help="What the token is for, e.g. backup-script.", show_default=False)
    ],
    scopes: ScopesOption,
    expires_in: ExpiresOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a personal access token; it is shown this once."""
    scope_list = parse_scope_list(scopes)
    made = _with_api(
        lambda api: api.create_token(name=name, scopes=scope_list, expires_in=expires_in)
    )
    if as_json:
        _print_json(made)
        return
    token = str(made["token"])
    out.print(
        Text(
            f"created token {made.get('name')} ({made.get('id')}): "
            f"{_scopes(made)}, {_expiry(made.get('expires_at'))}"
        )
    )
    out.print(Text(token))
    out.print(
        Text(
            "It is shown only now (the server keeps only its hash); keep it like a password. "
            f"Use it with any client command:\n  {TOKEN_ENV}={token} seau ls\n"
            f"or over HTTP as `Authorization: Bearer {token}`."
        )
    )


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """List my personal access tokens (never the tokens themselves)."""
    tokens = _with_api(lambda api: api.tokens())
    if as_json:
        _print_json(tokens)
        return
    if not tokens:
        out.print("no tokens")
        return
    table = Table("id", "name", "scopes", "created", "last used", "expires", box=None)
    # An id is what `seau token revoke` takes: never cut; the rest wraps.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 36
    table.columns[1].overflow = "fold"
    for token in tokens:
        table.add_row(
            str(token.get("id")),
            Text(str(token.get("name"))),
            " ".join(str(s) for s in _list(token.get("scopes"))),
            _when(token.get("created_at")),
            _when(token.get("last_used_at"), never="never"),
            _when(token.get("expires_at"), never="never"),
        )
    wide_when_piped(out).print(table)


@token_app.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(metavar="ID|NAME", help="A token id, or an exact name.")],
) -> None:
    """Revoke a personal access token: every server refuses it from the next request."""

    async def work(api: TokensApi) -> dict[str, object]:
        token = await api.resolve_token(ref)
        await api.revoke_token(str(token["id"]))
        return token

    token = _with_api(work)
    named = f"{token['name']} " if token.get("name") is not None else ""
    out.print(Text(f"revoked token {named}({token['id']})"))


def whoami(as_json: JsonOption = False) -> None:
    """Show who the current token is, how it signed in, and what it may do."""
    me = _with_api(lambda api: api.me())
    if as_json:
        _print_json(me)
        return
    via = str(me.get("via"))
    subject = me.get("subject")
    rows: list[tuple[str, str]] = [
        ("subject", str(subject) if subject is not None else "nobody (name one in Seau-Subject)"),
    ]
    for key in ("email", "name", "id"):
        if me.get(key) is not None:
            rows.append((key, str(me[key])))
    rows.append(("signed in with", _VIA.get(via, via)))
    if me.get("acting_for"):
        rows.append(("acting for", f"{subject} (Seau-Subject)"))
    rows.append(("scopes", " ".join(str(s) for s in _list(me.get("scopes"))) or "none"))
    if me.get("is_admin"):
        rows.append(("admin", "yes"))
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in rows:
        table.add_row(Text(key, style="bold"), Text(value))
    out.print(table)


# -- plumbing ----------------------------------------------------------------


def _with_api(work: Callable[[TokensApi], Awaitable[T]]) -> T:
    with _errors():
        connection = current()

    async def main() -> T:
        async with TokensApi(connection) as api:
            return await work(api)

    return _run(main())


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _scopes(token: dict[str, object]) -> str:
    return "scopes " + ", ".join(str(s) for s in _list(token.get("scopes")))


def _when(value: object, *, never: str = "") -> str:
    if not isinstance(value, str):
        return never
    try:
        return _local(datetime.fromisoformat(value))
    except ValueError:
        return value


def _expiry(value: object) -> str:
    return f"expires {_when(value)}" if isinstance(value, str) else "never expires"
