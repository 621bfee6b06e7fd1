from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from seau.events.types import EventType


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="An absolute http(s) URL.")
    events: list[EventType] = Field(
        default_factory=list, description="The event types it gets; empty for every type."
    )
    secret: str | None = Field(
        default=None,
        max_length=255,
        description="A Standard Webhooks secret (`whsec_…`); seau makes one when absent.",
    )


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: str
    events: list[EventType] = Field(description="Empty: every type.")
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="Verify the requests with it; shown in this answer only.")


class FailedDelivery(BaseModel):
    id: uuid.UUID = Field(description="The delivery's id: one per event and receiver.")
    event_id: str = Field(
        pattern=r"^msg_[0-9a-f]{32}$",
        description="The event's id as its receivers see it in `webhook-id` (and as "
        "`seau webhook failures` and seau's logs show it); "
        "`POST /api/v1/admin/webhooks/failures/{event_id}/replay` sends it again.",
        examples=["msg_5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69"],
    )
    type: str
    endpoint_id: uuid.UUID | None = Field(description="None: the SEAU_WEBHOOK_URL receiver.")
    url: str | None
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime = Field(description="When the event happened.")
