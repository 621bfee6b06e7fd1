"""What the quota routes answer and take."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from seau.quotas.ledger import Usage


class UsageRead(BaseModel):
    used_bytes: int = Field(description="Bytes of the caller's ready files.")
    used_files: int = Field(description="How many ready files the caller has.")
    reserved_bytes: int = Field(
        description="Bytes held by the caller's uploads in flight; they count against "
        "the quota until each upload ends."
    )
    quota_bytes: int = Field(description="The byte quota; 0: unlimited.")
    quota_files: int = Field(description="The file-count quota; 0: unlimited.")

    @classmethod
    def of(cls, usage: Usage) -> UsageRead:
        return cls(
            used_bytes=usage.used_bytes,
            used_files=usage.used_files,
            reserved_bytes=usage.reserved_bytes,
            quota_bytes=usage.quota_bytes,
            quota_files=usage.quota_files,
        )


class OwnerQuota(UsageRead):
    subject: str
    reserved_files: int = Field(description="Files of the owner's uploads in flight.")
    own_quota_bytes: int | None = Field(
        description="The byte quota an admin set for this owner; null: the server's "
        "default (`SEAU_DEFAULT_QUOTA_BYTES`) applies."
    )
    own_quota_files: int | None = Field(
        description="The file-count quota an admin set; null: `SEAU_DEFAULT_QUOTA_FILES`."
    )

    @classmethod
    def of_owner(cls, subject: str, usage: Usage) -> OwnerQuota:
        return cls(
            **UsageRead.of(usage).model_dump(),
            subject=subject,
            reserved_files=usage.reserved_files,
            own_quota_bytes=usage.own_quota_bytes,
            own_quota_files=usage.own_quota_files,
        )


class QuotaSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_bytes: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Bytes the owner may store; 0: unlimited; null: the server's default.",
    )
    quota_files: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Files the owner may have; 0: unlimited; null: the server's default.",
    )
