"""Issue 16, point 1: seau behind Debian's nginx with deploy/nginx.conf.

nginx runs as this test's own process (temp prefix, pid and logs, a free port),
connecting to seau from 127.0.0.2 (``proxy_bind``), the only address in
SEAU_TRUSTED_PROXIES; the tests' direct requests come from 127.0.0.1, so they
are an untrusted peer. A client's address is faked through nginx with the realip
module (``X-Test-Client``, believed from 127.0.0.1 only by nginx, never by seau).
Without nginx this skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, free_port, seau_server

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"
MiB = 1024 * 1024


@dataclass
class Stack:
    seau: Server
    url: str  # nginx's
    prefix: Path

    def temp_files(self) -> list[Path]:
        """What nginx spooled to disk: request bodies or responses it buffered."""
        return [p for d in ("client_body", "proxy") for p in (self.prefix / d).rglob("*")]


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI requires it)", pytrace=False)
    pytest.skip(message)


def render(config: str, *, upstream: str, port: int) -> str:
    """deploy/nginx.conf with the test's one seau instance and port."""
    servers = re.compile(r"^(\s*)server \d+\.\d+\.\d+\.\d+:\d+ (.*);$", re.MULTILINE)
    first = [True]

    def one(match: re.Match[str]) -> str:
        keep, first[0] = first[0], False
        return f"{match.group(1)}server {upstream} {match.group(2)};" if keep else ""

    rendered = servers.sub(one, config)
    rendered, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", rendered)
    assert listens == 1
    assert not first[0]
    return rendered


def _main_config(prefix: Path, site: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # Test only: a fake client address, believed from the test's own peer.
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Test-Client;
    proxy_bind {PROXY_ADDRESS};
    include {site};
}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(NGINX).exists():
        _unavailable("nginx is not installed (apt-get install nginx)")
    base = tmp_path_factory.mktemp("nginx")
    prefix = base / "nginx"
    prefix.mkdir()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {
        "SEAU_DATA_DIR": str(base / "data"),
        "SEAU_TRUSTED_PROXIES": PROXY_ADDRESS,
        "SEAU_PUBLIC_URL": public,
    }
    with seau_server(env, cwd=base) as seau:
        upstream = seau.url.removeprefix("http://")
        site = prefix / "seau.conf"
        site.write_text(render(CONFIG.read_text(), upstream=upstream, port=port))
        main = prefix / "nginx.conf"
        main.write_text(_main_config(prefix, site))
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None:
                    _unavailable(f"nginx did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
                try:
                    if httpx.get(f"{public}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    _unavailable("nginx did not answer within 15 s")
                time.sleep(0.1)
            yield Stack(seau=seau, url=public, prefix=prefix)
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


def _account(stack: Stack, email: str, password: str = "behind the proxy") -> dict[str, str]:
    created = httpx.post(f"{stack.url}/api/v1/users", json={"email": email, "password": password})
    assert created.status_code == 201, created.text
    return {
        "Authorization": f"Bearer {_sign_in(stack.url, email, password).json()['access_token']}"
    }


def _sign_in(url: str, email: str, password: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/auth/token",
        data={"username": email, "password": password},
        headers=headers,
        timeout=60,
    )


def _in_progress(stack: Stack) -> float:
    for line in httpx.get(f"{stack.seau.url}/metrics").text.splitlines():
        if line.startswith("seau_uploads_in_progress "):
            return float(line.split()[1])
    raise AssertionError("no seau_uploads_in_progress")


def test_a_multipart_upload_streams_through_and_the_download_streams_back(
    stack: Stack,
) -> None:
    auth = _account(stack, "multipart@example.com")
    boundary = "seau-nginx-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    halfway = threading.Event()
    resume = threading.Event()
    piece = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        yield head
        for i in range(20):
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
        # Half the body sent: seau is already receiving it, nothing went to disk.
        deadline = time.monotonic() + 10
        while _in_progress(stack) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_progress(stack) == 1
        assert stack.temp_files() == []
    finally:
        resume.set()
        sender.join(60)
    assert answers, "the upload got no answer"
    assert answers[0].status_code == 201, answers[0].text
    (stored,) = answers[0].json()["files"]
    assert stored["size"] == 20 * MiB

    # The download: the client reads 1 MiB and stops; with nginx buffering, seau
    # would have sent everything into nginx's temp files and finished.
    url = f"{stack.url}/api/v1/files/{stored['id']}/content"
    with httpx.stream("GET", url, headers=auth, timeout=60) as response:
        assert response.status_code == 200
        chunks = response.iter_raw(MiB)
        first = next(chunks)
        time.sleep(1.0)
        assert stack.temp_files() == []
        assert _downloads_finished(stack) == 0
        received = len(first) + sum(len(chunk) for chunk in chunks)
    assert received == 20 * MiB


def _downloads_finished(stack: Stack) -> float:
    for line in httpx.get(f"{stack.seau.url}/metrics").text.splitlines():
        if line.startswith("seau_download_duration_seconds_count "):
            return float(line.split()[1])
    return 0.0


def test_a_tus_upload_goes_through_and_its_location_is_the_public_url(stack: Stack) -> None:
    auth = _account(stack, "tus@example.com")
    data = os.urandom(3 * MiB)
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{stack.url}/api/v1/uploads",
        headers={
            **tus,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": f"filename {b64encode(b'tus.bin').decode()}",
            # A forged Host must not reach the answer.
            "Host": "evil.example",
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith(f"{stack.url}/api/v1/uploads/"), location
    patched = httpx.patch(
        location,
        content=data,
        headers={
            **tus,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=60,
    )
    assert patched.status_code == 204, patched.text
    assert int(patched.headers["Upload-Offset"]) == len(data)
    listed = httpx.get(f"{stack.url}/api/v1/files", headers=auth).json()["items"]
    assert [(f["name"], f["size"]) for f in listed] == [("tus.bin", len(data))]
    assert stack.temp_files() == []


def test_the_throttle_sees_the_client_behind_nginx_and_not_a_forged_header(
    stack: Stack,
) -> None:
    email, password = "victim@example.com", "behind the proxy"
    _account(stack, email, password)
    attacker, neighbour = "203.0.113.7", "198.51.100.9"
    # Failed sign-ins from one client address, each for a different account (so
    # only the address's allowance, 50, runs out).
    refused = 0
    for i in range(60):
        answer = _sign_in(
            stack.url, f"nobody{i}@example.com", "wrong", **{"X-Test-Client": attacker}
        )
        assert answer.status_code in (401, 429), answer.text
        if answer.status_code == 429:
            refused += 1
            break
    assert refused, "the attacker's address was never throttled"
    blocked = _sign_in(stack.url, email, password, **{"X-Test-Client": attacker})
    assert blocked.status_code == 429
    # Another client behind the same proxy is not locked out...
    assert _sign_in(stack.url, email, password, **{"X-Test-Client": neighbour}).status_code == 200
    # ...and a client that reaches seau directly cannot pass for the attacker (or
    # for anyone): its forged X-Forwarded-For is ignored, its own address counts.
    forged = _sign_in(stack.seau.url, email, password, **{"X-Forwarded-For": attacker})
    assert forged.status_code == 200, forged.text
