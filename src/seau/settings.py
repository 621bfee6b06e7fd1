"""Configuration from the environment (``SEAU_*`` plus the standard ``AWS_*``).

There is no module-level instance: ``Settings()`` is built by the CLI (or a
test) and handed to ``create_app``.
"""

from __future__ import annotations

import os
import re
import secrets
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from seau.errors import ConfigurationError
from seau.events.types import check_secret, format_event_types, parse_event_types

MiB = 1024 * 1024
GiB = 1024 * MiB

# `type/subtype` (RFC 9110 tokens) or a family `type/*` (or `*/*`), for SEAU_ALLOWED_TYPES.
_MEDIA_TYPE_PATTERN: Final = re.compile(
    r"(?:\*/\*|[!#$%&'+.^_`|~0-9a-z-]+/(?:\*|[!#$%&'+.^_`|~0-9a-z-]+))"
)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


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
        repr=False,
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
    local_read_on_loop_bytes: Annotated[int, Field(ge=0, le=16 * MiB)] = Field(
        default=64 * 1024,
        description="Local store: a download of at most this many bytes is read on the "
        "event loop, without a trip to a worker thread; 0 reads every file in threads "
        "(set it on network filesystems such as NFS, where a read can stall).",
    )
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
    request_head_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="How long a client may take to send a request's line and headers "
        "(from the connection's first moment, or the request's first byte); then 408 "
        "and the connection is closed.",
    )
    body_idle_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0,
        description="How long a request body may stop arriving while the server waits "
        "for it; then 408 (or, once an answer has started, the connection is closed) "
        "and whatever the request held is released.",
    )
    signup_per_address_per_hour: Annotated[int, Field(ge=0)] = Field(
        default=20,
        description="Sign-ups one client address may make per hour (a bucket that refills "
        "steadily); 0 = no limit.",
    )
    signup_per_minute: Annotated[int, Field(ge=0)] = Field(
        default=60,
        description="Sign-ups the whole process accepts per minute, from every address; "
        "0 = no limit.",
    )
    password_hash_workers: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1,
        description="Threads that hash and verify passwords (argon2id, ~64 ms of a core "
        "and 19 MiB each), apart from the threads that move files; more than half the "
        "cores starves the event loop during a flood.",
    )
    password_hash_queue: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=16,
        description="Sign-ins and sign-ups that may wait for a hashing thread; beyond, "
        "503 `password_hashing_busy` with Retry-After.",
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        repr=False,
        description="When set, /metrics answers only `Authorization: Bearer <this token>`.",
    )
    gc_grace_seconds: Annotated[int, Field(ge=1)] = Field(
        default=24 * 3600,
        description="The reconciler leaves anything younger alone: keep it longer "
        "than the longest upload the server allows.",
    )
    gc_interval_seconds: Annotated[int, Field(ge=0)] = Field(
        default=3600,
        description="Run the reconciler inside `seau serve` this often; 0 = never.",
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
    max_active_uploads: Annotated[int, Field(ge=1)] = Field(
        default=100,
        description="Unfinished, unexpired resumable uploads one user may have at once; "
        "one more is refused with 429 too_many_active_uploads.",
    )
    default_quota_bytes: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Bytes each owner may store (ready files plus uploads in flight), "
        "unless an admin set theirs (`seau quota set`); 0 = unlimited. Past it: 413 "
        "quota_exceeded.",
    )
    default_quota_files: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Files each owner may have (ready plus uploads in flight), unless "
        "an admin set theirs; 0 = unlimited.",
    )
    upload_lease_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="How long a PATCH may hold its upload's lock without a byte arriving, "
        "and how soon a crashed instance's lock frees.",
    )

    share_default_ttl_seconds: Annotated[int, Field(gt=0)] = Field(
        default=7 * 24 * 3600,
        description="How long a share link lasts when its creator gives no `expires_in` "
        "(at most SEAU_SHARE_MAX_TTL_SECONDS).",
    )
    share_max_ttl_seconds: Annotated[int, Field(gt=0)] = Field(
        default=365 * 24 * 3600,
        description="The longest a share link may last; a longer `expires_in` is refused "
        "(422 invalid_share).",
    )
    link_max_ttl_seconds: Annotated[int, Field(gt=0, le=7 * 24 * 3600)] = Field(
        default=300,
        description="The longest a download link (`POST /api/v1/files/{id}/link`) lasts, "
        "and how long the links of redirected downloads last; a longer `expires_in` is "
        "refused (422 invalid_link).",
    )
    download_redirect: bool = Field(
        default=False,
        description="Answer every `GET /api/v1/files/{id}/content` with a 307 to a download "
        "link (on S3 a presigned URL, so the bytes skip seau), as `?redirect=true` does.",
    )
    direct_multipart_threshold_bytes: Annotated[int, Field(ge=5 * MiB)] = Field(
        default=100 * MiB,
        description="Direct uploads (`POST /api/v1/direct-uploads`) of this size or more go "
        "in parts (S3 multipart) unless the client asks; smaller ones in one presigned POST.",
    )
    direct_upload_expiry_seconds: Annotated[int, Field(ge=60)] = Field(
        default=24 * 3600,
        description="A direct upload not completed within this long expires (410 "
        "direct_upload_expired) and `seau gc` removes its bytes; never more than "
        "SEAU_GC_GRACE_SECONDS.",
    )
    direct_url_ttl_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = Field(
        default=3600,
        description="How long each URL of a direct upload lasts (a presigned POST or part "
        "PUT); a client asks again for fresh ones. Never past the upload's own expiry.",
    )

    # Identity: who a bearer token names (docs/identity.md).
    local_accounts: bool = Field(
        default=True,
        description="seau's own accounts: sign-up and email/password sign-in. Turn off "
        "when an identity provider (or the application's own tokens) is the only source "
        "of identity.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="An OpenID Connect provider's issuer URL: its access tokens (JWT, "
        "RS256/PS256/ES256/EdDSA) are accepted; needs SEAU_OIDC_AUDIENCE.",
    )
    oidc_audience: str | None = Field(
        default=None, description="The `aud` the provider's access tokens must carry."
    )
    oidc_subject_claim: str = Field(
        default="sub",
        min_length=1,
        description="The claim that names the owner in the provider's tokens.",
    )
    oidc_keys_refetch_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A token signed by a key seau has not seen makes it fetch the "
        "provider's JWKS again, at most once per this many seconds (a rotated key is "
        "picked up within it; a flood of made-up key ids costs one fetch).",
    )
    oidc_client_id: str | None = Field(
        default=None,
        description="A public client at the provider: the web page signs in with it "
        "(Authorization Code with PKCE). Unset: the page shows the email/password form.",
    )
    oidc_scopes: str = Field(
        default="openid profile email",
        description="Scopes the web page asks the provider for.",
    )
    app_jwt_secret: str | None = Field(
        default=None,
        min_length=32,
        repr=False,
        description="Accept HS256 tokens that the application's backend signs with this "
        "secret (32+ bytes); the owner is their `sub`.",
    )
    allowed_types: str = Field(
        default="",
        description="Comma-separated media types (`image/png`) and families (`image/*`) "
        "uploads may have, as detected from their first bytes whatever the uploader "
        "declared; any other answers 415 `type_not_allowed` before a byte is stored. "
        "Empty (the default): every type.",
    )
    app_jwt_issuer: str | None = Field(
        default=None, description="When set, application tokens must carry this `iss`."
    )
    app_jwt_audience: str | None = Field(
        default=None, description="When set, application tokens must carry this `aud`."
    )

    # Behind a reverse proxy (docs/deploy.md).
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses and CIDR networks of the reverse proxies "
        "whose `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` headers are "
        "believed. Empty (the default): the peer's address is the client's.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL clients reach seau at, e.g. `https://files.example.com`: "
        "absolute URLs seau answers (the tus `Location`) start with it. Unset: they are "
        "relative to the request's URL, never built from its `Host`.",
    )

    webhook_url: str | None = Field(
        default=None,
        description="Where every event is POSTed as a Standard Webhook (`file.ready`, "
        "`file.renamed`, `file.deleted`, `upload.expired`; docs/events.md). Needs "
        "`SEAU_WEBHOOK_SECRET`. Admins can register more receivers (`seau webhook add`).",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="The Standard Webhooks secret the requests to `SEAU_WEBHOOK_URL` are "
        "signed with: `whsec_` and base64 of 24 to 64 random bytes.",
    )
    webhook_events: str = Field(
        default="",
        description="Comma-separated event types `SEAU_WEBHOOK_URL` gets; empty (the "
        "default): every type.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="How long a delivery waits for a receiver's answer before it counts "
        "as failed and is retried. A delivery claimed by an instance that died is sent "
        "by another after three times this plus `SEAU_DATABASE_TIMEOUT_SECONDS`.",
    )

    pre_upload_hook_url: str | None = Field(
        default=None,
        description="Asked before every upload stores a byte (each file of a multipart "
        "request, a raw body, a tus upload at creation): a signed POST of `subject`, "
        "`name`, `size`, `content_type`, `via`. 2xx proceeds; 4xx refuses with 403 "
        "`rejected_by_hook` and the answer's `reason`; no answer or 5xx refuses with 503 "
        "`hook_unavailable` (docs/events.md).",
    )
    pre_upload_hook_secret: str | None = Field(
        default=None,
        description="The Standard Webhooks secret the hook's requests are signed with; "
        "`SEAU_WEBHOOK_SECRET` when unset.",
    )
    pre_upload_hook_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long an upload waits for the hook's answer.",
    )
    pre_upload_hook_fail_open: bool = Field(
        default=False,
        description="Let uploads proceed when the hook does not answer (times out, "
        "cannot be reached, answers 5xx) instead of refusing them with 503.",
    )

    @field_validator("webhook_url", "pre_upload_hook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.strip()

    @field_validator("webhook_secret", "pre_upload_hook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_secret(value.strip())

    @field_validator("webhook_events")
    @classmethod
    def _webhook_events(cls, value: str) -> str:
        return format_event_types(parse_event_types(value))

    @model_validator(mode="after")
    def _webhook_url_needs_a_secret(self) -> Settings:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("SEAU_WEBHOOK_SECRET must be set with SEAU_WEBHOOK_URL")
        if self.pre_upload_hook_url is not None and self.pre_upload_hook_signing_secret is None:
            raise ValueError(
                "SEAU_PRE_UPLOAD_HOOK_SECRET (or SEAU_WEBHOOK_SECRET) must be set with "
                "SEAU_PRE_UPLOAD_HOOK_URL"
            )
        return self

    @property
    def pre_upload_hook_signing_secret(self) -> str | None:
        return self.pre_upload_hook_secret or self.webhook_secret

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
        return ",".join(items)

    @field_validator("allowed_types")
    @classmethod
    def _media_type_patterns(cls, value: str) -> str:
        items = [item.strip().lower() for item in value.split(",") if item.strip()]
        for item in items:
            if _MEDIA_TYPE_PATTERN.fullmatch(item) is None:
                raise ValueError(f"not a media type or a type/* family: {item!r}")
        return ",".join(items)

    @field_validator("public_url")
    @classmethod
    def _absolute_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://files.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must have no query and no fragment")
        return value.strip().rstrip("/")

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item for item in self.trusted_proxies.split(",") if item]

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
    def _oidc_needs_an_audience(self) -> Settings:
        if self.oidc_issuer is not None:
            if self.oidc_audience is None:
                raise ValueError(
                    "SEAU_OIDC_AUDIENCE must be set with SEAU_OIDC_ISSUER: tokens the "
                    "provider issues for other services must not open seau"
                )
            if urlsplit(self.oidc_issuer).scheme not in ("http", "https"):
                raise ValueError("SEAU_OIDC_ISSUER must be an http(s) URL")
            if self.oidc_client_id is not None:
                # The page names the provider in its CSP: refuse at start-up what the
                # page could not serve.
                provider_origin(self.oidc_issuer)
        elif self.oidc_client_id is not None:
            raise ValueError("SEAU_OIDC_CLIENT_ID needs SEAU_OIDC_ISSUER")
        return self

    @model_validator(mode="after")
    def _kept_secret_is_long_enough(self) -> Settings:
        if self.secret_key is None:
            _check_secret_length(self.data_dir / "secret_key")
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
        _check_secret_length(path)
        return path.read_text(encoding="ascii").strip()


def _check_secret_length(path: Path) -> None:
    """A kept key must be as long as `SEAU_SECRET_KEY` must be: a short one (edited by
    hand, truncated) would sign tokens that are cheap to forge."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return
    except OSError:
        # Unreadable: the start-up check reports it with the path.
        return
    if len(key) < 32:
        raise ConfigurationError(
            f"the secret key in {path} is {len(key)} bytes long; it must be at least 32 "
            "(delete the file to have a new one made)"
        )


def _create_secret_file(path: Path) -> None:
    """Write a new key atomically: two processes starting at once agree on one key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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


# A host as a CSP source expression can name it: a DNS name or an IPv4 address (CSP
# has no syntax for IPv6 literals).
_CSP_HOST: Final = re.compile(r"[a-z0-9.-]+")


def provider_origin(issuer: str) -> str:
    """``scheme://host[:port]`` of ``issuer``, for the CSP. ValueError when the URL is
    not plain http(s) with a host a CSP can name: the header must not be forgeable
    from configuration."""
    parts = urlsplit(issuer)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the issuer {issuer!r} has an invalid port") from exc
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or host is None
        or not _CSP_HOST.fullmatch(host)
        or parts.username is not None
        or parts.password is not None
    ):
        raise ValueError(f"the issuer {issuer!r} is not an http(s) URL a CSP can name")
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")
