"""Hostile reads and metadata requests over a raw socket: forged tokens, other users' and
nonsense ids, absurd pagination and `Range` values. Each is a prompt 4xx problem that
leaks nothing, reaches no one else's file, and leaves the server as it was."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import jwt
import pytest

from tests.hostile.conftest import (
    OWNED_CONTENT,
    SECRET,
    MiB,
    Target,
    assert_memory_back_to_baseline,
)
from tests.hostile.rawhttp import RawResponse, build

FILES = "/api/v1/files"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- tokens -----------------------------------------------------------------------------


def _claims(user_id: str, **changes: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": user_id,
        "ver": 0,
        "aud": "seau",
        "iss": "seau",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _segment(value: dict[str, object]) -> str:
    def numeric_date(moment: datetime) -> int:
        return int(moment.timestamp())

    return _b64(json.dumps(value, default=numeric_date).encode())


def _hs256_with_header(header: dict[str, object], claims: dict[str, object]) -> str:
    """A token whose header claims ``header`` but which is signed HMAC-SHA256 with the
    server's own secret: the algorithm-confusion shape."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _forged(kind: str, user_id: str) -> str:
    past = datetime.now(UTC) - timedelta(days=2)
    match kind:
        case "expired":
            claims = _claims(user_id, iat=past, exp=past + timedelta(hours=1))
            return jwt.encode(claims, SECRET, algorithm="HS256")
        case "signed-with-another-key":
            return jwt.encode(_claims(user_id), "another-secret-" + "x" * 40, algorithm="HS256")
        case "alg-none":
            return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(user_id))}."
        case "hs512-with-the-right-key":
            return jwt.encode(_claims(user_id), SECRET, algorithm="HS512")
        case "rs256-header-with-hmac-signature":
            return _hs256_with_header({"alg": "RS256", "typ": "JWT"}, _claims(user_id))
        case "nonexistent-user":
            return jwt.encode(_claims(str(uuid.uuid4())), SECRET, algorithm="HS256")
        case "subject-not-a-uuid":
            return jwt.encode(_claims("../../admin"), SECRET, algorithm="HS256")
        case "wrong-audience":
            return jwt.encode(_claims(user_id, aud="other"), SECRET, algorithm="HS256")
        case "wrong-issuer":
            return jwt.encode(_claims(user_id, iss="another-service"), SECRET, algorithm="HS256")
        case "no-issuer":
            return jwt.encode(_claims(user_id, iss=None), SECRET, algorithm="HS256")
        case "no-expiry":
            return jwt.encode(_claims(user_id, exp=None), SECRET, algorithm="HS256")
        case "issued-in-the-future":
            future = datetime.now(UTC) + timedelta(days=1)
            claims = _claims(user_id, iat=future, exp=future + timedelta(hours=1))
            return jwt.encode(claims, SECRET, algorithm="HS256")
        case "revoked-version":
            return jwt.encode(_claims(user_id, ver=7), SECRET, algorithm="HS256")
        case "10-kb-garbage":
            return "x" * 10_240
    raise AssertionError(kind)


FORGED = [
    "expired",
    "signed-with-another-key",
    "alg-none",
    "hs512-with-the-right-key",
    "rs256-header-with-hmac-signature",
    "nonexistent-user",
    "subject-not-a-uuid",
    "wrong-audience",
    "wrong-issuer",
    "no-issuer",
    "no-expiry",
    "issued-in-the-future",
    "revoked-version",
    "10-kb-garbage",
]

# Authorization values (None: no header at all) and the code each must get.
MISSING: dict[str, tuple[bytes | None, str]] = {
    "no-header": (None, "token_invalid"),
    "bearer-and-nothing": (b"Bearer", "token_invalid"),
    "bearer-and-spaces": (b"Bearer    ", "token_invalid"),
    "basic-scheme": (b"Basic dmljdGltOnBhc3N3b3Jk", "token_invalid"),
    "bearer-x": (b"Bearer x", "token_invalid"),
    "three-empty-segments": (b"Bearer ..", "token_invalid"),
    "latin-1-bytes": (b"Bearer \xe9\xe9\xe9", "token_invalid"),
}

PROTECTED = [
    ("GET", FILES, b""),
    ("GET", "/api/v1/users/me", b""),
    # A body the server must not read, let alone store, before the token is checked.
    ("POST", f"{FILES}?name=f.bin", b"b" * (2 * MiB)),
]


def _assert_token_refused(target: Target, authorization: bytes | None, code: str) -> None:
    for method, path, body in PROTECTED:
        before = target.snapshot()
        headers = [] if authorization is None else [(b"Authorization", authorization)]
        response = target.send(build(method, path, headers=headers, body=body))
        target.refused(response, 401, code, before=before)
        challenge = response.header("www-authenticate")
        assert challenge is not None
        assert challenge.startswith('Bearer realm="seau"')


@pytest.mark.parametrize("kind", FORGED)
def test_forged_tokens_are_401_token_invalid(target: Target, kind: str) -> None:
    token = _forged(kind, target.victim.id)
    # An expired token is told apart, so that a client knows to refresh it.
    code = "token_expired" if kind == "expired" else "token_invalid"
    _assert_token_refused(target, f"Bearer {token}".encode(), code)


@pytest.mark.parametrize(("value", "code"), MISSING.values(), ids=MISSING.keys())
def test_missing_or_malformed_authorization_is_401(
    target: Target, value: bytes | None, code: str
) -> None:
    _assert_token_refused(target, value, code)


def test_the_forging_helper_makes_tokens_the_server_accepts(target: Target) -> None:
    # Guards the cases above: they fail for the one property each changes, not because
    # the helper cannot make a token at all.
    token = jwt.encode(_claims(target.victim.id), SECRET, algorithm="HS256")
    response = target.send(
        build("GET", "/api/v1/users/me", headers=[("Authorization", f"Bearer {token}")])
    )
    assert response.status == 200, response.text


# -- other users' files and invalid ids ------------------------------------------------


def _comparable(response: RawResponse) -> tuple[int, list[str], dict[str, object]]:
    """Everything a client could use to tell two 404s apart, minus per-request values."""
    varying = {"date", "x-request-id", "content-length"}
    names = sorted(k.lower() for k, _ in response.headers if k.lower() not in varying)
    body = response.json() if response.body else {}
    body.pop("request_id", None)
    body.pop("instance", None)
    return response.status, names, body


ID_REQUESTS = [
    ("GET", "{id}", b"", []),
    ("GET", "{id}/content", b"", []),
    ("GET", "{id}/content", b"", [("Range", "bytes=0-1")]),
    ("HEAD", "{id}/content", b"", []),
    ("PATCH", "{id}", b'{"name": "stolen.txt"}', [("Content-Type", "application/json")]),
    ("DELETE", "{id}", b"", []),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    ID_REQUESTS,
    ids=[f"{m}-{p.replace('{id}', 'id')}-{len(h)}" for m, p, _, h in ID_REQUESTS],
)
def test_another_users_file_answers_exactly_like_a_missing_one(
    target: Target, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
) -> None:
    answers = []
    for file_id in (target.owned_id, str(uuid.uuid4())):
        before = target.snapshot()
        request = build(
            method,
            f"{FILES}/{path.format(id=file_id)}",
            headers=[target.victim.auth, *headers],
            body=body,
        )
        response = target.send(request, head=method == "HEAD")
        if method != "HEAD":
            target.refused(response, 404, "file_not_found", before=before)
        else:
            assert response.status == 404
        answers.append(_comparable(response))
    assert answers[0] == answers[1]
    # And the owner's file is untouched: same name, same bytes.
    owner = target.send(
        build("GET", f"{FILES}/{target.owned_id}/content", headers=[target.owner.auth])
    )
    assert owner.status == 200
    assert owner.body == OWNED_CONTENT
    assert "owned.bin" in (owner.header("content-disposition") or "")


BAD_IDS = {
    "not-a-uuid": "not-a-uuid",
    "10-kb": "n" * 10_240,
    "encoded-nul": "%00",
    "encoded-ff": "%ff",
    "encoded-dot-dot-slashes": "..%2F..%2Fetc%2Fpasswd",
    "minus-one": "-1",
    "zero": "0",
    "sql": quote("' OR '1'='1", safe=""),
    "urn-spelling-of-the-owners-id": "urn:uuid:{owned}",
    "braced-spelling-of-the-owners-id": "{{{owned}}}",
    "nil-uuid": "00000000-0000-0000-0000-000000000000",
}


@pytest.mark.parametrize("raw_id", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/content"), ("DELETE", "")])
def test_invalid_ids_are_404(target: Target, raw_id: str, method: str, suffix: str) -> None:
    before = target.snapshot()
    file_id = raw_id.format(owned=target.owned_id)
    response = target.send(
        build(method, f"{FILES}/{file_id}{suffix}", headers=[target.victim.auth])
    )
    problem = target.refused(response, 404, before=before)
    # `not_found` when the id cannot even make a route match (a decoded `/`).
    assert problem["code"] in {"file_not_found", "not_found"}


# -- pagination -------------------------------------------------------------------------


def _cursor(value: object) -> str:
    return _b64(json.dumps(value).encode())


PAGINATION: dict[str, tuple[str, int, str]] = {
    "limit-zero": ("limit=0", 422, "validation_error"),
    "limit-negative": ("limit=-1", 422, "validation_error"),
    "limit-10-to-the-40": (f"limit={10**40}", 422, "validation_error"),
    "limit-not-a-number": ("limit=abc", 422, "validation_error"),
    "limit-fraction": ("limit=1.5", 422, "validation_error"),
    "limit-empty": ("limit=", 422, "validation_error"),
    "limit-arabic-digits": ("limit=" + quote("٣"), 422, "validation_error"),
    "sort-unknown": ("sort=password", 422, "validation_error"),
    "sort-sql": ("sort=" + quote("name; DROP TABLE user_file"), 422, "validation_error"),
    "q-10-kb": ("q=" + "q" * 10_240, 422, "validation_error"),
    "cursor-garbage": ("cursor=" + quote("!!!***"), 400, "invalid_cursor"),
    "cursor-10-kb": ("cursor=" + "c" * 10_240, 422, "validation_error"),
    "cursor-base64-of-non-json": ("cursor=" + _b64(b"not json at all"), 400, "invalid_cursor"),
    "cursor-base64-of-invalid-utf8": ("cursor=" + _b64(b"\xff\xfe{"), 400, "invalid_cursor"),
    "cursor-json-array": ("cursor=" + _cursor([1, 2, 3]), 400, "invalid_cursor"),
    "cursor-for-another-sort": (
        "cursor=" + _cursor({"s": "name", "v": "a", "i": "0" * 32}),
        400,
        "invalid_cursor",
    ),
    "cursor-with-a-bad-id": (
        "cursor=" + _cursor({"s": "-created", "v": "2024-01-01T00:00:00+00:00", "i": "zz"}),
        400,
        "invalid_cursor",
    ),
    "cursor-with-a-naive-date": (
        "cursor=" + _cursor({"s": "-created", "v": "2024-01-01T00:00:00", "i": "0" * 32}),
        400,
        "invalid_cursor",
    ),
    "cursor-with-a-size-of-the-wrong-type": (
        "sort=size&cursor=" + _cursor({"s": "size", "v": "big", "i": "0" * 32}),
        400,
        "invalid_cursor",
    ),
}


@pytest.mark.parametrize(("query", "status", "code"), PAGINATION.values(), ids=PAGINATION.keys())
def test_absurd_pagination_is_refused(target: Target, query: str, status: int, code: str) -> None:
    before = target.snapshot()
    response = target.send(build("GET", f"{FILES}?{query}", headers=[target.victim.auth]))
    target.refused(response, status, code, before=before)


def test_an_absurd_page_size_is_clamped_not_refused(target: Target) -> None:
    response = target.send(build("GET", f"{FILES}?limit=10000", headers=[target.owner.auth]))
    assert response.status == 200
    assert [item["id"] for item in response.json()["items"]] == [target.owned_id]


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "\x1b[2J"])
def test_a_search_with_control_characters_is_422(target: Target, q: str) -> None:
    # No stored name holds a control character; PostgreSQL refuses NUL in text outright.
    before = target.snapshot()
    response = target.send(
        build("GET", f"{FILES}?q={quote(q, safe='')}", headers=[target.victim.auth])
    )
    target.refused(response, 422, "validation_error", before=before)


# -- Range --------------------------------------------------------------------------------

RANGES = {
    "two-ranges": "bytes=0-1,2-3",
    "double-dash": "bytes=--1",
    "end-before-start": "bytes=1-0",
    "21-digit-start": "bytes=999999999999999999999-",
    "start-beyond-the-end": f"bytes={len(OWNED_CONTENT)}-",
    "empty-suffix": "bytes=-0",
    "just-a-dash": "bytes=-",
    "letters": "bytes=a-b",
    "no-equals": "bytes 0-1",
    "no-unit": "=0-1",
    "8-kb": "bytes=" + "1" * 8192 + "-",
    "10k-commas": "bytes=0-1" + ",0-1" * 10_000,
    "non-ascii-digits": "bytes=\u0661-\u0662",
    "negative-start": "bytes=-5-10",
    # Two header lines are one comma-separated value (RFC 9110 section 5.3).
    "two-range-headers": "bytes=0-1\nbytes=2-3",
    "the-same-range-twice": "bytes=0-1\nbytes=0-1",
}


@pytest.mark.parametrize("value", RANGES.values(), ids=RANGES.keys())
def test_malformed_and_multiple_ranges_are_416(target: Target, value: str) -> None:
    before = target.snapshot()
    request = build(
        "GET",
        f"{FILES}/{target.owned_id}/content",
        headers=[target.owner.auth, *[("Range", line) for line in value.split("\n")]],
    )
    response = target.send(request)
    target.refused(response, 416, "range_not_satisfiable", before=before)
    assert response.header("content-range") == f"bytes */{len(OWNED_CONTENT)}"


@pytest.mark.parametrize(
    "headers",
    [
        [("Range", "items=0-1")],
        [("Range", "bytes=0-1"), ("If-Range", '"not-the-etag"')],
        [("Range", "bytes=0-1"), ("If-Range", "Wed, 21 Oct 2015 07:28:00 GMT")],
    ],
    ids=["other-unit", "if-range-mismatch", "if-range-date"],
)
def test_ranges_the_server_must_ignore_get_the_whole_file(
    target: Target, headers: list[tuple[str, str]]
) -> None:
    # RFC 9110 section 14.2: an unknown range unit, or an If-Range that does not match,
    # means the Range header is ignored: 200 with the whole representation is correct.
    request = build(
        "GET", f"{FILES}/{target.owned_id}/content", headers=[target.owner.auth, *headers]
    )
    response = target.send(request)
    assert response.status == 200
    assert response.body == OWNED_CONTENT
    assert response.header("content-range") is None


# -- the request itself ----------------------------------------------------------------


def test_a_query_string_too_long_to_parse_is_400_from_the_server(target: Target) -> None:
    before = target.snapshot()
    request = build("GET", f"{FILES}?q=" + "q" * 100_000, headers=[target.victim.auth])
    target.refused(target.send(request), 400, before=before, by_server=True)


def test_a_long_but_parseable_query_string_is_422(target: Target) -> None:
    before = target.snapshot()
    request = build(
        "POST", f"{FILES}?name=" + "n" * 60_000, headers=[target.victim.auth], body=b"x"
    )
    target.refused(target.send(request), 422, "validation_error", before=before)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 422),
        (b'{"name": "x", "owner_id": "' + str(uuid.uuid4()).encode() + b'"}', 422),
        (b'{"name": ["a"]}', 422),
        # json.loads gives up with RecursionError: "cannot read the body", still a 422.
        (b"[" * 100_000, 422),
        (b'{"name": "\xff\xfe"}', 422),
    ],
    ids=["not-json", "extra-field", "wrong-type", "nested-100k-deep", "not-utf-8"],
)
def test_a_malformed_rename_body_is_refused(target: Target, body: bytes, status: int) -> None:
    before = target.snapshot()
    request = build(
        "PATCH",
        f"{FILES}/{target.owned_id}",
        headers=[target.owner.auth, ("Content-Type", "application/json")],
        body=body,
    )
    target.refused(target.send(request), status, "validation_error", before=before)


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "a\\r\\nb@example.com", "password": "correct horse battery"}',
        b'{"email": "x@example.com", "password": "short"}',
        b'{"email": "x@example.com", "password": "' + b"p" * 4096 + b'"}',
        b'{"email": "x@example.com", "password": "correct horse battery", "is_admin": true}',
        b"[" * 100_000,
        b'{"email": "\xff@example.com", "password": "correct horse battery"}',
    ],
    ids=[
        "crlf-email",
        "short-password",
        "4-kb-password",
        "is-admin",
        "nested-100k-deep",
        "not-utf-8",
    ],
)
def test_hostile_sign_ups_are_refused(target: Target, body: bytes) -> None:
    before = target.snapshot()
    request = build(
        "POST", "/api/v1/users", headers=[("Content-Type", "application/json")], body=body
    )
    target.refused(target.send(request), 422, "validation_error", before=before)


def test_a_sign_in_body_over_the_small_body_cap_is_413(target: Target) -> None:
    before = target.snapshot()
    request = build(
        "POST",
        "/api/v1/auth/token",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=b"username=" + b"u" * (2 * MiB) + b"&password=x",
    )
    target.refused(target.send(request), 413, "request_too_large", before=before)


@pytest.mark.parametrize(
    "body",
    [
        b"&".join([b"f=1"] * 2000) + b"&username=a&password=b",
        b"username=a%40example.com",
        b"username=" + b"u" * 400 + b"&password=correct+horse+battery",
    ],
    ids=["2000-fields", "no-password", "400-character-username"],
)
def test_hostile_sign_ins_are_422(target: Target, body: bytes) -> None:
    # All refused before any password is checked, so none counts towards throttling.
    before = target.snapshot()
    request = build(
        "POST",
        "/api/v1/auth/token",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=body,
    )
    target.refused(target.send(request), 422, "validation_error", before=before)


def test_memory_is_back_to_baseline_after_the_request_battery(target: Target) -> None:
    assert_memory_back_to_baseline(target)
