"""Issue 17, finding 3: spellings of a locked account's email get no fresh allowance.

On MariaDB, `utf8mb4_unicode_ci` took `victim@exámple.com` and `victim@exam\u200bple.com`
for `victim@example.com`, while the throttle counted each spelling as a new account:
with the real address locked (429), the variants signed in as the victim. Emails now
compare byte for byte on every database, are NFKC-normalised and lower-cased, refuse
format characters, and the throttle keys on the account the database resolved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from seau.app import create_app
from seau.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database

EMAIL, PASSWORD = "victim@example.com", "the real password"
ACCOUNT_ALLOWANCE = 5


@pytest.fixture(
    params=[
        pytest.param("mysql", marks=pytest.mark.mysql),
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    kind: Kind = request.param
    with scratch_database(kind, tmp_path) as url:
        app = create_app(Settings(data_dir=tmp_path, database_url=url, secret_key=TEST_SECRET))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as http,
        ):
            yield http


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )


async def test_variants_of_a_locked_email_do_not_sign_in_as_the_victim(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/users", json={"email": EMAIL, "password": PASSWORD})
    assert created.status_code == 201, created.text
    for n in range(ACCOUNT_ALLOWANCE):
        assert_problem(await _sign_in(client, EMAIL, f"guess {n}"), 401, "invalid_credentials")
    assert_problem(await _sign_in(client, EMAIL, PASSWORD), 429, "too_many_attempts")

    # Other strings that the old collation took for the victim's: none is the victim.
    for variant in ("victim@exámple.com", "victim@exam\u200bple.com", "victim@exa\u0301mple.com"):
        answer = await _sign_in(client, variant, PASSWORD)
        assert answer.status_code != 200, (variant, answer.text)
        assert_problem(answer, 401, "invalid_credentials")
    # Spellings that *are* the victim's address share its allowance.
    for same in ("VICTIM@EXAMPLE.COM", " victim@example.com", "ｖｉｃｔｉｍ@example.com"):
        assert_problem(await _sign_in(client, same, PASSWORD), 429, "too_many_attempts")


async def test_an_email_with_a_format_character_is_refused_at_sign_up(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/users", json={"email": "victim@exam\u200bple.com", "password": PASSWORD}
    )
    body = assert_problem(response, 422, "invalid_email")
    assert "U+200B" in str(body["detail"])


async def test_spellings_of_one_email_make_one_account(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/api/v1/users", json={"email": "ﬁona@exa\u0301mple.com", "password": PASSWORD}
    )
    assert first.status_code == 201, first.text
    assert first.json()["email"] == "fiona@exámple.com"
    again = await client.post(
        "/api/v1/users", json={"email": "FIONA@EXÁMPLE.COM", "password": PASSWORD}
    )
    assert_problem(again, 409, "email_taken")
    # A different address to a byte-comparing database: a separate account.
    other = await client.post(
        "/api/v1/users", json={"email": "fiona@example.com", "password": PASSWORD}
    )
    assert other.status_code == 201, other.text
    assert (await _sign_in(client, "Fiona@Exa\u0301mple.com", PASSWORD)).status_code == 200
