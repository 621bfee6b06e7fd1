"""Configuration from the environment (``SEAU_*`` plus the standard ``AWS_*``).

There is no module-level instance: ``Settings()`` is built by the CLI (or a
test) and handed to ``create_app``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


class ConfigurationError(Exception):
    """Configuration that cannot work; the message is one line for the operator."""


def async_database_url(url: str) -> str:
    """Accept the usual sync URL spellings and pick seau's async driver for them."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"SEAU_DATABASE_URL is not a URL: {url!r}")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEAU_", extra="ignore", frozen=True, populate_by_name=True
    )

    data_dir: Path = Field(
        default=Path("seau-data"),
        description="Where the embedded defaults live: SQLite file, local objects, secret key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file `DATA_DIR/seau.db`. "
        "`mysql://`, `mariadb://` and `postgresql://` are mapped to the async drivers.",
    )
    storage_url: str | None = Field(
        default=None,
        description="`file:///PATH` (default `DATA_DIR/objects`) or `s3://BUCKET[/PREFIX]`.",
    )
    secret_key: str | None = Field(
        default=None,
        min_length=32,
        description="Signs access tokens. Required when the database is shared "
        "(not SQLite); generated and kept in DATA_DIR otherwise.",
    )
    auto_migrate: bool = Field(
        default=True, description="Apply database migrations when the server starts."
    )
    allow_signup: bool = Field(default=True, description="Allow `POST /api/v1/users`.")
    token_ttl_seconds: Annotated[int, Field(gt=0, le=30 * 24 * 3600)] = 3600
    max_upload_bytes: Annotated[int, Field(gt=0)] = 5 * GiB
    max_files_per_request: Annotated[int, Field(gt=0, le=10_000)] = 100
    max_name_length: Annotated[int, Field(gt=0, le=255)] = 255
    max_page_size: Annotated[int, Field(gt=0, le=10_000)] = 1000
    storage_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    database_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Longest a unit of database work may take before the request "
        "answers 503 database_unavailable.",
    )
    retry_after_seconds: Annotated[int, Field(ge=1)] = 5
    s3_path_style: bool = Field(
        default=False,
        description="Address the bucket as `ENDPOINT/BUCKET` (MinIO, Ceph, moto) "
        "instead of `BUCKET.ENDPOINT`.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed by CORS, as JSON: `["https://app.example.com"]`. '
        "Empty (the default) sends no CORS headers.",
    )
    shutdown_timeout_seconds: Annotated[int, Field(ge=1)] = Field(
        default=30, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    gc_grace_seconds: Annotated[int, Field(ge=1)] = Field(
        default=24 * 3600,
        description="The reconciler leaves anything younger alone: keep it longer "
        "than the longest upload the server allows.",
    )
    gc_interval_seconds: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Run the reconciler inside `seau serve` this often; 0 = never."
    )
    tus_max_size: Annotated[int | None, Field(gt=0)] = Field(
        default=None,
        description="Largest resumable (tus) upload; default `SEAU_MAX_UPLOAD_BYTES`.",
    )
    tus_part_size: Annotated[int | None, Field(ge=5 * MiB, le=5 * GiB)] = Field(
        default=None,
        description="S3 part size of resumable uploads. Default: the smallest whole MiB, "
        "at least 5 MiB, with which 10,000 parts reach the largest upload.",
    )
    upload_expiry_seconds: Annotated[int, Field(ge=1)] = Field(
        default=24 * 3600,
        description="A resumable upload that receives no bytes for this long expires; "
        "`seau gc` then removes its data.",
    )
    upload_lease_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="How long a PATCH may hold its upload's lock without a byte arriving, "
        "and how soon a crashed instance's lock frees.",
    )

    # The standard AWS variables, read without the SEAU_ prefix.
    aws_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "SEAU_AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "SEAU_AWS_SECRET_ACCESS_KEY"),
        repr=False,
    )
    aws_session_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SESSION_TOKEN", "SEAU_AWS_SESSION_TOKEN"),
        repr=False,
    )
    aws_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "SEAU_AWS_REGION"),
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "SEAU_AWS_ENDPOINT_URL"),
    )

    @field_validator("storage_url")
    @classmethod
    def _known_storage_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("file", "s3", "memory"):
            raise ValueError("must start with file://, s3:// (or memory:// for tests)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = async_database_url(value)
        backend = url.split("://", 1)[0].split("+", 1)[0]
        if backend not in ("sqlite", "mysql", "postgresql"):
            raise ValueError("must be a sqlite://, mysql:// (MariaDB) or postgresql:// URL")
        return url

    @model_validator(mode="after")
    def _shared_database_needs_explicit_secret(self) -> Settings:
        if self.secret_key is None and not self.effective_database_url.startswith("sqlite"):
            raise ValueError(
                "SEAU_SECRET_KEY must be set (32+ characters) when the database is shared: "
                "every instance must sign tokens with the same key"
            )
        return self

    @model_validator(mode="after")
    def _tus_parts_reach_the_largest_upload(self) -> Settings:
        if (
            self.tus_part_size is not None
            and self.tus_part_size * 10_000 < self.tus_effective_max_size
        ):
            raise ValueError(
                "SEAU_TUS_PART_SIZE is too small: S3's 10,000 parts would not reach "
                "the largest resumable upload"
            )
        return self

    @property
    def tus_effective_max_size(self) -> int:
        return self.tus_max_size if self.tus_max_size is not None else self.max_upload_bytes

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'seau.db').resolve()}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url is not None:
            return self.storage_url
        return (self.data_dir / "objects").resolve().as_uri()

    def load_secret_key(self) -> str:
        """The explicit key, or the one kept in DATA_DIR (created on first use, mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            _create_secret_file(path)
        return path.read_text(encoding="ascii").strip()


def _create_secret_file(path: Path) -> None:
    """Write a new key atomically: two processes starting at once agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one operator-readable line."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        name = f"SEAU_{where.upper()}" if where else "configuration"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigurationError(f"invalid configuration: {name}: {message}{more}") from None
    except ConfigurationError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from None
