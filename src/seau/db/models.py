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
from sqlalchemy.orm import Mapped, mapped_column

from seau.db.base import Base, UTCDateTime, utcnow

# utf8mb4 so MariaDB/MySQL keep every Unicode name (emoji included) as given.
MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


class FileState(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"


class User(Base):
    __tablename__ = "user_account"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Emails are stored lower-cased, so uniqueness means the same on every backend.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped to revoke every token issued before (tokens carry the version).
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    content_type: Mapped[str] = mapped_column(String(255))
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
    content_type: Mapped[str] = mapped_column(String(255))
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
