"""Issue 17, finding 8: the most-guessed passwords are refused, saying why, and long
passphrases of any composition are not (the sign-up route's 422 `weak_password`:
tests/api/test_auth.py)."""

from __future__ import annotations

import pytest

from seau.auth.passwords import check_new_password
from seau.errors import WeakPassword


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("12345678", "at least 10 characters"),
        ("password", "at least 10 characters"),
        (" " * 8, "at least 10 characters"),
        (" " * 12, "at least 10 characters"),
        ("  short  pw  ", "at least 10 characters"),
        ("1234567890", "most commonly used"),
        ("Password12", "most commonly used"),
        ("  qwertyuiop ", "most commonly used"),
    ],
)
def test_weak_passwords_are_refused_saying_why(password: str, why: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_new_password(password)
    assert why in caught.value.detail
    assert caught.value.code == "weak_password"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "zebra lamp cactus",
        "ünïcödé-pässwörd",
        "x" * 1024,
        "a b c d e f",
    ],
)
def test_long_passwords_of_any_composition_are_accepted(password: str) -> None:
    check_new_password(password)
