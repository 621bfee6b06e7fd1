from __future__ import annotations

import pytest

from seau.auth.emails import normalize_email
from seau.errors import InvalidEmail


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM ", "ada@example.com"),
        ("ａｄａ@ｅｘａｍｐｌｅ.ｃｏｍ", "ada@example.com"),  # fullwidth forms
        ("ﬁle@example.com", "file@example.com"),  # the ﬁ ligature
        ("victim@exa\u0301mple.com", "victim@exámple.com"),  # combining accent → one code point
        ("VICTIM@EXÁMPLE.COM", "victim@exámple.com"),
    ],
)
def test_spellings_of_one_address_become_one_string(given: str, canonical: str) -> None:
    assert normalize_email(given) == canonical
    assert normalize_email(canonical) == canonical


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("victim@exam\u200bple.com", "U+200B"),  # zero width space
        ("victim\u200d@example.com", "U+200D"),  # zero width joiner
        ("vic\u00adtim@example.com", "U+00AD"),  # soft hyphen
        ("\ufeffvictim@example.com", "U+FEFF"),  # byte order mark
        ("victim@example.com\u2066", "U+2066"),  # bidi isolate
        ("a\x00b@example.com", "control character"),
        ("a\x7fb@example.com", "control character"),
        ("not-an-email", "one address"),
        ("a＠b@example.com", "one address"),  # a fullwidth @ becomes a second @
        ("a b@example.com", "one address"),
        ("a@" + "b" * 320, "longer than 320"),
    ],
)
def test_crafted_emails_are_refused_saying_why(given: str, why: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalize_email(given)
    assert why in caught.value.detail
    assert caught.value.status == 422
