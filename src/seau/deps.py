"""Dependencies as `Annotated` aliases, used in route signatures everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seau.auth.service import AuthService
from seau.auth.throttle import SignInGuard
from seau.db.models import User
from seau.errors import NotAuthenticated
from seau.files.service import FileService
from seau.observability import Metrics
from seau.settings import Settings
from seau.storage import Store
from seau.uploads.service import UploadService


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: Store
    auth: AuthService
    files: FileService
    sign_in: SignInGuard
    metrics: Metrics
    # None when the store has no staging capability (the memory store).
    uploads: UploadService | None


# Every dependency is `async def`, even the trivial ones: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hop per dependency per request
# (three on an upload; about 6 % of a small download's event-loop time).
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.seau
    return state


StateDep = Annotated[AppState, Depends(get_state)]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def current_user(state: StateDep, token: Annotated[str | None, Depends(_bearer)]) -> User:
    if not token:
        raise NotAuthenticated("a bearer token is required")
    return await state.auth.user_for_token(token)


CurrentUser = Annotated[User, Depends(current_user)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_files(state: StateDep) -> FileService:
    return state.files


async def get_auth(state: StateDep) -> AuthService:
    return state.auth


SettingsDep = Annotated[Settings, Depends(get_settings)]
FilesDep = Annotated[FileService, Depends(get_files)]
AuthDep = Annotated[AuthService, Depends(get_auth)]
