from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from seau.auth.schemas import Token, UserCreate, UserRead
from seau.auth.throttle import TooManyAttempts
from seau.deps import AuthDep, CurrentUser, SettingsDep, StateDep
from seau.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    NotAuthenticated,
    SignupDisabled,
    ValidationFailed,
)
from seau.problems import problem_responses

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    responses=problem_responses(SignupDisabled, EmailTaken, ValidationFailed),
    summary="Sign up",
)
async def sign_up(body: UserCreate, auth: AuthDep, settings: SettingsDep) -> UserRead:
    if not settings.allow_signup:
        raise SignupDisabled()
    user = await auth.create_user(email=body.email, password=body.password)
    return UserRead.model_validate(user)


@router.post(
    "/auth/token",
    response_model=Token,
    responses=problem_responses(InvalidCredentials, TooManyAttempts, ValidationFailed),
    summary="Get an access token (OAuth2 password flow)",
    description="Repeated failures for one account or from one address are answered 429 "
    "with a `Retry-After` that doubles with each further failure.",
)
async def issue_token(
    request: Request,
    username: Annotated[str, Form(max_length=320, description="The account's email.")],
    password: Annotated[str, Form(max_length=1024)],
    state: StateDep,
) -> Token:
    account = username.strip().lower()
    address = request.client.host if request.client else "unknown"
    state.sign_in.check(account=account, address=address)
    try:
        token = await state.auth.issue_token(email=username, password=password)
    except InvalidCredentials:
        state.sign_in.failed(account=account, address=address)
        raise
    state.sign_in.succeeded(account=account)
    return Token(access_token=token, expires_in=state.settings.token_ttl_seconds)


@router.post(
    "/auth/logout",
    status_code=204,
    responses=problem_responses(NotAuthenticated, InvalidToken),
    summary="Log out everywhere",
    description="Revokes every token issued to the current user so far.",
)
async def logout(user: CurrentUser, auth: AuthDep) -> Response:
    await auth.revoke_tokens(user.id)
    return Response(status_code=204)


@router.get(
    "/users/me",
    response_model=UserRead,
    responses=problem_responses(NotAuthenticated, InvalidToken),
    summary="The current user",
)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
