"""Where the client keeps its servers and tokens: `$XDG_CONFIG_HOME/seau/config.json`.

The file holds the current server and one token per server, and is written with
mode 0600 (its directory 0700): a token is as good as the password for its lifetime.
`SEAU_SERVER` and `SEAU_TOKEN` override the file, for scripts and CI.

Resumable uploads in progress are remembered in `$XDG_CACHE_HOME/seau/uploads.json`
(same modes): losing it costs a restart from zero, never data.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from seau.cli.client_errors import ConfigError

SERVER_ENV = "SEAU_SERVER"
TOKEN_ENV = "SEAU_TOKEN"  # noqa: S105  (a variable name, not a secret)
# What `make serve` and `seau serve` listen on without options.
DEFAULT_SERVER = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Stored:
    server: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def with_token(self, server: str, token: str | None) -> Stored:
        tokens = {k: v for k, v in self.tokens.items() if k != server}
        if token is not None:
            tokens[server] = token
        return replace(self, server=server, tokens=tokens)


@dataclass(frozen=True, slots=True)
class Connection:
    server: str
    token: str | None


def config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "seau" / "config.json"


def upload_state_path() -> Path:
    """Where `seau upload` remembers its unfinished resumable uploads."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "seau" / "uploads.json"


def _xdg(variable: str, default: str) -> Path:
    base = os.environ.get(variable, "")
    # The XDG spec says a relative value is invalid and must be ignored.
    return Path(base) if os.path.isabs(base) else Path.home() / default


def normalize_server(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash, or `ConfigError`."""
    text = url.strip()
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid server URL {text!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"invalid server URL {text!r}: expected http://HOST[:PORT] or https://")
    if parsed.query or parsed.fragment or parsed.userinfo:
        raise ConfigError(f"invalid server URL {text!r}: no query, fragment or credentials")
    return str(parsed).rstrip("/")


def read_config(path: Path | None = None) -> Stored:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Stored()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; delete it and run `seau login`") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; delete it and run `seau login`")
    server = data.get("server")
    tokens = data.get("tokens")
    return Stored(
        server=server if isinstance(server, str) else None,
        tokens={
            str(k): v
            for k, v in (tokens if isinstance(tokens, dict) else {}).items()
            if isinstance(v, str)
        },
    )


def write_config(stored: Stored, path: Path | None = None) -> Path:
    """Replace the file atomically; it never exists, even briefly, with a wider mode."""
    path = path or config_path()
    body = json.dumps({"server": stored.server, "tokens": stored.tokens}, indent=2) + "\n"
    try:
        write_private(path, body)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600 (its directory 0700 if new)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    # O_EXCL: a file left there by someone else could carry a wider mode.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def current(stored: Stored | None = None) -> Connection:
    """The server and token commands use: the environment first, then the file.

    A stored token is only ever sent to the server it was issued by, so pointing
    `SEAU_SERVER` elsewhere does not leak it.
    """
    stored = read_config() if stored is None else stored
    server_env = os.environ.get(SERVER_ENV, "").strip()
    server = normalize_server(server_env or stored.server or DEFAULT_SERVER)
    token = os.environ.get(TOKEN_ENV, "").strip() or stored.tokens.get(server)
    return Connection(server=server, token=token)
