"""`GET /api/v1/usage` for everyone, `/api/v1/admin/quotas/{subject}` for admins."""

from __future__ import annotations

from fastapi import APIRouter

from seau.deps import AdminCaller, FilesReader, QuotasDep
from seau.errors import (
    AdminRequired,
    DatabaseUnavailable,
    InsufficientScope,
    InvalidSubject,
    InvalidToken,
    NotAuthenticated,
    SubjectRequired,
    TokenExpired,
    ValidationFailed,
)
from seau.problems import problem_responses
from seau.quotas.schemas import OwnerQuota, QuotaSet, UsageRead

router = APIRouter(prefix="/api/v1/usage", tags=["quotas"])
admin_router = APIRouter(prefix="/api/v1/admin/quotas", tags=["quotas"])

_AUTH_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, SubjectRequired)
_ADMIN_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, InsufficientScope, AdminRequired)


@router.get(
    "",
    response_model=UsageRead,
    responses=problem_responses(*_AUTH_ERRORS, DatabaseUnavailable),
    summary="My usage and quotas",
    description="What the caller's ready files use, what their uploads in flight hold, "
    "and the quotas (0: unlimited). An upload that does not fit answers 413 "
    "`quota_exceeded`.",
)
async def usage(caller: FilesReader, quotas: QuotasDep) -> UsageRead:
    return UsageRead.of(await quotas.usage(caller.owner))


@admin_router.get(
    "/{subject}",
    response_model=OwnerQuota,
    responses=problem_responses(*_ADMIN_ERRORS, InvalidSubject, DatabaseUnavailable),
    summary="An owner's usage and quotas",
    description="The owner is made if the subject has none yet (owners are made on first use).",
)
async def show_quota(subject: str, _admin: AdminCaller, quotas: QuotasDep) -> OwnerQuota:
    return OwnerQuota.of_owner(subject, await quotas.of_subject(subject))


@admin_router.put(
    "/{subject}",
    response_model=OwnerQuota,
    responses=problem_responses(
        *_ADMIN_ERRORS, InvalidSubject, ValidationFailed, DatabaseUnavailable
    ),
    summary="Set an owner's quotas",
    description="Both quotas at once: a number (0: unlimited) or null (the server's "
    "default). Uploads already under way keep the room they hold.",
)
async def set_quota(
    subject: str, body: QuotaSet, _admin: AdminCaller, quotas: QuotasDep
) -> OwnerQuota:
    usage = await quotas.set_quota(
        subject, values={"quota_bytes": body.quota_bytes, "quota_files": body.quota_files}
    )
    return OwnerQuota.of_owner(subject, usage)
