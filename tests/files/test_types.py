"""Types decided from the bytes: detection against Debian's `file --mime-type` on a
corpus of real and disguised files, the allow-list's 415 on multipart and raw uploads
(on each database × store) before more than the first bytes are read, nothing left
behind, both types in the API, and serving by the detected type."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from seau.files.types import EMPTY, SNIFF_BYTES, TypePolicy, detect, sniff
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.files.typed import COMBINATIONS, Typed, typed_app

# The corpus's images are Pillow's (in the dev extra, through matplotlib); `make
# lowest` installs only the test runner's tools and skips this module.
pytest.importorskip("PIL")
from tests.files import corpus

SAMPLES = corpus.samples()

FILE = shutil.which("file")


def _reference(path: Path) -> str:
    """Debian's `file --mime-type` of ``path``; the empty file is `inode/x-empty` to
    it (a property of the file), `application/x-empty` to libmagic's buffer check."""
    assert FILE is not None, "the type tests compare with `file`: apt-get install file"
    found = subprocess.run(
        [FILE, "--brief", "--mime-type", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    return EMPTY if found == "inode/x-empty" else found


def test_the_corpus_has_at_least_30_files_real_and_disguised() -> None:
    assert len(SAMPLES) >= 30
    disguised = [s for s in SAMPLES if detect(s.data) != s.declared]
    assert len(disguised) >= 10, [s.name for s in disguised]


@pytest.mark.parametrize(
    "sample", SAMPLES, ids=[f"{i:02d}-{s.name}" for i, s in enumerate(SAMPLES)]
)
def test_detection_matches_file_mime_type(sample: corpus.Sample, tmp_path: Path) -> None:
    path = tmp_path / sample.name
    path.write_bytes(sample.data)
    assert detect(sample.data) == _reference(path)


def test_a_large_file_is_told_from_its_first_bytes_as_file_tells_it(tmp_path: Path) -> None:
    big = corpus.image("PNG", size=(512, 512))
    noisy = random.Random(1).randbytes(300_000)
    for data in (big + noisy, corpus.jpeg() + noisy, corpus.elf_head() + noisy):
        assert len(data) > SNIFF_BYTES
        path = tmp_path / "big"
        path.write_bytes(data)
        assert detect(data[:SNIFF_BYTES]) == detect(data) == _reference(path)


def test_what_the_disguised_files_are() -> None:
    by_name = {(s.name, s.declared): detect(s.data) for s in SAMPLES}
    assert len(by_name) == len(SAMPLES)
    assert by_name["camera.jpg", "image/jpeg"] == "image/jpeg"
    executables = {"application/x-sharedlib", "application/x-pie-executable"}
    assert by_name["photo.jpg", "image/jpeg"] in executables | {"application/x-executable"}
    assert detect(corpus.pe()) == "application/vnd.microsoft.portable-executable"
    assert by_name["page.png", "image/png"] == "text/html"
    assert by_name["drawing.png", "image/png"] == "image/svg+xml"
    assert by_name["note.jpg", "image/jpeg"] == "text/xml"
    assert by_name["fake.docx", corpus.DOCX] == "application/zip"
    assert by_name["letter.docx", corpus.DOCX] == corpus.DOCX
    assert by_name["index.php", "image/png"] == "text/x-php"
    assert detect(b"") == EMPTY


def test_a_json_longer_than_the_window_is_plain_text() -> None:
    # The known cost of looking at the first bytes only: libmagic needs the whole
    # JSON document to call it JSON (docs/decisions.md, "Content types from the bytes").
    long = b'{"items": [' + b",".join(b'"%d"' % i for i in range(SNIFF_BYTES)) + b"]}"
    assert detect(long[: SNIFF_BYTES // 4]) == "text/plain"
    assert detect(b'{"a": 1}') == "application/json"


@pytest.mark.parametrize(
    ("allowed", "media_type", "verdict"),
    [
        ("", "application/x-sharedlib", True),
        ("image/*", "image/png", True),
        ("image/*", "image/svg+xml", True),
        ("image/*", "application/pdf", False),
        ("image/*,application/pdf", "application/pdf", True),
        ("image/png", "image/jpeg", False),
        ("*/*", "text/html", True),
        ("text/plain", "text/plain", True),
        ("text/plain", "text/html", False),
        ("image/*", EMPTY, False),
    ],
)
def test_the_allow_list(allowed: str, media_type: str, verdict: bool) -> None:
    assert TypePolicy.parse(allowed).allows(media_type) is verdict


def test_the_setting_is_checked_and_normalised(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, allowed_types=" Image/*, application/PDF ,")
    assert settings.allowed_types == "image/*,application/pdf"
    for bad in ("image", "image/png;q=1", "*/png", "image/png/x", "text/ plain"):
        with pytest.raises(ValidationError, match="allowed_types"):
            Settings(data_dir=tmp_path, allowed_types=bad)


async def _chunks(*chunks: bytes, error: Exception | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


async def test_sniff_holds_back_the_first_bytes_and_gives_back_everything() -> None:
    sniffed = await sniff(_chunks(b"ab", b"cd", b"ef", b"gh"), size=3)
    assert sniffed.head == b"abcd"
    assert [chunk async for chunk in sniffed] == [b"ab", b"cd", b"ef", b"gh"]
    assert sniffed.error is None
    short = await sniff(_chunks(b"ab"), size=3)
    assert short.head == b"ab"
    assert [chunk async for chunk in short] == [b"ab"]


async def test_sniff_raises_the_sources_error_after_the_bytes_before_it() -> None:
    sniffed = await sniff(_chunks(b"ab", error=ValueError("gone")), size=3)
    assert sniffed.head == b"ab"
    assert isinstance(sniffed.error, ValueError)
    seen: list[bytes] = []

    async def consume() -> None:
        async for chunk in sniffed:
            seen.append(chunk)

    with pytest.raises(ValueError, match="gone"):
        await consume()
    assert seen == [b"ab"]


# -- through the app, on each database × store -------------------------------------


@pytest.fixture(scope="module", params=COMBINATIONS)
async def typed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Typed]:
    async for app in typed_app(request, tmp_path_factory.mktemp("typed")):
        yield app


def _refused(response: httpx.Response, detected: str) -> None:
    body = assert_problem(response, 415, "type_not_allowed")
    assert body["detected"] == detected, body
    assert body["allowed"] == "image/*,application/pdf,text/plain"
    assert detected in str(body["detail"])


async def test_an_executable_named_photo_jpg_sent_as_jpeg_is_refused(typed: Typed) -> None:
    auth = await typed.user()
    keys = await typed.keys()
    elf = corpus.elf_head()
    answer = await typed.client.post(
        "/api/v1/files",
        params={"name": "photo.jpg"},
        content=elf,
        headers={**auth, "Content-Type": "image/jpeg"},
    )
    _refused(answer, detect(elf))
    await typed.nothing_left(auth, keys=keys)


async def test_a_raw_upload_is_refused_after_its_first_bytes(typed: Typed) -> None:
    """Only about `SNIFF_BYTES` of an 8 MiB body are read before the 415."""
    auth = await typed.user()
    keys = await typed.keys()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield corpus.HTML
        sent += len(corpus.HTML)
        for _ in range(128):
            yield b"<p>more</p>" * 6000
            sent += 66000

    answer = await typed.client.post(
        "/api/v1/files",
        params={"name": "cat.png"},
        content=body(),
        headers={**auth, "Content-Type": "image/png"},
    )
    _refused(answer, "text/html")
    assert sent < 4 * 66000, sent
    await typed.nothing_left(auth, keys=keys)


async def test_a_multipart_request_with_one_file_not_allowed_keeps_none(typed: Typed) -> None:
    auth = await typed.user()
    answer = await typed.client.post(
        "/api/v1/files",
        files=[
            ("file", ("fine.png", corpus.png(), "image/png")),
            ("file", ("drawing.png", corpus.SVG, "image/png")),
            ("file", ("never.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")),
        ],
        headers=auth,
    )
    # image/* allows SVG: the detected type is what counts, and it is served safely.
    assert answer.status_code == 201, answer.text
    assert [f["content_type"] for f in answer.json()["files"]] == [
        "image/png",
        "image/svg+xml",
        "application/pdf",
    ]
    other = await typed.user()
    keys = await typed.keys()
    answer = await typed.client.post(
        "/api/v1/files",
        files=[
            ("file", ("fine.png", corpus.png(), "image/png")),
            ("file", ("cat.png", corpus.HTML, "image/png")),
            ("file", ("after.png", corpus.png(), "image/png")),
        ],
        headers=other,
    )
    _refused(answer, "text/html")
    await typed.nothing_left(other, keys=keys)


async def test_the_api_shows_both_types_and_serves_the_detected_one(typed: Typed) -> None:
    auth = await typed.user()
    jpeg = corpus.jpeg()
    made = await typed.client.post(
        "/api/v1/files",
        params={"name": "photo.png"},
        content=jpeg,
        headers={**auth, "Content-Type": "image/png"},
    )
    assert made.status_code == 201, made.text
    file = made.json()
    assert (file["content_type"], file["declared_type"]) == ("image/jpeg", "image/png")
    got = await typed.client.get(f"/api/v1/files/{file['id']}", headers=auth)
    assert (got.json()["content_type"], got.json()["declared_type"]) == ("image/jpeg", "image/png")
    listed = (await typed.client.get("/api/v1/files", headers=auth)).json()["items"]
    assert [(f["content_type"], f["declared_type"]) for f in listed] == [
        ("image/jpeg", "image/png")
    ]
    content = await typed.client.get(
        f"/api/v1/files/{file['id']}/content",
        params={"disposition": "inline", "redirect": "false"},
        headers=auth,
    )
    assert content.status_code == 200
    assert content.headers["content-type"] == "image/jpeg"
    assert content.headers["content-disposition"].startswith("inline;")
    assert content.content == jpeg
    # Without a claim, the name's extension is the declared type.
    bare = await typed.client.post(
        "/api/v1/files", params={"name": "scan.pdf"}, content=jpeg, headers=auth
    )
    assert (bare.json()["content_type"], bare.json()["declared_type"]) == (
        "image/jpeg",
        "application/pdf",
    )


# -- serving, with every type allowed --------------------------------------------------


@pytest.fixture(scope="module", params=[COMBINATIONS[0]])
async def open_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Typed]:
    async for app in typed_app(request, tmp_path_factory.mktemp("open"), allowed=""):
        yield app


@pytest.mark.parametrize(
    ("data", "detected"),
    [(corpus.SVG, "image/svg+xml"), (corpus.HTML, "text/html"), (corpus.XML, "text/xml")],
    ids=["svg", "html", "xml"],
)
@pytest.mark.parametrize("claim", ["image/png", "text/plain", "image/svg+xml"])
async def test_svg_html_and_xml_are_never_inline_whatever_they_claim(
    open_app: Typed, data: bytes, detected: str, claim: str
) -> None:
    auth = await open_app.user()
    made = await open_app.client.post(
        "/api/v1/files",
        params={"name": "innocent.png"},
        content=data,
        headers={**auth, "Content-Type": claim},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["content_type"], made.json()["declared_type"]) == (detected, claim)
    content = await open_app.client.get(
        f"/api/v1/files/{made.json()['id']}/content",
        params={"disposition": "inline"},
        headers=auth,
    )
    assert content.status_code == 200
    assert content.headers["content-type"].split(";")[0] == detected
    assert content.headers["content-disposition"].startswith("attachment;")
    assert content.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in content.headers["content-security-policy"]


async def test_openapi_documents_both_types_and_the_refusal(open_app: Typed) -> None:
    document = (await open_app.client.get("/openapi.json")).json()
    fields = document["components"]["schemas"]["FileRead"]
    assert {"content_type", "declared_type"} <= set(fields["required"])
    assert "first bytes" in fields["properties"]["content_type"]["description"]
    for path, method in (
        ("/api/v1/files", "post"),
        ("/api/v1/uploads", "post"),
        ("/api/v1/uploads/{upload_id}", "patch"),
    ):
        refusal = document["paths"][path][method]["responses"]["415"]["description"]
        assert "`type_not_allowed`" in refusal, (path, refusal)
        assert "`detected`" in refusal
