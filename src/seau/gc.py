"""The reconciler: removes what failed or interrupted uploads and deletes left behind.

It finds
- objects under `files/` with no row, older than the grace period;
- `pending` rows older than the grace period, with their bytes;
- stale temporary data of the store (a local store's temp files; S3 multipart
  uploads that were never completed), older than the grace period.

It never touches a `ready` file, nor anything younger than the grace period,
which exceeds the longest upload the server allows, so uploads in flight are
safe, nor the object of a resumable upload that is not done yet (a completion
cut after the object was made: the upload's next request, or `seau gc`'s
reclaim of uploads, makes it a file). Every removal is idempotent and
conditional, so several instances may run it at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seau.db.base import utcnow
from seau.db.models import FileState, Upload, UploadState, UserFile
from seau.files.keys import FILES_PREFIX, key_for
from seau.storage import ObjectInfo, StorageError, Store

log = logging.getLogger("seau.gc")

_BATCH = 500


@runtime_checkable
class SweepsTemporaryData(Protocol):
    """A store that keeps temporary data of its own (temp files, multipart uploads)."""

    async def sweep_temp_files(self, *, older_than: timedelta) -> int: ...


@dataclass
class GcReport:
    dry_run: bool
    orphan_objects: list[str] = field(default_factory=list)
    stale_pending: list[str] = field(default_factory=list)
    temporary_removed: int = 0
    extra: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        if self.dry_run:
            return 0
        return (
            len(self.orphan_objects)
            + len(self.stale_pending)
            + self.temporary_removed
            + sum(self.extra.values())
        )


ExtraStep = Callable[[datetime, bool], Awaitable[int]]


async def collect(
    *,
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    grace: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    extra_steps: Sequence[tuple[str, ExtraStep]] = (),
) -> GcReport:
    """Find (and unless ``dry_run``, remove) debris older than ``grace``."""
    cutoff = (now or utcnow()) - grace
    report = GcReport(dry_run=dry_run)
    await _stale_pending(sessions, store, cutoff, report)
    await _orphan_objects(sessions, store, cutoff, report)
    if isinstance(store, SweepsTemporaryData) and not dry_run:
        try:
            report.temporary_removed = await store.sweep_temp_files(older_than=grace)
        except StorageError as exc:
            report.errors.append(f"temporary data: {exc}")
    for name, step in extra_steps:
        try:
            report.extra[name] = await step(cutoff, dry_run)
        except Exception as exc:  # one failing step must not hide the others' results
            log.warning("gc step %s failed", name, exc_info=True)
            report.errors.append(f"{name}: {exc}")
    return report


async def _stale_pending(
    sessions: async_sessionmaker[AsyncSession], store: Store, cutoff: datetime, report: GcReport
) -> None:
    async with sessions() as session:
        rows = list(
            await session.execute(
                select(UserFile.id, UserFile.object_key).where(
                    UserFile.state == FileState.PENDING, UserFile.updated_at < cutoff
                )
            )
        )
    for file_id, key in rows:
        report.stale_pending.append(key)
        if report.dry_run:
            continue
        try:
            await store.delete(key)
        except StorageError as exc:
            report.errors.append(f"pending {file_id}: {exc}")
            continue
        async with sessions() as session:
            # Conditional: a row that changed since it was read is left alone.
            await session.execute(
                delete(UserFile).where(
                    UserFile.id == file_id,
                    UserFile.state == FileState.PENDING,
                    UserFile.updated_at < cutoff,
                )
            )
            await session.commit()


async def _orphan_objects(
    sessions: async_sessionmaker[AsyncSession], store: Store, cutoff: datetime, report: GcReport
) -> None:
    batch: list[ObjectInfo] = []
    try:
        async for info in store.list(FILES_PREFIX):
            if info.last_modified is not None and info.last_modified >= cutoff:
                continue
            batch.append(info)
            if len(batch) >= _BATCH:
                await _remove_unreferenced(sessions, store, batch, report)
                batch = []
        if batch:
            await _remove_unreferenced(sessions, store, batch, report)
    except StorageError as exc:
        report.errors.append(f"listing objects: {exc}")


async def _remove_unreferenced(
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    batch: list[ObjectInfo],
    report: GcReport,
) -> None:
    keys = [info.key for info in batch]
    uploads = {key: upload_id for key in keys if (upload_id := _upload_of(key)) is not None}
    async with sessions() as session:
        known = set(
            await session.scalars(select(UserFile.object_key).where(UserFile.object_key.in_(keys)))
        )
        unfinished = set(
            await session.scalars(
                select(Upload.id).where(
                    Upload.id.in_(set(uploads.values())), Upload.state != UploadState.DONE
                )
            )
        )
    known |= {key for key, upload_id in uploads.items() if upload_id in unfinished}
    for key in keys:
        if key in known:
            continue
        report.orphan_objects.append(key)
        if not report.dry_run:
            try:
                await store.delete(key)
            except StorageError as exc:
                report.errors.append(f"orphan {key}: {exc}")


def _upload_of(key: str) -> uuid.UUID | None:
    """The upload whose object ``key`` would be (`key_for` of its id), if any."""
    try:
        upload_id = uuid.UUID(hex=key.rpartition("/")[2])
    except ValueError:
        return None
    return upload_id if key == key_for(upload_id) else None
