"""Issue 17, finding 12: the signing key stays out of reprs and logs, a kept key file
shorter than the variable's minimum is refused at start-up, and seau's tokens carry
its issuer, checked (the token answer's `Cache-Control: no-store`: tests/api/test_auth.py)."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from seau.auth.tokens import TokenSigner
from seau.errors import ConfigurationError, InvalidToken
from seau.settings import Settings, load_settings
from tests.support.server import SEAU, server_env

SECRET = "the-signing-key-" + "q" * 40


def test_the_secret_key_does_not_appear_in_the_settings_repr() -> None:
    settings = Settings(data_dir=Path("unused"), secret_key=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert settings.secret_key == SECRET


@pytest.mark.parametrize("kept", [b"", b"short", b"x" * 31 + b"\n"])
def test_a_kept_secret_key_shorter_than_32_bytes_is_refused(tmp_path: Path, kept: bytes) -> None:
    (tmp_path / "secret_key").write_bytes(kept)
    with pytest.raises(ConfigurationError, match="at least 32"):
        load_settings(data_dir=tmp_path)


def test_a_kept_secret_key_of_32_bytes_is_used(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_bytes(b"k" * 32 + b"\n")
    assert load_settings(data_dir=tmp_path).load_secret_key() == "k" * 32


def test_seau_serve_refuses_to_start_with_a_short_kept_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret_key").write_text("too-short\n")
    result = subprocess.run(
        [SEAU, "serve", "--port", "1"],
        env=server_env({"SEAU_DATA_DIR": os.fspath(data)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "at least 32" in result.stderr


def test_tokens_carry_the_issuer_and_one_without_it_is_refused() -> None:
    secret = "i" * 40
    signer = TokenSigner(secret=secret, ttl=timedelta(minutes=5))
    token = signer.issue(user_id=uuid.uuid4(), version=0)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "seau"
    for issuer in (None, "another-service"):
        forged = dict(claims)
        if issuer is None:
            del forged["iss"]  # as every token issued before the claim existed
        else:
            forged["iss"] = issuer
        with pytest.raises(InvalidToken):
            signer.verify(jwt.encode(forged, secret, algorithm="HS256"))
