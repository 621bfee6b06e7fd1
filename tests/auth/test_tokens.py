"""Tokens: HS256 through PyJWT, without loading its optional `cryptography`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from seau.auth.tokens import VERIFIED_KEPT, TokenSigner
from seau.errors import InvalidToken, TokenExpired

# A fresh interpreter: this test process may have imported cryptography already.
SCRIPT = """
import sys, uuid
from datetime import timedelta
import seau.app
from seau.auth.tokens import TokenSigner

loaded = sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")
signer = TokenSigner(secret="k" * 40, ttl=timedelta(minutes=5))
user = uuid.uuid4()
assert signer.verify(signer.issue(user_id=user, version=3)).user_id == user
import cryptography.hazmat.primitives.hashes  # still importable by whoever needs it
print(loaded)
"""


def test_the_app_loads_tokens_without_cryptography() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_token_round_trips_and_a_tampered_one_does_not() -> None:
    signer = TokenSigner(secret="s" * 40, ttl=timedelta(minutes=5))
    user = uuid.uuid4()
    token = signer.issue(user_id=user, version=2)
    claims = signer.verify(token)
    assert (claims.user_id, claims.version) == (user, 2)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(InvalidToken):
        signer.verify(f"{head}.{body}.{flipped}")
    with pytest.raises(InvalidToken):
        TokenSigner(secret="t" * 40, ttl=timedelta(minutes=5)).verify(token)


def test_a_kept_token_still_expires_on_time_and_only_verified_ones_are_kept() -> None:
    signer = TokenSigner(secret="e" * 40, ttl=timedelta(minutes=5))
    user = uuid.uuid4()
    soon = datetime.now(UTC) - timedelta(minutes=5) + timedelta(seconds=1)
    token = signer.issue(user_id=user, version=1, now=soon)
    assert signer.verify(token).user_id == user
    assert signer.knows(token)
    assert signer.verify(token).user_id == user  # from what was kept
    time.sleep(1.1)
    with pytest.raises(TokenExpired):
        signer.verify(token)
    assert not signer.knows(token)
    with pytest.raises(TokenExpired):
        signer.verify(token)
    head, body, _ = token.split(".")
    with pytest.raises(InvalidToken):
        signer.verify(f"{head}.{body}.AAAA")
    assert not signer.knows(f"{head}.{body}.AAAA")


def test_the_kept_tokens_are_bounded() -> None:
    signer = TokenSigner(secret="b" * 40, ttl=timedelta(minutes=5))
    tokens = [signer.issue(user_id=uuid.uuid4(), version=0) for _ in range(VERIFIED_KEPT + 1)]
    for token in tokens:
        signer.verify(token)
    assert sum(signer.knows(token) for token in tokens) <= VERIFIED_KEPT
    assert signer.knows(tokens[-1])
