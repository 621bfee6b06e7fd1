"""Dependencies as `Annotated` aliases, used in route signatures everywhere."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seau.auth.authenticate import Authenticator
from seau.auth.keys import AccessKeys
from seau.auth.principal import SCOPE_DESCRIPTIONS, Principal, Scope, Via
from seau.auth.service import AuthService
from seau.direct.service import DirectUploads
from seau.errors import AdminRequired, InsufficientScope, NotAuthenticated
from seau.events.service import WebhookService
from seau.files.links import DownloadLinks
from seau.files.service import FileService
from seau.idempotency.service import Idempotency
from seau.observability import Metrics
from seau.quotas.service import Quotas
from seau.settings import Settings
from seau.shares.service import ShareService
from seau.storage import Store
from seau.uploads.service import UploadService

if TYPE_CHECKING:
    # Loaded only when OIDC is configured: it brings `cryptography` (~10 MiB).
    from seau.auth.oidc import OidcVerifier


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: Store
    auth: AuthService
    authenticator: Authenticator
    keys: AccessKeys
    oidc: OidcVerifier | None
    files: FileService
    links: DownloadLinks
    shares: ShareService
    metrics: Metrics
    quotas: Quotas
    # None when the store has no staging capability (the memory store).
    uploads: UploadService | None
    # None when the store has no direct-upload capability (the memory store).
    direct: DirectUploads | None
    webhooks: WebhookService
    idempotency: Idempotency


# Every dependency is `async def`, even the trivial ones: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hop per dependency per request
# (three on an upload; about 6 % of a small download's event-loop time).
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.seau
    return state


StateDep = Annotated[AppState, Depends(get_state)]

_bearer = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    scheme_name="bearer",
    scopes=dict(SCOPE_DESCRIPTIONS),
    description="seau's own sign-in (email and password); the other kinds of bearer "
    "token are the `token` and `oidc` schemes.",
    auto_error=False,
)


async def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    """The verified caller, holding every scope the route declares (RFC 6750 errors:
    401 for no or a bad token, 403 `insufficient_scope` for a missing scope). Runs
    before the route reads any of the body."""
    return await verified(security_scopes, request, state, token, fold=False)


async def folding_principal(
    security_scopes: SecurityScopes,
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    """As `current_principal`, except that a seau sign-in's owner check is left
    to the route's own statement (`Principal.pending`, `seau.auth.owner_check`):
    one trip to the database per request instead of two. Only for routes whose
    service takes ``pending`` and folds it in."""
    return await verified(security_scopes, request, state, token, fold=True)


async def verified(
    security_scopes: SecurityScopes,
    request: Request,
    state: AppState,
    token: str | None,
    *,
    fold: bool,
) -> Principal:
    """The checks of `current_principal` / `folding_principal`, for code that runs
    them outside FastAPI's dependency solving (`seau.files.routes.ContentLane`)."""
    if not token:
        raise NotAuthenticated("a bearer token is required")
    principal = await state.authenticator.authenticate(
        token, act_as=request.headers.get("seau-subject"), fold=fold
    )
    for scope in security_scopes.scopes:
        if scope not in principal.scopes:
            raise InsufficientScope(str(scope))  # "files:write", not the enum's repr
    if principal.pending is not None:
        # For a refusal of the request before its first statement has folded the
        # check in (`seau.problems.owner_first`).
        request.state.confirm_owner = functools.partial(
            state.files.confirm_owner, principal.pending
        )
    return principal


Caller = Annotated[Principal, Security(current_principal)]
"""Any verified caller: no scope needed."""
FilesReader = Annotated[Principal, Security(current_principal, scopes=[Scope.FILES_READ])]
FilesWriter = Annotated[Principal, Security(current_principal, scopes=[Scope.FILES_WRITE])]
FilesReaderFolded = Annotated[Principal, Security(folding_principal, scopes=[Scope.FILES_READ])]
"""A `FilesReader` whose sign-in owner check the route's service folds in (downloads)."""
FilesWriterFolded = Annotated[Principal, Security(folding_principal, scopes=[Scope.FILES_WRITE])]
"""A `FilesWriter` whose sign-in owner check the route's service folds in (uploads: into
the quota's read before the first byte)."""
TokensManager = Annotated[Principal, Security(current_principal, scopes=[Scope.TOKENS])]


_SIGN_INS = frozenset({Via.SESSION, Via.OIDC, Via.APP})


async def admin_principal(
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    """An admin signed in, or a service key with the `admin` scope (`AdminCaller`).

    The scope is declared (OpenAPI) but checked here rather than by `verified`: a
    sign-in carries no `admin` scope, its account's admin flag stands for it. A
    signed-in non-admin, or a service key with the scope acting for a subject, is
    403 `admin_required`; any other token without the scope (a personal token, a
    service key without it) is 403 `insufficient_scope` (RFC 6750)."""
    principal = await verified(SecurityScopes(), request, state, token, fold=False)
    if principal.is_admin:
        return principal
    if principal.via in _SIGN_INS or Scope.ADMIN in principal.scopes:
        raise AdminRequired()
    raise InsufficientScope(str(Scope.ADMIN))


AdminCaller = Annotated[Principal, Security(admin_principal, scopes=[Scope.ADMIN])]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_files(state: StateDep) -> FileService:
    return state.files


async def get_links(state: StateDep) -> DownloadLinks:
    return state.links


async def get_quotas(state: StateDep) -> Quotas:
    return state.quotas


async def get_shares(state: StateDep) -> ShareService:
    return state.shares


async def get_auth(state: StateDep) -> AuthService:
    return state.auth


async def get_keys(state: StateDep) -> AccessKeys:
    return state.keys


async def get_webhooks(state: StateDep) -> WebhookService:
    return state.webhooks


async def get_idempotency(state: StateDep) -> Idempotency:
    return state.idempotency


SettingsDep = Annotated[Settings, Depends(get_settings)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
FilesDep = Annotated[FileService, Depends(get_files)]
AuthDep = Annotated[AuthService, Depends(get_auth)]
SharesDep = Annotated[ShareService, Depends(get_shares)]
LinksDep = Annotated[DownloadLinks, Depends(get_links)]
KeysDep = Annotated[AccessKeys, Depends(get_keys)]
QuotasDep = Annotated[Quotas, Depends(get_quotas)]
