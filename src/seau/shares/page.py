"""The page at `/s/{token}`: plain HTML made by the server, so that a share opens
and downloads without JavaScript. Pure: strings in, a string out. Everything the
uploader or the URL wrote is escaped."""

from __future__ import annotations

from html import escape
from typing import Final

# No script at all, no outside resource, only its own inline style; the forms may
# send only to this origin.
PAGE_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    # The URL holds the secret: never send it to another site, never keep the page.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#222}h1{font-size:1.3rem;word-break:break-all}p.meta{color:#555}"
    "button{font-size:1rem;padding:.5rem 1.2rem}input{font-size:1rem;padding:.4rem;"
    "margin-right:.5rem}p.error{color:#a00}"
)


def human_size(size: int) -> str:
    """``1.2 MB``: decimal units, as browsers and file managers show sizes."""
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def download_page(*, token: str, name: str, size: int) -> str:
    """The file's name and size, and a button that downloads it."""
    action = escape(f"/s/{token}/content")
    return _page(
        f"{name} - seau",
        f"<h1>{escape(name)}</h1>"
        f'<p class="meta">{escape(human_size(size))}</p>'
        f'<form method="get" action="{action}"><button type="submit">Download</button></form>',
    )


def password_page(*, token: str, error: str | None = None) -> str:
    """A password field that sends the form to the content itself (POST), for
    browsers without script; a browser's own prompt (HTTP Basic) works too."""
    action = escape(f"/s/{token}/content")
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _page(
        "Protected file - seau",
        "<h1>This file is protected by a password</h1>"
        f"{problem}"
        f'<form method="post" action="{action}">'
        '<label for="password">Password</label> '
        '<input type="password" id="password" name="password" required '
        'autocomplete="current-password" autofocus>'
        '<button type="submit">Download</button></form>',
    )


def message_page(*, title: str, message: str) -> str:
    """Why the link does not work (revoked, expired, used up, throttled)."""
    return _page(f"{title} - seau", f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
