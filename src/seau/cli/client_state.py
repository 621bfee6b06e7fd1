"""What `seau upload` remembers of its unfinished uploads, so that uploading the same
file again continues one: a small private JSON file (`upload_state_path()`), shared by
the resumable (tus) and the direct uploads.

A file is known by its fingerprint (the server, its resolved path, its size and its
modification time): a file changed since is another file, and starts over. Each kind
of upload keeps its own keys (a direct upload's start with `DIRECT_PREFIX`), so an
entry of one kind is never read as the other.

HTTP only, like the rest of the client: nothing here imports the server's modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

from seau.cli.client_config import write_private

DIRECT_PREFIX = "direct|"
"""Before the fingerprint of a direct upload's entry. A tus entry's key is the bare
fingerprint, which starts with the server's URL (`http`), never with this."""
# Remembered uploads older than this are forgotten; servers expire them sooner.
_STATE_LIFETIME = 30 * 24 * 3600

# One process may run several uploads at once (`--jobs`); each read-modify-write
# of the state file is whole. Two processes at once may lose an entry: that
# upload then starts over when run again.
_STATE_LOCK = threading.Lock()


def fingerprint(server: str, resolved: Path, *, size: int, mtime_ns: int) -> str:
    """The key of a file's entry: ``resolved`` is its path with links resolved."""
    return "|".join([server, str(resolved), str(size), str(mtime_ns)])


class UploadStates:
    """Upload URLs by file fingerprint, in a small private JSON file (or nowhere).

    Best effort: an unreadable or unwritable file makes uploads start over, never fail.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path

    async def get(self, fingerprint: str) -> str | None:
        if self._path is None:
            return None
        entry = (await asyncio.to_thread(self._locked, None)).get(fingerprint)
        return entry[0] if entry is not None else None

    async def put(self, fingerprint: str, location: str) -> None:
        if self._path is not None:
            await asyncio.to_thread(self._locked, (fingerprint, location))

    async def drop(self, fingerprint: str) -> None:
        if self._path is not None:
            await asyncio.to_thread(self._locked, (fingerprint, None))

    def _locked(self, change: tuple[str, str | None] | None) -> dict[str, tuple[str, float]]:
        assert self._path is not None
        with _STATE_LOCK:
            entries = self._load(self._path)
            if change is None:
                return entries
            fingerprint, location = change
            now = time.time()
            entries = {k: v for k, v in entries.items() if now - v[1] < _STATE_LIFETIME}
            if location is None:
                entries.pop(fingerprint, None)
            else:
                entries[fingerprint] = (location, now)
            document = {k: {"url": url, "saved": saved} for k, (url, saved) in entries.items()}
            with contextlib.suppress(OSError):
                write_private(self._path, json.dumps(document, indent=1) + "\n")
            return entries

    @staticmethod
    def _load(path: Path) -> dict[str, tuple[str, float]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries: dict[str, tuple[str, float]] = {}
        for key, value in (data if isinstance(data, dict) else {}).items():
            if isinstance(value, dict) and isinstance(value.get("url"), str):
                saved = value.get("saved")
                entries[str(key)] = (
                    value["url"],
                    float(saved) if isinstance(saved, int | float) else 0.0,
                )
        return entries
