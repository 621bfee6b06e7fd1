"""Local accounts (sign-up, sign-in, sign-out), who the caller is, and personal access
tokens (made by a signed-in caller, listed, revoked)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from seau.auth.schemas import (
    AccessTokenCreate,
    AccessTokenCreated,
    AccessTokenRead,
    Token,
    UserCreate,
    UserRead,
    WhoAmI,
)
from seau.db.models import AccessKey, AccessKeyKind
from seau.deps import AuthDep, Caller, KeysDep, SettingsDep, TokensManager
from seau.errors import (
    DatabaseUnavailable,
    EmailTaken,
    InsufficientScope,
    InvalidCredentials,
    InvalidEmail,
    InvalidScopes,
    InvalidToken,
    LocalAccountsDisabled,
    NotAuthenticated,
    PasswordHashingBusy,
    SignupDisabled,
    TokenExpired,
    TokenNotFound,
    TooManyAttempts,
    TooManySignUps,
    ValidationFailed,
    WeakPassword,
)
from seau.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["users"])

# RFC 6749 section 5.1: a response that carries a token must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    responses=problem_responses(
        SignupDisabled,
        LocalAccountsDisabled,
        EmailTaken,
        ValidationFailed,
        InvalidEmail,
        InvalidScopes,
        WeakPassword,
        TooManySignUps,
        PasswordHashingBusy,
    ),
    summary="Sign up",
    description="The password needs at least 10 characters and must not be a commonly "
    "used one (422 `weak_password`). Sign-ups are limited per client address and per "
    "server (429 `too_many_sign_ups` with `Retry-After`).",
)
async def sign_up(
    request: Request, body: UserCreate, auth: AuthDep, settings: SettingsDep
) -> UserRead:
    if not settings.local_accounts:
        raise LocalAccountsDisabled()
    if not settings.allow_signup:
        raise SignupDisabled()
    user = await auth.sign_up(email=body.email, password=body.password, address=_address(request))
    return UserRead.model_validate(user)


@router.post(
    "/auth/token",
    response_model=Token,
    responses=problem_responses(
        InvalidCredentials,
        LocalAccountsDisabled,
        TooManyAttempts,
        ValidationFailed,
        PasswordHashingBusy,
    ),
    summary="Get an access token (OAuth2 password flow)",
    description="Repeated failures for one account or from one address are answered 429 "
    "with a `Retry-After` that doubles with each further failure; attempts still being "
    "checked count against the allowance too.",
)
async def issue_token(
    request: Request,
    response: Response,
    username: Annotated[str, Form(max_length=320, description="The account's email.")],
    password: Annotated[str, Form(max_length=1024)],
    auth: AuthDep,
    settings: SettingsDep,
) -> Token:
    if not settings.local_accounts:
        raise LocalAccountsDisabled()
    token = await auth.issue_token(email=username, password=password, address=_address(request))
    response.headers.update(_NO_STORE)
    return Token(access_token=token, expires_in=settings.token_ttl_seconds)


# Every authenticated route reads the database (the caller's account or key): 503
# when it does not answer.
_AUTH_ERRORS = (NotAuthenticated, InvalidToken, TokenExpired, DatabaseUnavailable)


@router.post(
    "/auth/logout",
    status_code=204,
    responses=problem_responses(*_AUTH_ERRORS, InsufficientScope),
    summary="Log out everywhere",
    description="Revokes every seau sign-in token issued to the current user so far "
    "(personal access tokens stay: revoke them one by one). A provider's tokens are "
    "the provider's to revoke.",
)
async def logout(caller: TokensManager, auth: AuthDep) -> Response:
    await auth.revoke_tokens(caller.owner)
    return Response(status_code=204)


@router.get(
    "/users/me",
    response_model=WhoAmI,
    responses=problem_responses(*_AUTH_ERRORS),
    summary="Who the token is",
    description="The owner the token reaches (for a service key with `Seau-Subject`, "
    "the subject it acts for), how it signed in and what it may do.",
)
async def me(caller: Caller, auth: AuthDep) -> WhoAmI:
    owner = None if caller.owner_id is None else await auth.get_owner(caller.owner_id)
    return WhoAmI(
        id=caller.owner_id,
        subject=caller.subject,
        email=None if owner is None else (owner.email or owner.profile_email),
        name=None if owner is None else owner.profile_name,
        is_admin=caller.is_admin,
        created_at=None if owner is None else owner.created_at,
        via=caller.via.value,
        scopes=sorted(caller.scopes),
        acting_for=caller.acting_for,
    )


# Personal access tokens: made by a signed-in user, listed, revoked.
tokens_router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


def _read(key: AccessKey) -> AccessTokenRead:
    return AccessTokenRead(
        id=key.id,
        name=key.name,
        scopes=key.scopes.split(),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
    )


@tokens_router.post(
    "",
    status_code=201,
    response_model=AccessTokenCreated,
    responses=problem_responses(*_AUTH_ERRORS, InsufficientScope, InvalidScopes, ValidationFailed),
    summary="Create a personal access token",
    description="For scripts: a long-lived token limited to the scopes given "
    "(`files:read`, `files:write`). The token is in this answer only. Needs a sign-in "
    "(seau's, the identity provider's or the application's token), not another "
    "personal token.",
)
async def create_token(
    body: AccessTokenCreate, caller: TokensManager, keys: KeysDep, response: Response
) -> AccessTokenCreated:
    made = await keys.create(
        kind=AccessKeyKind.PERSONAL,
        name=body.name,
        scopes=body.scopes,
        expires_in=None if body.expires_in is None else timedelta(seconds=body.expires_in),
        owner_id=caller.owner,
    )
    response.headers.update(_NO_STORE)
    return AccessTokenCreated(**_read(made.key).model_dump(), token=made.token)


@tokens_router.get(
    "",
    response_model=list[AccessTokenRead],
    responses=problem_responses(*_AUTH_ERRORS),
    summary="List your personal access tokens",
)
async def list_tokens(caller: TokensManager, keys: KeysDep) -> list[AccessTokenRead]:
    found = await keys.list(kind=AccessKeyKind.PERSONAL, owner_id=caller.owner)
    return [_read(key) for key in found]


@tokens_router.delete(
    "/{token_id}",
    status_code=204,
    responses=problem_responses(*_AUTH_ERRORS, InsufficientScope, TokenNotFound),
    summary="Revoke a personal access token",
    description="Refused from the next request on, by every instance.",
)
async def revoke_token(token_id: str, caller: TokensManager, keys: KeysDep) -> Response:
    await keys.revoke(token_id, kind=AccessKeyKind.PERSONAL, owner_id=caller.owner)
    return Response(status_code=204)
