"""Request ids in headers, problems and logs; Prometheus metrics."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from seau.observability import JsonFormatter
from tests.api.helpers import assert_problem, upload_raw
from tests.support.server import seau_server


async def test_every_response_has_a_request_id_and_problems_carry_it(
    client: httpx.AsyncClient,
) -> None:
    ok = await client.get("/healthz")
    assert len(ok.headers["x-request-id"]) >= 8
    problem = await client.get("/api/v1/users/me")
    body = assert_problem(problem, 401, "token_invalid")
    assert body["request_id"] == problem.headers["x-request-id"]
    mine = await client.get("/nope", headers={"X-Request-ID": "trace-abc.123"})
    assert mine.headers["x-request-id"] == "trace-abc.123"
    hostile = await client.get("/nope", headers={"X-Request-ID": 'x" onload="1'})
    assert hostile.headers["x-request-id"] != 'x" onload="1'


async def test_metrics_count_requests_bytes_and_uploads(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await upload_raw(client, auth, "m.bin", b"m" * 5000)
    text = (await client.get("/metrics")).text
    assert 'seau_http_requests_total{method="POST",route="/api/v1/files",status="201"}' in text
    assert "seau_upload_duration_seconds_count" in text
    assert "seau_uploads_in_progress 0.0" in text
    received = [line for line in text.splitlines() if line.startswith("seau_received_bytes_total")]
    assert float(received[0].split()[-1]) >= 5000


def test_json_log_lines_carry_extras_and_no_secret() -> None:
    record = logging.makeLogRecord(
        {
            "name": "seau.access",
            "levelname": "INFO",
            "msg": "GET %s 200",
            "args": ("/x",),
            "status": 200,
            "route": "/x",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET /x 200"
    assert line["status"] == 200
    assert line["logger"] == "seau.access"


@pytest.mark.slow
def test_sigterm_lets_an_upload_in_flight_finish(tmp_path: Path) -> None:
    env = {"SEAU_DATA_DIR": str(tmp_path / "data"), "SEAU_SHUTDOWN_TIMEOUT_SECONDS": "30"}
    with seau_server(env, cwd=tmp_path) as server:
        email, password = "term@example.com", "term password"
        httpx.post(f"{server.url}/api/v1/users", json={"email": email, "password": password})
        token = httpx.post(
            f"{server.url}/api/v1/auth/token", data={"username": email, "password": password}
        ).json()["access_token"]
        halfway = threading.Event()
        result: list[httpx.Response] = []

        def body() -> Iterator[bytes]:
            for i in range(40):
                if i == 10:
                    halfway.set()
                time.sleep(0.05)
                yield b"z" * 65536

        def send() -> None:
            result.append(
                httpx.post(
                    f"{server.url}/api/v1/files",
                    params={"name": "t.bin"},
                    content=body(),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
            )

        sender = threading.Thread(target=send)
        sender.start()
        assert halfway.wait(20)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=2)
        sender.join(30)
        assert server.process.wait(30) == 0
    assert result, "the in-flight upload got no answer"
    assert result[0].status_code == 201, result[0].text
    assert result[0].json()["size"] == 40 * 65536
    log = server.log.read_text()
    assert all(json.loads(line) for line in log.splitlines() if line.startswith("{"))
