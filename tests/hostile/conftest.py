"""A real `seau serve` per module, three users, and the checks every hostile case shares.

Every case must be refused promptly with a 4xx, store nothing, leak nothing, and leave the
server answering; `Target.refused` checks all of that in one call.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.hostile.rawhttp import RawResponse, build, exchange
from tests.support.moto import bucket_keys, make_bucket, pending_multipart_uploads
from tests.support.server import Server, seau_server

MiB = 1024 * 1024
MAX_UPLOAD = MiB
MAX_FILES = 10
# Long enough for PyJWT to sign HS512 with it without a warning (64 bytes).
SECRET = "hostile-battery-secret-" + "k" * 48
PROMPT_SECONDS = 5.0
# RSS may sit a little above the warmed-up baseline (allocator arenas, caches filled by
# the cases); what must not happen is keeping the megabytes a hostile request carried.
RSS_MARGIN = 32 * MiB
PROBLEM = "application/problem+json"
OWNED_CONTENT = bytes(range(256)) * 4

# What an error response must never show: a stack trace, a filesystem path, an object key,
# SQL or the database driver. The data directory itself is checked per server.
_LEAKS = re.compile(
    r"Traceback|File \"|site-packages|/tmp/|/work/|files/[0-9a-f]{2}/[0-9a-f]{32}"
    r"|\bSELECT\b|\bINSERT\b|\bUPDATE user|\bFROM user|sqlalchemy|sqlite|aiosqlite",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Snapshot:
    objects: frozenset[str]
    temporary: frozenset[str]
    rows: int


@dataclass
class User:
    email: str
    token: str
    id: str

    @property
    def auth(self) -> tuple[str, str]:
        return ("Authorization", f"Bearer {self.token}")


@dataclass
class Target:
    server: Server
    data_dir: Path
    port: int
    victim: User  # every hostile request comes from here; it must never own a file
    owner: User  # owns `owned_id`, the file other users must not reach
    namer: User  # uploads names that are accepted after cleaning, then deletes them
    owned_id: str
    baseline_rss: int = 0
    # On S3: where the bucket is (the local store is read from data_dir).
    s3_endpoint: str | None = None
    bucket: str | None = None

    # -- requests ------------------------------------------------------------

    def send(
        self, request: bytes | list[bytes], *, head: bool = False, shut_write: bool = False
    ) -> RawResponse:
        return exchange(self.port, request, head=head, shut_write=shut_write)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10)

    # -- observations --------------------------------------------------------

    def snapshot(self) -> Snapshot:
        root = self.data_dir / "objects"
        objects: set[str] = set()
        temporary: set[str] = set()
        if self.s3_endpoint is not None and self.bucket is not None:
            objects.update(bucket_keys(self.s3_endpoint, self.bucket))
            temporary.update(pending_multipart_uploads(self.s3_endpoint, self.bucket))
        elif root.exists():
            for path in root.rglob("*"):
                if path.is_file():
                    relative = path.relative_to(root).as_posix()
                    (temporary if relative.startswith(".tmp/") else objects).add(relative)
        with sqlite3.connect(f"file:{self.data_dir / 'seau.db'}?mode=ro", uri=True) as db:
            (rows,) = db.execute("SELECT count(*) FROM user_file").fetchone()
        return Snapshot(frozenset(objects), frozenset(temporary), int(rows))

    def rss(self) -> int:
        """VmRSS now (not the high-water mark): what the process holds after the fact."""
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def victim_listing(self) -> list[object]:
        with self.http() as client:
            response = client.get(
                "/api/v1/files", headers=dict([self.victim.auth]), params={"limit": 1000}
            )
        assert response.status_code == 200, response.text
        items: list[object] = response.json()["items"]
        return items

    # -- the shared verdict --------------------------------------------------

    def assert_no_leak(self, response: RawResponse) -> None:
        shown = response.raw_headers() + "\n" + response.text
        match = _LEAKS.search(shown)
        assert match is None, f"response leaks {match.group(0)!r}: {shown[:2000]}"
        assert str(self.data_dir) not in shown

    def assert_serving(self) -> None:
        health = exchange(self.port, build("GET", "/healthz"), timeout=PROMPT_SECONDS)
        assert health.status == 200, health.text

    def assert_stored_nothing(self, before: Snapshot, *, wait: float = 0.0) -> None:
        """Nothing new in the store, its temp area or the database; ``wait`` allows the
        server to finish cleaning up after a client that vanished mid-request."""
        deadline = time.monotonic() + wait
        while True:
            after = self.snapshot()
            if after == before or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        assert after.objects == before.objects, after.objects ^ before.objects
        assert after.temporary == before.temporary, after.temporary ^ before.temporary
        assert after.rows == before.rows
        assert self.victim_listing() == []

    def refused(
        self,
        response: RawResponse,
        status: int | tuple[int, ...],
        code: str | None = None,
        *,
        before: Snapshot,
        by_server: bool = False,
    ) -> dict[str, object]:
        """The verdict for one hostile request.

        ``by_server`` admits uvicorn's own plain-text 400, which it sends for requests its
        HTTP parser rejects before the application ever sees them (conflicting framing
        headers, bad chunk sizes, an unparseable request line). Anything the application
        answers must be problem+json with the expected ``code``.
        """
        statuses = (status,) if isinstance(status, int) else status
        assert response.status in statuses, (response.status, response.text[:500])
        assert 400 <= response.status < 500
        assert response.elapsed < PROMPT_SECONDS, f"took {response.elapsed:.1f}s"
        self.assert_no_leak(response)
        body: dict[str, object] = {}
        if by_server and response.media_type == "text/plain":
            assert response.status == 400
        else:
            assert response.media_type == PROBLEM, (response.headers, response.text[:500])
            body = response.json()
            assert body["status"] == response.status
            assert isinstance(body["code"], str)
            if code is not None:
                assert body["code"] == code, body
        # The application cleans up before it answers; when uvicorn answers instead, the
        # application may still be finishing a request whose connection was cut.
        self.assert_stored_nothing(before, wait=2.0 if by_server else 0.0)
        self.assert_serving()
        return body


def _sign_up(client: httpx.Client, label: str) -> User:
    email = f"{label}-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery"
    created = client.post("/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    token = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return User(email=email, token=token.json()["access_token"], id=created.json()["id"])


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("hostile")
    env = {
        "SEAU_DATA_DIR": str(tmp / "data"),
        "SEAU_SECRET_KEY": SECRET,
        "SEAU_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "SEAU_MAX_FILES_PER_REQUEST": str(MAX_FILES),
        "SEAU_LOG_LEVEL": "warning",
    }
    endpoint = bucket = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_server").endpoint_url
        bucket = make_bucket(endpoint)
        env |= {
            "SEAU_STORAGE_URL": f"s3://{bucket}",
            "SEAU_S3_PATH_STYLE": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    with seau_server(env, cwd=tmp) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            victim, owner, namer = (_sign_up(client, n) for n in ("victim", "owner", "namer"))
            owned = client.post(
                "/api/v1/files",
                params={"name": "owned.bin"},
                content=OWNED_CONTENT,
                headers={"Authorization": f"Bearer {owner.token}"},
            )
            assert owned.status_code == 201, owned.text
        found = Target(
            server=server,
            data_dir=tmp / "data",
            port=int(server.url.rsplit(":", 1)[1]),
            victim=victim,
            owner=owner,
            namer=namer,
            owned_id=owned.json()["id"],
            s3_endpoint=endpoint,
            bucket=bucket,
        )
        _warm_up(found)
        found.baseline_rss = found.rss()
        yield found


def _warm_up(target: Target) -> None:
    """One of each kind of request, so lazy imports and caches are in the baseline."""
    with target.http() as client:
        for _ in range(3):
            auth = {"Authorization": f"Bearer {target.namer.token}"}
            made = client.post(
                "/api/v1/files", params={"name": "warm.txt"}, content=b"w" * 300_000, headers=auth
            )
            assert made.status_code == 201, made.text
            file_id = made.json()["id"]
            client.get(f"/api/v1/files/{file_id}/content", headers=auth)
            client.get(f"/api/v1/files/{file_id}/content", headers={**auth, "Range": "bytes=1-"})
            client.get("/api/v1/files", headers=auth)
            client.post(
                "/api/v1/files",
                headers={**auth, "Content-Type": "multipart/form-data; boundary=x"},
                content=b"--x\r\nbroken",
            )
            client.delete(f"/api/v1/files/{file_id}", headers=auth)
            client.get("/api/v1/files/nope", headers=auth)


def assert_memory_back_to_baseline(target: Target) -> None:
    now = target.rss()
    assert now <= target.baseline_rss + RSS_MARGIN, (
        f"RSS {now / MiB:.0f} MiB after the battery, baseline {target.baseline_rss / MiB:.0f} MiB"
    )
    log = target.server.log.read_text(errors="replace")
    # Every refusal above is an expected error: none may have reached the catch-all
    # handler, which logs the traceback of an unhandled exception.
    assert "Traceback" not in log, log[-5000:]
    assert "unhandled error" not in log, log[-5000:]
