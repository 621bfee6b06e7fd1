from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from seau.auth.schemas import Token, UserCreate, UserRead
from seau.deps import AuthDep, CurrentUser, SettingsDep
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
    responses=problem_responses(InvalidCredentials, ValidationFailed),
    summary="Get an access token (OAuth2 password flow)",
)
async def issue_token(
    username: Annotated[str, Form(max_length=320, description="The account's email.")],
    password: Annotated[str, Form(max_length=1024)],
    auth: AuthDep,
    settings: SettingsDep,
) -> Token:
    token = await auth.issue_token(email=username, password=password)
    return Token(access_token=token, expires_in=settings.token_ttl_seconds)


@router.get(
    "/users/me",
    response_model=UserRead,
    responses=problem_responses(NotAuthenticated, InvalidToken),
    summary="The current user",
)
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
