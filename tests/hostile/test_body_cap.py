"""Issue 17, finding 1: the 1 MiB cap on request bodies is chosen by the route.

Every route of the app, with every one of its methods, gets a 64 MiB body over a raw
socket, framed by `Content-Length` and chunked, anonymously and with a valid token. All
but the upload routes, which stream their bodies under their own limits, must answer
413 `request_too_large` having taken at most the cap and what the two kernels buffer,
and the server's memory must not grow. Before the fix the exemption was a path prefix:
an anonymous chunked 64 MiB `PATCH /api/v1/files/{id}` (a rename) was read whole.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import RouteContext, iter_route_contexts

from seau import limits
from seau.app import create_app
from seau.settings import Settings
from tests.hostile.conftest import RSS_MARGIN, SECRET, MiB
from tests.hostile.rawhttp import CRLF, build, exchange
from tests.support.server import Server, seau_server

# The only operations that may take more than the cap: they stream to storage.
STREAMING = {
    ("POST", "/api/v1/files"),
    ("POST", "/api/v1/uploads"),
    ("POST", "/api/v1/uploads/"),  # the same creation, as tus clients often spell it
    ("PATCH", "/api/v1/uploads/{upload_id}"),
    # Direct uploads on a store that cannot sign its own URLs: seau's signed URLs.
    ("POST", "/api/v1/direct-uploads/{upload_id}/object"),
    ("PUT", "/api/v1/direct-uploads/{upload_id}/parts/{number}"),
}
BODY = 64 * MiB
PIECE = 256 * 1024
# What the server may read past the cap (one read of the socket and uvicorn's 64 KiB
# high-water mark) and what the loopback connection buffers in both kernels: the
# receive window the server's socket had grown to and the client's send buffer. A route
# that reads the whole body takes all 64 MiB.
ACCEPTED_MAX = limits.MAX_SMALL_BODY_BYTES + 16 * MiB


def _walk() -> list[tuple[str, str, RouteContext]]:
    """Every (method, path) the app serves, from its own routes as FastAPI walks them for
    the OpenAPI document: a route added later is walked too, documented or not. Building
    the app opens nothing (its parts are made in the lifespan)."""
    app = create_app(Settings(secret_key=SECRET))
    walked = [
        (method, str(context.path), context)
        for context in iter_route_contexts(app.routes)
        for method in sorted(context.methods or ())
    ]
    documented = {
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    }
    assert documented <= {(method, path) for method, path, _ in walked}
    return walked


@dataclass
class Battery:
    server: Server
    port: int
    token: str
    file_id: str

    def status_value(self, field: str) -> int:
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field}")

    def target(self, path: str) -> str:
        values = {"file_id": self.file_id, "upload_id": str(uuid.uuid4()), "name": "app.js"}
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    tmp = tmp_path_factory.mktemp("body-cap")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SECRET_KEY": SECRET,
        "SEAU_LOG_LEVEL": "warning",
    }
    with seau_server(env, cwd=tmp) as server, httpx.Client(base_url=server.url) as client:
        email, password = "cap@example.com", "correct horse battery"
        created = client.post("/api/v1/users", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        issued = client.post("/api/v1/auth/token", data={"username": email, "password": password})
        token = issued.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        made = client.post("/api/v1/files", params={"name": "a.txt"}, content=b"a", headers=auth)
        assert made.status_code == 201, made.text
        found = Battery(
            server=server,
            port=int(server.url.rsplit(":", 1)[1]),
            token=token,
            file_id=made.json()["id"],
        )
        # A first refusal of each framing, so that what they load is in the baseline.
        for framing in ("length", "chunked"):
            _send(found, "POST", "/api/v1/users", framing=framing, auth=False)
        yield found


def _pieces(method: str, target: str, *, framing: str, auth: str | None) -> list[bytes]:
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    if auth is not None:
        headers.append(("Authorization", f"Bearer {auth}"))
    data = b"x" * PIECE
    if framing == "length":
        headers.append(("Content-Length", str(BODY)))
        return [build(method, target, headers=headers), *[data] * (BODY // PIECE)]
    headers.append(("Transfer-Encoding", "chunked"))
    chunk = f"{PIECE:x}".encode() + CRLF + data + CRLF
    return [build(method, target, headers=headers), *[chunk] * (BODY // PIECE), b"0\r\n\r\n"]


@dataclass
class Outcome:
    status: int
    code: str | None
    accepted: int


def _send(battery: Battery, method: str, path: str, *, framing: str, auth: bool) -> Outcome:
    pieces = _pieces(
        method, battery.target(path), framing=framing, auth=battery.token if auth else None
    )
    response = exchange(battery.port, pieces, head=method == "HEAD", timeout=30)
    code = None
    if method != "HEAD" and response.media_type == "application/problem+json":
        code = str(response.json()["code"])
    total = sum(len(p) for p in pieces)
    return Outcome(status=response.status, code=code, accepted=total - response.unsent)


def test_only_the_upload_routes_stream_their_bodies() -> None:
    marked = {(m, path) for m, path, route in _walk() if limits.route_streams_body(route)}
    assert marked == STREAMING


@pytest.mark.parametrize("auth", [False, True], ids=["anonymous", "with-token"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_every_other_route_refuses_an_oversized_body_unread(
    battery: Battery, framing: str, auth: bool
) -> None:
    operations = [
        *((method, path) for method, path, _ in _walk() if (method, path) not in STREAMING),
        # No route at all, and a method the path does not serve: capped all the same.
        ("POST", "/nowhere"),
        ("PUT", "/api/v1/files"),
    ]
    rss_before = battery.status_value("VmRSS")
    peak_before = battery.status_value("VmHWM")
    wrong: list[str] = []
    for method, path in operations:
        outcome = _send(battery, method, path, framing=framing, auth=auth)
        expected_code = None if method == "HEAD" else "request_too_large"
        if (
            outcome.status != 413
            or outcome.code != expected_code
            or outcome.accepted > ACCEPTED_MAX
        ):
            wrong.append(
                f"{method} {path}: {outcome.status} {outcome.code}, "
                f"{outcome.accepted / MiB:.1f} MiB taken"
            )
        health = exchange(battery.port, build("GET", "/healthz"), timeout=5)
        assert health.status == 200
    rss_after = battery.status_value("VmRSS")
    peak_after = battery.status_value("VmHWM")
    memory = (
        f"RSS {rss_before / MiB:.0f} -> {rss_after / MiB:.0f} MiB, "
        f"peak {peak_before / MiB:.0f} -> {peak_after / MiB:.0f} MiB"
    )
    assert not wrong, f"{len(wrong)} of {len(operations)} not refused unread ({memory}):\n" + (
        "\n".join(wrong)
    )
    assert rss_after - rss_before < RSS_MARGIN, memory
    assert peak_after - peak_before < RSS_MARGIN, memory
