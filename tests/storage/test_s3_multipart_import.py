"""aiobotocore (15 MiB resident) is imported by the first resumable upload on S3, not at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# In a fresh interpreter: this test process has long imported everything.
SCRIPT = """
import asyncio, sys
from seau.app import create_app
from seau.settings import Settings

async def main():
    settings = Settings(
        data_dir=sys.argv[1],
        storage_url="s3://bucket",
        aws_endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_region="us-east-1",
        s3_path_style=True,
        secret_key="k" * 40,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.seau.uploads is not None, "resumable uploads are off"
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("aiobotocore", "botocore")))

asyncio.run(main())
"""


def test_an_s3_app_starts_without_the_s3_sdk(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
