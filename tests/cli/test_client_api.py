"""The client's pure parts: error lines from problem details, ids, local path expansion."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import typer

from seau.cli.client import Outcome, Source, expand_sources, parse_size
from seau.cli.client_api import as_file_id, problem_message


def problem(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/problem+json", **(headers or {})},
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            problem(404, {"title": "File not found", "detail": "File not found", "code": "x"}),
            ("File not found (x)", "x"),
        ),
        (
            problem(
                413, {"title": "File too large", "detail": "over 10", "code": "file_too_large"}
            ),
            ("File too large: over 10 (file_too_large)", "file_too_large"),
        ),
        (
            problem(
                422,
                {
                    "title": "Invalid request",
                    "detail": "the request does not match the API's schema",
                    "code": "validation_error",
                    "errors": [{"loc": ["query", "limit"], "msg": "too big"}],
                },
            ),
            (
                "Invalid request: the request does not match the API's schema: limit: too big "
                "(validation_error)",
                "validation_error",
            ),
        ),
        (
            problem(
                429,
                {"title": "Too many", "detail": "try again in 4 s", "code": "too_many_attempts"},
                {"Retry-After": "4"},
            ),
            ("Too many: try again in 4 s (too_many_attempts); retry in 4 s", "too_many_attempts"),
        ),
        (
            problem(500, {"title": "Internal", "code": "internal_error", "request_id": "abc"}),
            ("Internal (internal_error, request abc)", "internal_error"),
        ),
        (
            problem(400, {"title": "Bad\x1b[31m\nrequest", "code": "bad_request"}),
            ("Bad [31m request (bad_request)", "bad_request"),
        ),
        (httpx.Response(502, text="<html>bad gateway</html>"), ("HTTP 502 Bad Gateway", None)),
    ],
)
def test_problem_details_become_one_clean_line(
    response: httpx.Response, expected: tuple[str, str | None]
) -> None:
    assert problem_message(response) == expected


def test_ids_are_recognised_in_any_uuid_spelling_and_names_are_not() -> None:
    canonical = "0d5f3c3e-1c7b-4f8e-9a55-0d6f0e2b7a11"
    assert as_file_id(canonical.upper()) == canonical
    assert as_file_id(canonical.replace("-", "")) == canonical
    assert as_file_id("report.pdf") is None


def test_sources_walk_directories_expand_globs_and_report_what_matches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a.txt", "d/b.txt", "d/e/c.txt", "g1.log", "g2.log", "d/.hidden"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")  # walked once, not forever
    sources, problems = expand_sources(["a.txt", "d", "*.log", "nothing*", "missing", "./a.txt"])
    assert [s.label for s in sources] == [
        "a.txt",
        "d/.hidden",
        "d/b.txt",
        "d/e/c.txt",
        "g1.log",
        "g2.log",
    ]
    assert [s.size for s in sources] == [5, 9, 7, 9, 6, 6]
    assert [(p.label, p.error) for p in problems] == [
        ("nothing*", "no file matches"),
        ("missing", "no such file or directory"),
    ]
    # Outcomes keep the order of the command line.
    outcomes: list[Source | Outcome] = [*sources, *problems]
    orders = sorted(outcomes, key=lambda item: item.order)
    assert [item.label for item in orders][-3:] == ["g2.log", "nothing*", "missing"]


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("33554432", 32 << 20), ("32M", 32 << 20), ("8 MiB", 8 << 20), ("1g", 1 << 30)],
)
def test_sizes_are_bytes_or_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "1.5G", "-1", "32 MB extra", "10X"])
def test_what_is_not_a_size_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a size"):
        parse_size(text)
