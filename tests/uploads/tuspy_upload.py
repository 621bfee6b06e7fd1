"""Uploads one file to a seau server with the official tuspy client, unmodified.

    python tuspy_upload.py ENDPOINT TOKEN FILE STATE_FILE [CHUNK_SIZE] [--checksum]

STATE_FILE is tuspy's own URL storage: run again with the same file and it
resumes the earlier upload of FILE. Prints one JSON line per event; exits 0
once the upload succeeded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage


def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


def main() -> None:
    endpoint, token, file, state = sys.argv[1:5]
    rest = sys.argv[5:]
    checksum = "--checksum" in rest
    sizes = [int(a) for a in rest if a.isdigit()]
    client = TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(
        file_path=file,
        chunk_size=sizes[0] if sizes else sys.maxsize,
        metadata={"filename": Path(file).name, "filetype": "application/octet-stream"},
        store_url=True,
        url_storage=FileStorage(state),
        upload_checksum=checksum,
        # Enough patience for a server that restarts, and for its lock to expire.
        retries=30,
        retry_delay=1,
    )
    if uploader.url:
        say(event="resume", url=uploader.url, offset=uploader.offset)
    total = uploader.get_file_size()
    if not uploader.url:
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
    say(event="url", url=uploader.url)
    while uploader.offset < total:
        uploader.upload_chunk()
        say(event="chunk", sent=uploader.offset, total=total)
    say(event="success", url=uploader.url)


if __name__ == "__main__":
    main()
