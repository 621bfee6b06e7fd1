"""The direct-upload client of `seau upload --direct`, against a fake server
(`httpx.MockTransport`): parts retried, refusals aborted, a store that keeps failing
leaving the upload for the next run, the token kept from the store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from seau.cli import client_direct
from seau.cli.client_direct import DirectUploadError, upload_direct

MiB = 1024 * 1024
AUTH = {"Authorization": "Bearer secret"}


class FakeServer:
    def __init__(
        self, *, fail_part_once: bool = False, fail_part: bool = False, refuse: bool = False
    ) -> None:
        self.fail_part_once = fail_part_once
        self.fail_part = fail_part
        self.refuse = refuse
        self.seen: list[tuple[str, str, bool]] = []
        self.parts: dict[int, bytes] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        authorized = request.headers.get("authorization") == AUTH["Authorization"]
        self.seen.append((request.method, request.url.path, authorized))
        path = request.url.path
        if request.url.host == "bucket.test":
            number = int(request.url.params["partNumber"])
            if (self.fail_part_once or self.fail_part) and number == 2:
                self.fail_part_once = False
                return httpx.Response(503)
            self.parts[number] = request.content
            return httpx.Response(200, headers={"ETag": f'"etag-{number}"'})
        if request.method == "POST" and path == "/api/v1/direct-uploads":
            body = json.loads(request.content)
            return httpx.Response(
                201,
                json={
                    "id": "u1",
                    "multipart": True,
                    "part_size": 5 * MiB,
                    "part_count": -(-body["size"] // (5 * MiB)),
                    "upload": None,
                },
            )
        if request.method == "POST" and path == "/api/v1/direct-uploads/u1/parts":
            numbers = json.loads(request.content)["numbers"]
            return httpx.Response(
                200,
                json={
                    "parts": [
                        {"number": n, "url": f"http://bucket.test/k?partNumber={n}"}
                        for n in numbers
                    ]
                },
            )
        if request.method == "POST" and path == "/api/v1/direct-uploads/u1/complete":
            if self.refuse:
                return httpx.Response(
                    422,
                    json={"title": "no", "code": "verification_failed"},
                    headers={"Content-Type": "application/problem+json"},
                )
            parts = json.loads(request.content)["parts"]
            return httpx.Response(201, json={"id": "u1", "parts": parts})
        if request.method == "DELETE" and path == "/api/v1/direct-uploads/u1":
            return httpx.Response(204)
        return httpx.Response(404)


async def _send(
    server: FakeServer, path: Path, size: int, *, state_file: Path | None = None
) -> dict[str, object]:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(server), base_url="http://seau.test"
    ) as client:
        file, _ = await upload_direct(
            client,
            path,
            headers=AUTH,
            name=path.name,
            size=size,
            content_type="application/octet-stream",
            on_progress=lambda _: None,
            state_file=state_file,
        )
    return file


async def test_parts_are_retried_and_the_token_never_reaches_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_direct, "RETRY_DELAY", 0.0)
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * (11 * MiB // 256)
    path.write_bytes(data)
    server = FakeServer(fail_part_once=True)
    file = await _send(server, path, len(data))
    assert file["parts"] == [{"number": n, "etag": f'"etag-{n}"'} for n in (1, 2, 3)]
    assert b"".join(server.parts[n] for n in (1, 2, 3)) == data
    to_store = [seen for seen in server.seen if seen[1] == "/k"]
    assert len(to_store) == 4  # part 2 twice
    assert not any(authorized for _, _, authorized in to_store)


async def test_a_refused_upload_is_aborted(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    server = FakeServer(refuse=True)
    with pytest.raises(DirectUploadError) as caught:
        await _send(server, path, 1000)
    assert caught.value.response is not None
    assert caught.value.response.status_code == 422
    assert ("DELETE", "/api/v1/direct-uploads/u1", True) in server.seen


@pytest.mark.parametrize("remembered", [True, False])
async def test_a_part_the_store_keeps_failing_leaves_the_upload_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remembered: bool
) -> None:
    monkeypatch.setattr(client_direct, "RETRY_DELAY", 0.0)
    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * (11 * MiB))
    state = tmp_path / "uploads.json"
    server = FakeServer(fail_part=True)
    with pytest.raises(DirectUploadError) as caught:
        await _send(server, path, 11 * MiB, state_file=state if remembered else None)
    # One error, not a group of the parts that were in flight beside it.
    assert caught.value.response is not None
    assert caught.value.response.status_code == 503
    aborted = ("DELETE", "/api/v1/direct-uploads/u1", True) in server.seen
    if remembered:
        assert caught.value.kept
        assert not aborted
        (entry,) = json.loads(state.read_text()).items()
        assert entry[0].startswith("direct|http://seau.test|")
        assert entry[1]["url"] == "/api/v1/direct-uploads/u1"
    else:
        # Without a state file nothing could continue it: it goes.
        assert not caught.value.kept
        assert aborted
        assert not state.exists()
