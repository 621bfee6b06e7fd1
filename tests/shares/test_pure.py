"""The pure pieces of share links: reading HTTP Basic, sizes on the page."""

from __future__ import annotations

import base64

import pytest

from seau.shares.page import human_size
from seau.shares.routes import basic_password


@pytest.mark.parametrize(
    ("header", "password"),
    [
        (None, None),
        ("Bearer abc", None),
        ("Basic " + base64.b64encode(b":secret").decode(), "secret"),
        ("basic " + base64.b64encode(b"me:a:b").decode(), "a:b"),
        ("Basic " + base64.b64encode("x:pässword".encode()).decode(), "pässword"),
        ("Basic " + base64.b64encode("x:pässword".encode("latin-1")).decode(), "pässword"),
        ("Basic " + base64.b64encode(b"no colon").decode(), None),
        ("Basic !!!", None),
    ],
)
def test_basic_password_is_read_leniently(
    header: str | None,
    password: str | None,
) -> None:
    assert basic_password(header) == password


def test_sizes_read_like_a_file_manager() -> None:
    assert human_size(0) == "0 bytes"
    assert human_size(999) == "999 bytes"
    assert human_size(1500) == "1.5 kB"
    assert human_size(5 * 10**12) == "5.0 TB"
