"""Who a request is from, once its bearer token is verified, and what it may do."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seau.errors import SubjectRequired

if TYPE_CHECKING:
    from seau.auth.owner_check import OwnerCheck


class Scope(enum.StrEnum):
    """What a token allows. Every route names the scope it needs."""

    FILES_READ = "files:read"
    FILES_WRITE = "files:write"
    # Managing one's personal access tokens: only a sign-in (seau's own, the
    # identity provider's, the application's) has it, never a personal token,
    # so a leaked token cannot mint itself a successor.
    TOKENS = "tokens"
    # A service key acting for the subject named in `Seau-Subject`.
    ACT_AS = "act-as"
    ADMIN = "admin"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.FILES_READ: "List, search and download files; list share links.",
    Scope.FILES_WRITE: "Upload, rename and delete files; create and revoke share links.",
    Scope.TOKENS: "Create, list and revoke personal access tokens (sign-ins only).",
    Scope.ACT_AS: "Service keys: act for the subject named in the Seau-Subject header.",
    Scope.ADMIN: "Administration.",
}

SIGN_IN_SCOPES = frozenset({Scope.FILES_READ, Scope.FILES_WRITE, Scope.TOKENS})
"""What a sign-in carries: everything a user may do."""
PERSONAL_SCOPES = frozenset({Scope.FILES_READ, Scope.FILES_WRITE})
"""What a personal access token may be given."""
SERVICE_SCOPES = frozenset({Scope.FILES_READ, Scope.FILES_WRITE, Scope.ACT_AS, Scope.ADMIN})
"""What a service key may be given."""


class Via(enum.StrEnum):
    """How the request proved who it is."""

    SESSION = "session"  # seau's own sign-in (email and password)
    OIDC = "oidc"  # the identity provider's access token
    APP = "app"  # a token the application's backend signed
    PERSONAL = "personal"  # a personal access token
    SERVICE = "service"  # a service key


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. ``owner_id`` is whose files the request reaches: the signed-in
    owner, or the subject a service key acts for; None for a service key that names
    no subject (it reaches no files)."""

    via: Via
    scopes: frozenset[str]
    owner_id: uuid.UUID | None
    subject: str | None
    is_admin: bool = False
    key_id: uuid.UUID | None = None
    """The personal token or service key used, if one was."""
    acting_for: bool = False
    """A service key acting for ``subject`` (`Seau-Subject`)."""
    pending: OwnerCheck | None = None
    """A seau sign-in whose owner check is left to the route's first statement
    (`seau.deps.FilesReaderFolded`, `seau.deps.FilesWriterFolded`)."""

    @property
    def owner(self) -> uuid.UUID:
        """Whose files this request reaches; `SubjectRequired` for a service key
        that names nobody. Refused while the owner check is pending: the
        folding route reads `owner_id` and passes `pending` on with it."""
        if self.pending is not None:
            raise RuntimeError("the owner check of this sign-in has not been made")
        return self._owner()

    def owner_to_check(self) -> tuple[uuid.UUID, OwnerCheck | None]:
        """`owner` and the owner check still to fold into the statement that reads
        the owner's file (None when the check was made)."""
        if self.pending is not None and self.owner_id is not None:
            return self.owner_id, self.pending
        return self._owner(), None

    def _owner(self) -> uuid.UUID:
        if self.owner_id is None:
            raise SubjectRequired(
                "a service key acts for a subject: name it in the Seau-Subject header"
            )
        return self.owner_id
