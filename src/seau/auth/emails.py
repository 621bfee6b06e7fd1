"""What an email address is to seau: one canonical string, compared byte for byte.

Every database compares ``user_account.email`` byte for byte (a binary collation
on MariaDB/MySQL), so two spellings of one address must become one string before
they reach it: NFKC folds compatibility forms (fullwidth letters, ligatures) and
the address is lower-cased. Invisible format characters (Unicode category Cf,
such as U+200B ZERO WIDTH SPACE) and control characters are refused rather than
removed: an address that holds one was crafted, and silently dropping it would
make a second spelling of an existing account.
"""

from __future__ import annotations

import re
import unicodedata

from seau.errors import InvalidEmail

MAX_LENGTH = 320
_SHAPE = re.compile(r"[^@\s]+@[^@\s]+")


def normalize_email(raw: str) -> str:
    """The canonical form of ``raw``; `InvalidEmail` says why there is none."""
    text = unicodedata.normalize("NFKC", raw).strip()
    # Lower-casing can leave a string that is not NFKC (U+0130 gains a combining dot).
    text = unicodedata.normalize("NFKC", text.lower())
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            raise InvalidEmail(
                f"the email holds an invisible formatting character (U+{ord(char):04X})"
            )
        if category == "Cc":
            raise InvalidEmail("the email holds a control character")
    if not _SHAPE.fullmatch(text):
        raise InvalidEmail("the email must be one address, like ada@example.com")
    if len(text) > MAX_LENGTH:
        raise InvalidEmail(f"the email is longer than {MAX_LENGTH} characters")
    return text
