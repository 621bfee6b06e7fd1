"""Issue 16, point 1, for Caddy: seau behind Debian's caddy with deploy/Caddyfile.

Three `seau serve` instances share one data directory (SQLite, local objects) behind
a `caddy run` of this test's own (temporary home, a free port on 127.0.0.1, no admin
endpoint, no certificates) whose configuration is deploy/Caddyfile with only the
site address and the upstreams replaced. Caddy reaches seau from 127.0.0.1, and
SEAU_TRUSTED_PROXIES is the proxies' network, 127.0.0.0/29 (like a 10.0.0.0/24 in a
real deployment). Clients use other loopback addresses as their own: one inside
that network (whose forwarded headers seau would believe, were Caddy to pass them
on instead of replacing them), one outside it, and one that reaches seau directly.
SEAU_PUBLIC_URL names the proxy as ``localhost``, while the test sends
``127.0.0.1`` as its Host, so that a Location seau built from the Host would show.
The last test stops two instances for good, one under requests without a body and
one under uploads, which Caddy cannot send elsewhere once an instance refused them.
Without caddy this skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.support.server import Server, free_port, seau_server

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
INSTANCES = 3
TRUSTED = "127.0.0.0/29"  # Caddy's address, 127.0.0.1, is in it
INSIDER = "127.0.0.6"  # a client inside the trusted network
NEIGHBOUR = "127.0.0.9"  # a client outside it, through Caddy too
OUTSIDER = "127.0.0.10"  # a client that reaches seau directly
MiB = 1024 * 1024


@dataclass
class Stack:
    seaus: list[Server]
    url: str  # Caddy's, as the test reaches it
    public: str  # SEAU_PUBLIC_URL: the same server, by another name
    site: Path  # the configuration Caddy runs
    home: Path  # Caddy's HOME and XDG directories
    objects: Path  # the instances' shared store

    def metric(self, name: str) -> float:
        """``name`` summed over the running instances."""
        total = 0.0
        for seau in self.seaus:
            if seau.process.poll() is not None:
                continue
            for line in httpx.get(f"{seau.url}/metrics").text.splitlines():
                if line.startswith(f"{name} "):
                    total += float(line.split()[1])
        return total

    def staged_bytes(self) -> int:
        """What the store holds of uploads still being received."""
        return sum(p.stat().st_size for p in self.objects.glob(".tmp/**/*") if p.is_file())


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


def render(config: str, *, upstreams: list[str], port: int) -> str:
    """deploy/Caddyfile with the test's instances and port, and no admin endpoint
    nor automatic HTTPS (no certificates, no network)."""
    rendered, sites = re.subn(
        r"^[a-z0-9.-]+ \{$",
        # An address names a host to match, not an interface: bind only loopback.
        f"http://127.0.0.1:{port} {{\n\tbind 127.0.0.1",
        config,
        flags=re.MULTILINE,
    )
    assert sites == 1
    rendered, proxies = re.subn(
        r"reverse_proxy(?: \d+\.\d+\.\d+\.\d+:\d+)+ \{",
        f"reverse_proxy {' '.join(upstreams)} {{",
        rendered,
    )
    assert proxies == 1
    return "{\n\tadmin off\n\tauto_https off\n}\n\n" + rendered


def _caddy_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }


def _validate(config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CADDY, "validate", "--adapter", "caddyfile", "--config", str(config)],
        env=_caddy_env(home),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CADDY).exists():
        _unavailable("caddy is not installed (apt-get install caddy)")
    base = tmp_path_factory.mktemp("caddy")
    home = base / "home"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    public = f"http://localhost:{port}"
    env = {
        "SEAU_DATA_DIR": str(base / "data"),
        "SEAU_SECRET_KEY": TEST_SECRET,
        "SEAU_TRUSTED_PROXIES": TRUSTED,
        "SEAU_PUBLIC_URL": public,
        "SEAU_LOG_LEVEL": "warning",
    }
    with ExitStack() as servers:
        # The first migrates; the others start on its schema, side by side.
        seaus = [servers.enter_context(seau_server(env, cwd=base))]
        with ThreadPoolExecutor(INSTANCES - 1) as pool:
            seaus += pool.map(
                lambda _: servers.enter_context(seau_server(env, cwd=base)),
                range(INSTANCES - 1),
            )
        site = base / "Caddyfile"
        upstreams = [seau.url.removeprefix("http://") for seau in seaus]
        site.write_text(render(CONFIG.read_text(), upstreams=upstreams, port=port))
        checked = _validate(site, home)
        assert checked.returncode == 0, checked.stderr
        log = base / "caddy.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [CADDY, "run", "--adapter", "caddyfile", "--config", str(site)],
                env=_caddy_env(home),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None:
                    _unavailable(f"caddy did not start: {log.read_text()}")
                try:
                    # seau's answer, not Caddy's own (which has no X-Request-Id).
                    answer = httpx.get(f"{url}/healthz", timeout=1)
                    if answer.status_code == 200 and "x-request-id" in answer.headers:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    _unavailable(f"caddy did not answer within 15 s: {log.read_text()}")
                time.sleep(0.1)
            yield Stack(
                seaus=seaus,
                url=url,
                public=public,
                site=site,
                home=home,
                objects=base / "data" / "objects",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _client(address: str) -> httpx.Client:
    """A client whose connections come from ``address``."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def _account(stack: Stack, email: str, password: str = "behind the proxy") -> dict[str, str]:
    created = httpx.post(f"{stack.url}/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    signed_in = _sign_in(stack.url, email, password)
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


def _sign_in(
    url: str,
    email: str,
    password: str,
    *,
    client: httpx.Client | None = None,
    forwarded_for: str | None = None,
) -> httpx.Response:
    """From 127.0.0.1 unless ``client`` says otherwise, saying X-Forwarded-For (and
    Forwarded) ``forwarded_for`` if given."""
    headers = (
        {"X-Forwarded-For": forwarded_for, "Forwarded": f"for={forwarded_for}"}
        if forwarded_for
        else {}
    )
    return (client.post if client is not None else httpx.post)(
        f"{url}/api/v1/auth/token",
        data={"username": email, "password": password},
        headers=headers,
        timeout=60,
    )


def test_the_committed_caddyfile_and_the_one_run_here_are_valid(stack: Stack) -> None:
    for config in (CONFIG, stack.site):
        checked = _validate(config, stack.home)
        assert checked.returncode == 0, checked.stderr
        assert "Valid configuration" in checked.stdout + checked.stderr


def test_a_multipart_upload_streams_through_and_the_download_streams_back(
    stack: Stack,
) -> None:
    auth = _account(stack, "multipart@example.com")
    boundary = "seau-caddy-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    halfway = threading.Event()
    resume = threading.Event()
    pieces = [random.Random(i).randbytes(MiB) for i in range(20)]

    def body() -> Iterator[bytes]:
        yield head
        for i, piece in enumerate(pieces):
            if i == 10:
                halfway.set()
                assert resume.wait(30)
            yield piece
        yield tail

    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{stack.url}/api/v1/files",
                content=body(),
                headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )
        )
    )
    sender.start()
    try:
        assert halfway.wait(30)
        # Half the body sent: seau is already receiving it, and what the client sent
        # reaches seau's store while the rest is held back (all but what seau's own
        # parsing and writing hold, a few hundred KiB): Caddy keeps nothing back.
        deadline = time.monotonic() + 10
        while (
            stack.metric("seau_uploads_in_progress") < 1 or stack.staged_bytes() < 9 * MiB
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stack.metric("seau_uploads_in_progress") == 1
        assert stack.staged_bytes() >= 9 * MiB
    finally:
        resume.set()
        sender.join(60)
    assert answers, "the upload got no answer"
    assert answers[0].status_code == 201, answers[0].text
    (stored,) = answers[0].json()["files"]
    assert stored["size"] == 20 * MiB

    # The download: the client reads 1 MiB and stops; with Caddy buffering the
    # answer, seau would have sent everything and finished.
    url = f"{stack.url}/api/v1/files/{stored['id']}/content"
    digest = hashlib.sha256()
    with httpx.stream("GET", url, headers=auth, timeout=60) as response:
        assert response.status_code == 200
        chunks = response.iter_raw(MiB)
        first = next(chunks)
        digest.update(first)
        time.sleep(1.0)
        assert stack.metric("seau_download_duration_seconds_count") == 0
        received = len(first)
        for chunk in chunks:
            digest.update(chunk)
            received += len(chunk)
    assert received == 20 * MiB
    assert digest.digest() == hashlib.sha256(b"".join(pieces)).digest()


def test_a_tus_upload_goes_through_and_its_location_is_the_public_url(stack: Stack) -> None:
    auth = _account(stack, "tus@example.com")
    data = random.Random(16).randbytes(3 * MiB)
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    creation = {
        **tus,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": f"filename {b64encode(b'tus.bin').decode()}",
    }
    # A forged Host does not reach seau: Caddy serves its site's name only (and
    # answers for itself, without seau's X-Request-Id).
    forged = httpx.post(f"{stack.url}/api/v1/uploads", headers={**creation, "Host": "evil.example"})
    assert "x-request-id" not in forged.headers
    assert "location" not in forged.headers
    created = httpx.post(f"{stack.url}/api/v1/uploads", headers=creation)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    # SEAU_PUBLIC_URL, not the Host the request came with (127.0.0.1:port).
    assert location.startswith(f"{stack.public}/api/v1/uploads/"), location
    upload = f"{stack.url}{urlsplit(location).path}"
    # In two PATCHes, which Caddy deals to both instances, and a HEAD between them.
    half = len(data) // 2
    for start, end in ((0, half), (half, len(data))):
        offset = httpx.head(upload, headers=tus)
        assert offset.status_code == 200, offset.text
        assert int(offset.headers["Upload-Offset"]) == start
        patched = httpx.patch(
            upload,
            content=data[start:end],
            headers={
                **tus,
                "Upload-Offset": str(start),
                "Content-Type": "application/offset+octet-stream",
            },
            timeout=60,
        )
        assert patched.status_code == 204, patched.text
        assert int(patched.headers["Upload-Offset"]) == end
    listed = httpx.get(f"{stack.url}/api/v1/files", headers=auth).json()["items"]
    assert [(f["name"], f["size"]) for f in listed] == [("tus.bin", len(data))]
    content = httpx.get(f"{stack.url}/api/v1/files/{listed[0]['id']}/content", headers=auth)
    assert content.status_code == 200
    assert content.content == data


def test_quick_answers_to_requests_with_a_body_arrive_whole(stack: Stack) -> None:
    """An answer that comes as soon as a request's body is sent (here a 401: no
    credentials) reaches the client whole. With flush_interval -1, Caddy 2.6.2 cut
    about one in a hundred (deploy/Caddyfile): the client saw a closed connection."""
    with httpx.Client(timeout=30) as client:
        for _ in range(500):
            answer = client.post(
                f"{stack.url}/api/v1/files", params={"name": "quick.bin"}, content=b"x" * 1000
            )
            assert answer.status_code == 401, answer.text
            assert answer.json()["status"] == 401


def test_the_throttle_sees_the_client_behind_caddy_and_not_a_forged_header(
    stack: Stack,
) -> None:
    email, password = "victim@example.com", "behind the proxy"
    _account(stack, email, password)
    # Each instance counts on its own (seau.auth.throttle), and Caddy deals the
    # requests round robin: the insider's address runs out of its allowance (50
    # failures) on every instance.
    instances = len(stack.seaus)
    with _client(INSIDER) as insider, _client(NEIGHBOUR) as neighbour:

        def fail(i: int) -> int:
            # Every attempt names another address. Appended to, rather than replaced
            # by, Caddy's X-Forwarded-For, it would be the client seau believes: the
            # insider's own address is a trusted hop, skipped.
            return _sign_in(
                stack.url,
                f"nobody{i}@example.com",
                "wrong",
                client=insider,
                forwarded_for=f"198.51.100.{i % 250 + 1}",
            ).status_code

        # Two at a time, while the allowance is far from spent (no attempt is
        # refused for another in flight).
        sent = 45 * instances
        with ThreadPoolExecutor(2) as pool:
            assert set(pool.map(fail, range(sent))) == {401}
        refused = 0
        while refused < instances:
            assert sent < 60 * instances, "the insider's address was never throttled"
            status = fail(sent)
            sent += 1
            assert status in (401, 429)
            refused = refused + 1 if status == 429 else 0
        blocked = _sign_in(stack.url, email, password, client=insider, forwarded_for=NEIGHBOUR)
        assert blocked.status_code == 429
        # Another client behind the same proxy is not locked out...
        behind = _sign_in(stack.url, email, password, client=neighbour, forwarded_for=INSIDER)
        assert behind.status_code == 200, behind.text
    # ...and a client that reaches seau directly cannot pass for the insider (or for
    # anyone): its forged X-Forwarded-For is ignored, its own address counts. First a
    # fresh wait for the insider on one instance, long enough for what follows (the
    # last one may be nearly over): a failure in the insider's name from a trusted
    # peer, counted once that wait is over, makes the next one 2 s (1 s if a failure
    # was forgotten meanwhile).
    direct = stack.seaus[0].url
    deadline = time.monotonic() + 30
    while _sign_in(direct, "nobody@example.com", "wrong", forwarded_for=INSIDER).status_code == 429:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with _client(OUTSIDER) as outsider:
        forged = _sign_in(direct, email, password, client=outsider, forwarded_for=INSIDER)
    assert forged.status_code == 200, forged.text
    # (the instance refused the insider all along, as a trusted peer shows).
    assert _sign_in(direct, email, password, forwarded_for=INSIDER).status_code == 429


HEALTH_INTERVAL = 1.0  # deploy/Caddyfile's health_interval


def _stop_while_asking(
    stack: Stack, seau: Server, ask: Callable[[httpx.Client, int], int], *, after: float
) -> tuple[list[tuple[float, int]], float]:
    """``ask`` again and again while ``seau`` is SIGTERMed (as in a rolling restart)
    and for ``after`` seconds once it has exited: when each answer came and its
    status, and when ``seau`` had exited."""
    answers: list[tuple[float, int]] = []
    enough = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=30) as client:
            while not enough.is_set():
                status = ask(client, len(answers))
                answers.append((time.monotonic(), status))

    asker = threading.Thread(target=run)
    asker.start()
    try:
        time.sleep(0.3)
        seau.stop()
        exited = time.monotonic()
        time.sleep(after)
    finally:
        enough.set()
        asker.join(60)
    assert len([t for t, _ in answers if t > exited + after / 2]) >= 2, answers
    return answers, exited


def test_requests_succeed_while_instances_stop_and_after(stack: Stack) -> None:
    """Last in this module: it stops two of the three instances for good."""
    auth = _account(stack, "failover@example.com")

    def listing(client: httpx.Client, i: int) -> int:
        return client.get(f"{stack.url}/api/v1/files", headers=auth).status_code

    def upload(client: httpx.Client, i: int) -> int:
        return client.post(
            f"{stack.url}/api/v1/files",
            params={"name": f"f-{i}.bin"},
            content=b"x" * 1000,
            headers=auth,
        ).status_code

    # Requests without a body: Caddy tries another instance when the stopped one
    # refuses the connection (lb_try_duration), and none fails.
    listings, _ = _stop_while_asking(stack, stack.seaus[0], listing, after=0.5)
    assert {status for _, status in listings} == {200}
    # Uploads: Caddy cannot send a body again elsewhere (caddyserver/caddy#7546): one
    # dealt to the stopped instance gets a 502 until a health check (every second)
    # takes the instance out, so within a second or so of each other (two allowed);
    # none fails otherwise, and none after.
    uploads, exited = _stop_while_asking(
        stack, stack.seaus[1], upload, after=2 * HEALTH_INTERVAL + 0.5
    )
    assert {status for _, status in uploads} <= {201, 502}, uploads
    failed = [t for t, status in uploads if status == 502]
    assert not failed or failed[-1] - failed[0] < 2 * HEALTH_INTERVAL, uploads
    settled = [status for t, status in uploads if t > exited + 2 * HEALTH_INTERVAL]
    assert len(settled) >= 2, uploads
    assert set(settled) == {201}, uploads
    # Each upload answered 201 is stored, once; a 502 stored nothing.
    names: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{stack.url}/api/v1/files", params=params, headers=auth).json()
        names += [f["name"] for f in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    made = [f"f-{i}.bin" for i, (_, status) in enumerate(uploads) if status == 201]
    assert sorted(names) == sorted(made)
