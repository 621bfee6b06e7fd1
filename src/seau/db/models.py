"""The tables: users and their files (`user_file`, as in the course)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from seau.db.base import Base, UTCDateTime, utcnow

# utf8mb4 so MariaDB/MySQL keep every Unicode name (emoji included) as given.
MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


class FileState(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"


_BINARY_255 = String(255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


class User(Base):
    """An owner: a seau account (email and password) or a subject that a trusted
    token named (an identity provider's, the application's, a service key acting
    for it), made on first use. Files and uploads belong to owners."""

    __tablename__ = "user_account"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Who the owner is to every token: the `sub` (or configured claim) of external
    # tokens, `str(id)` for seau's own accounts. Compared byte for byte everywhere
    # (subjects are case-sensitive: `auth0|Ab` and `auth0|ab` are two people).
    subject: Mapped[str] = mapped_column(_BINARY_255, unique=True)
    # Emails are stored canonical (NFKC, lower-cased: `seau.auth.emails`) and compared
    # byte for byte on every backend: MariaDB/MySQL's default collations would treat
    # accents, case and zero-width characters as equal (migration 0003). NULL for an
    # owner from a token: it signs in at its provider, never here.
    email: Mapped[str | None] = mapped_column(
        String(320).with_variant(
            mysql.VARCHAR(320, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        ),
        unique=True,
        default=None,
    )
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # What the token said when the owner was made (`email`, `name` claims), shown
    # and never trusted for anything.
    profile_email: Mapped[str | None] = mapped_column(String(320), default=None)
    profile_name: Mapped[str | None] = mapped_column(String(255), default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped to revoke every token issued before (tokens carry the version).
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessKeyKind(enum.StrEnum):
    PERSONAL = "personal"
    SERVICE = "service"


class AccessKey(Base):
    """A long-lived bearer token: a user's personal access token, or a service key
    an admin made for the application's backend. Only a hash of it is kept;
    deleting the row revokes it on every instance at once."""

    __tablename__ = "access_key"
    __table_args__ = (Index("ix_access_key_owner_id", "owner_id"), MYSQL_TABLE_ARGS)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[AccessKeyKind] = mapped_column(
        Enum(
            AccessKeyKind,
            name="access_key_kind",
            native_enum=False,
            length=16,
            values_callable=lambda kinds: [k.value for k in kinds],
            create_constraint=True,
        )
    )
    # The personal token's owner; NULL for a service key (it acts for subjects).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE"), default=None
    )
    name: Mapped[str] = mapped_column(String(100))
    # Space-separated, as OAuth writes scopes.
    scopes: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the whole token, hex: tokens are 256-bit random, so a fast hash
    # is as good as a slow one and costs nothing per request.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class UserFile(Base):
    __tablename__ = "user_file"
    __table_args__ = (
        # Keyset pagination per owner, on each sort column, tie-broken by id.
        Index("ix_user_file_owner_state_created", "owner_id", "state", "created_at", "id"),
        Index("ix_user_file_owner_state_name", "owner_id", "state", "name", "id"),
        Index("ix_user_file_owner_state_size", "owner_id", "state", "size", "id"),
        # The reconciler looks for stale pending rows.
        Index("ix_user_file_state_updated", "state", "updated_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE")
    )
    # Server-generated; never derived from anything the client sent.
    object_key: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # Detected from the first bytes (`seau.files.types`); the one downloads are served as.
    content_type: Mapped[str] = mapped_column(String(255))
    # What the uploader claimed (its Content-Type, else the name's extension); shown, never served.
    declared_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[FileState] = mapped_column(
        Enum(
            FileState,
            name="file_state",
            native_enum=False,
            length=16,
            values_callable=lambda states: [s.value for s in states],
            create_constraint=True,
        ),
        default=FileState.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


NAME_SEARCH_TABLE = "user_file_name_search"
"""SQLite: the FTS5 trigram index of `user_file.name` (migration 0004), kept in
step by triggers; an index, not a model, like the one below."""
NAME_TRIGRAM_INDEX = "ix_user_file_name_trgm"
"""PostgreSQL: the pg_trgm GIN index on `user_file.name` (migration 0004)."""


def is_search_index(name: str | None, type_: str) -> bool:
    """What migration 0004 makes outside the models: autogenerate must not see it
    (`migrations/env.py` and the migration test leave it out)."""
    if type_ == "table":
        return name is not None and name.startswith(NAME_SEARCH_TABLE)
    return type_ == "index" and name == NAME_TRIGRAM_INDEX


class UploadState(enum.StrEnum):
    ACTIVE = "active"
    # Every byte is recorded; the object is being assembled and its file row made.
    COMPLETING = "completing"
    DONE = "done"


class Upload(Base):
    """A resumable (tus) upload: what survives between requests, on any instance."""

    __tablename__ = "upload"
    __table_args__ = (
        Index("ix_upload_owner_id", "owner_id"),
        # The reconciler looks for expired uploads.
        Index("ix_upload_expires_at", "expires_at"),
        MYSQL_TABLE_ARGS,
    )

    # Also the id of the file it becomes, so the object key is known from the start.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    # The declared type until the first bytes come, then the detected one.
    content_type: Mapped[str] = mapped_column(String(255))
    # What the uploader claimed (tus `filetype`, else the name's extension).
    declared_type: Mapped[str] = mapped_column(String(255))
    # `Upload-Metadata` as the client sent it, echoed by HEAD.
    tus_metadata: Mapped[str | None] = mapped_column(Text, default=None)
    # NULL while the client defers the length (creation-defer-length).
    length: Mapped[int | None] = mapped_column(BigInteger, default=None)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # Fixed at creation, so a configuration change cannot break uploads in flight.
    part_size: Mapped[int] = mapped_column(BigInteger)
    # The store's id for the staging area (an S3 multipart upload id).
    handle: Mapped[str | None] = mapped_column(String(1024), default=None)
    # Bytes after the last whole part, kept as an object of their own (S3).
    tail_key: Mapped[str | None] = mapped_column(String(255), default=None)
    state: Mapped[UploadState] = mapped_column(
        Enum(
            UploadState,
            name="upload_state",
            native_enum=False,
            length=16,
            values_callable=lambda states: [s.value for s in states],
            create_constraint=True,
        ),
        default=UploadState.ACTIVE,
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Serializes PATCHes across instances: taken by a conditional UPDATE.
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UploadPart(Base):
    """A part of an S3 multipart upload that a committed PATCH wrote."""

    __tablename__ = "upload_part"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    upload_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("upload.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    etag: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpoint(Base):
    """A receiver an admin registered (`seau webhook add`); the one of
    ``SEAU_WEBHOOK_URL`` lives in the settings, not here."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2048))
    # Kept as given (`whsec_…`): signing needs the secret itself, not a hash of it.
    secret: Mapped[str] = mapped_column(String(255))
    # Comma-separated event types; empty for every type.
    events: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change it
    reports (`seau.events.outbox`), so it exists if and only if the change committed.
    The dispatcher fans it out into one delivery per receiver, then forgets it once
    no delivery is left."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        # The dispatcher's "events not fanned out yet, oldest first".
        Index("ix_webhook_event_fanned_out_created", "fanned_out", "created_at"),
        # An undone upload withdraws its `file.ready` (`seau.events.outbox.withdraw`).
        Index("ix_webhook_event_resource_id", "resource_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(32))
    # The file (or upload) the event is about.
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The owner's subject as it was when the event happened; no foreign key, so
    # that the events of an owner deleted since are still delivered.
    subject: Mapped[str | None] = mapped_column(_BINARY_255, default=None)
    # The event's `data` (JSON) but the subject.
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    # Given up on after the retry bound; replayable. A delivered row is deleted.
    FAILED = "failed"


class WebhookDelivery(Base):
    """One event for one receiver, until it answers 2xx (then the row goes)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # The dispatcher's "due deliveries"; the failures listing.
        Index("ix_webhook_delivery_state_next", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_event_id", "event_id"),
        Index("ix_webhook_delivery_endpoint_id", "endpoint_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_event.id", ondelete="CASCADE")
    )
    # NULL: the receiver of SEAU_WEBHOOK_URL.
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), default=None
    )
    state: Mapped[DeliveryState] = mapped_column(
        Enum(
            DeliveryState,
            name="webhook_delivery_state",
            native_enum=False,
            length=16,
            values_callable=lambda states: [s.value for s in states],
            create_constraint=True,
        ),
        default=DeliveryState.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Also the claim's lease: claiming moves it past the attempt's end.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Share(Base):
    """A link anyone may download a file with (`seau.shares`). Only the SHA-256 of
    its secret is kept; the row goes with its file (foreign key), and revoking
    deletes it, so every instance refuses the link from the next request."""

    __tablename__ = "file_share"
    __table_args__ = (
        # "My shares", newest first; a file's shares.
        Index("ix_file_share_owner_created", "owner_id", "created_at"),
        Index("ix_file_share_file_id", "file_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    file_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("user_file.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE")
    )
    # SHA-256 of the URL's secret, hex: 256 random bits need no slow hash.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id, like account passwords; NULL when the link needs none.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_downloads: Mapped[int | None] = mapped_column(Integer, default=None)
    # Raised by a conditional UPDATE, never past `max_downloads`.
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OwnerUsage(Base):
    """What an owner stores and has reserved, and the quotas an admin set for them
    (`seau.quotas`). Made on the owner's first upload (or by migration 0008, from
    their ready files); every change is a conditional UPDATE of this one row, so
    that concurrent uploads on any instances never pass the quota together."""

    __tablename__ = "owner_usage"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    # The sizes and count of the owner's ready files.
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    used_files: Mapped[int] = mapped_column(BigInteger, default=0)
    # The sum of the owner's reservations (`QuotaReservation`).
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_files: Mapped[int] = mapped_column(BigInteger, default=0)
    # An admin's override; NULL: the server's default (`SEAU_DEFAULT_QUOTA_*`). 0: none.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    quota_files: Mapped[int | None] = mapped_column(BigInteger, default=None)


class QuotaReservation(Base):
    """Room held for one upload in flight, from before its first byte is stored
    until its file is ready (then it becomes usage) or the upload fails. Its id is
    the file's (a plain upload) or the resumable upload's, which lives as long as
    the upload row; `seau gc` releases what a killed process left."""

    __tablename__ = "quota_reservation"
    __table_args__ = (
        Index("ix_quota_reservation_created_at", "created_at"),
        Index("ix_quota_reservation_owner_id", "owner_id"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE")
    )
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The first answer to a request sent with an `Idempotency-Key`, kept for a
    day so that a retry gets it again instead of doing the work twice
    (`seau.idempotency`). The key is stored only as a hash, and the answer
    encrypted with a key derived from it: a reader of the database can neither
    replay a request nor read an answer (a share's URL) without the client's key."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        Index("ix_idempotency_record_created_at", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What the request asked (method, path, query, headers that shape it, its JSON).
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The running request's token; NULL once its answer is stored.
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    # Renewed while the request runs: a claim left this long is a dead process's.
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Base64 of the sealed answer: aiomysql cannot send a bytes parameter.
    answer: Mapped[str | None] = mapped_column(
        Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectUpload(Base):
    """A direct upload (`seau.direct`): bytes the client sends straight to the store,
    under a key seau chose, that become a file only once seau has verified them.
    Its id is the file's and its quota reservation's; the row goes when the file is
    made, or when the upload is aborted, fails verification or expires."""

    __tablename__ = "direct_upload"
    __table_args__ = (
        Index("ix_direct_upload_owner_id", "owner_id"),
        # `seau gc` looks for expired ones.
        Index("ix_direct_upload_expires_at", "expires_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("user_account.id", ondelete="CASCADE")
    )
    object_key: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # What the client declared; the bytes are checked against it at completion.
    declared_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # The store's id of the multipart upload (S3's UploadId); NULL for a single part.
    handle: Mapped[str | None] = mapped_column(String(1024), default=None)
    part_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
