"""Migration 0012 rewrites stored emails into the form sign-in looks for, on the
three databases, and leaves alone what it cannot rewrite safely."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from seau.app import create_app
from seau.auth.emails import normalize_email
from seau.auth.passwords import hash_password
from seau.db.base import UTCDateTime
from seau.db.engine import create_engine
from seau.db.migrate import upgrade
from seau.settings import Settings
from tests.conftest import TEST_SECRET
from tests.support.databases import Kind, scratch_database

KINDS = [
    "sqlite",
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
]
PASSWORD = "correct horse battery"

ACCOUNTS = sa.table(
    "user_account",
    sa.column("id", sa.Uuid()),
    sa.column("subject"),
    sa.column("email"),
    sa.column("password_hash"),
    sa.column("is_active"),
    sa.column("is_admin"),
    sa.column("token_version"),
    sa.column("created_at", UTCDateTime()),
)

# stored before the upgrade -> stored after it
EXPECTED = {
    "Ada@Example.COM": "ada@example.com",
    "\uff47race@example.com": "grace@example.com",  # a fullwidth g
    "\ufb01nn@example.com": "finn@example.com",  # the fi ligature
    "already@example.com": "already@example.com",
    # Two accounts whose canonical form is the same: neither is changed.
    "Twin@example.com": "Twin@example.com",
    "TWIN@example.com": "TWIN@example.com",
    # Its canonical form is another account's: left as it is.
    "Taken@example.com": "Taken@example.com",
    "taken@example.com": "taken@example.com",
    # A format character sign-up refuses: left as it is, unreachable by sign-in.
    "Crafted\u200b@example.com": "Crafted\u200b@example.com",
}


@pytest.mark.parametrize("kind", KINDS)
async def test_0012_makes_stored_emails_canonical_unless_it_would_merge_accounts(
    kind: Kind, tmp_path: Path
) -> None:
    with scratch_database(kind, tmp_path) as url:
        engine = create_engine(url)
        ids = {email: uuid.uuid4() for email in EXPECTED}
        try:
            await upgrade(engine, "0011")
            async with engine.begin() as connection:
                await connection.execute(
                    ACCOUNTS.insert(),
                    [
                        {
                            "id": ids[email],
                            "subject": str(ids[email]),
                            "email": email,
                            "password_hash": hash_password(PASSWORD),
                            "is_active": True,
                            "is_admin": False,
                            "token_version": 0,
                            "created_at": datetime(2026, 12, 1, tzinfo=UTC),
                        }
                        for email in EXPECTED
                    ],
                )
            await upgrade(engine, "0012")
            async with engine.connect() as connection:
                rows = await connection.execute(sa.select(ACCOUNTS.c.id, ACCOUNTS.c.email))
                after = {row.id: row.email for row in rows}
            assert {email: after[ids[email]] for email in EXPECTED} == EXPECTED
        finally:
            await engine.dispose()

        # The rewritten accounts sign in with their address as anyone types it.
        app = create_app(
            Settings(
                data_dir=tmp_path,
                database_url=url,
                storage_url=(tmp_path / "objects").as_uri(),
                secret_key=TEST_SECRET,
            )
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://seau.test"
            ) as client,
        ):
            for typed in ("ADA@example.com", "grace@example.com", "\ufb01nn@Example.com"):
                signed_in = await client.post(
                    "/api/v1/auth/token", data={"username": typed, "password": PASSWORD}
                )
                assert signed_in.status_code == 200, (typed, signed_in.text)
                me = await client.get(
                    "/api/v1/users/me",
                    headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"},
                )
                assert me.json()["email"] == normalize_email(typed)
