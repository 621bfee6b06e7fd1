"""Webhook administration over HTTP, for admins and service keys with the
`admin` scope."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Response

from seau.db.models import WebhookEndpoint
from seau.deps import AdminCaller, WebhooksDep
from seau.errors import (
    AdminRequired,
    DatabaseUnavailable,
    DeliveryNotFound,
    InsufficientScope,
    InvalidToken,
    NotAuthenticated,
    TokenExpired,
    ValidationFailed,
    WebhookNotFound,
)
from seau.events.schemas import (
    FailedDelivery,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
)
from seau.events.service import Failure
from seau.events.types import FAILURE_REF_PATTERN, message_id, parse_event_types
from seau.problems import problem_responses

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["webhooks"])

_ADMIN_ERRORS = (
    NotAuthenticated,
    InvalidToken,
    TokenExpired,
    InsufficientScope,
    AdminRequired,
    DatabaseUnavailable,
)


def _read(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=endpoint.id,
        url=endpoint.url,
        events=sorted(parse_event_types(endpoint.events)) if endpoint.events else [],
        created_at=endpoint.created_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses=problem_responses(*_ADMIN_ERRORS, ValidationFailed),
    summary="Register a webhook endpoint",
    description="Every event of the types given (every type when none is) is POSTed "
    "to the URL, signed with the endpoint's secret (docs/events.md).",
)
async def add_webhook(
    body: WebhookCreate, _admin: AdminCaller, webhooks: WebhooksDep
) -> WebhookCreated:
    types = parse_event_types(",".join(body.events))
    endpoint = await webhooks.add(url=body.url, types=types, secret=body.secret)
    return WebhookCreated(**_read(endpoint).model_dump(), secret=endpoint.secret)


@router.get(
    "",
    response_model=list[WebhookRead],
    responses=problem_responses(*_ADMIN_ERRORS),
    summary="List the registered webhook endpoints",
)
async def list_webhooks(_admin: AdminCaller, webhooks: WebhooksDep) -> list[WebhookRead]:
    return [_read(endpoint) for endpoint in await webhooks.list()]


@router.get(
    "/failures",
    response_model=list[FailedDelivery],
    responses=problem_responses(*_ADMIN_ERRORS),
    summary="List the deliveries given up on",
)
async def list_failures(_admin: AdminCaller, webhooks: WebhooksDep) -> list[FailedDelivery]:
    return [_failed(f) for f in await webhooks.failures()]


def _failed(failure: Failure) -> FailedDelivery:
    """The failure as the API shows it: its event's id as receivers saw it."""
    return FailedDelivery(**{**asdict(failure), "event_id": message_id(failure.event_id)})


@router.post(
    "/failures/{failure_id}/replay",
    status_code=204,
    responses=problem_responses(*_ADMIN_ERRORS, DeliveryNotFound, ValidationFailed),
    summary="Send a failed delivery again",
    description="With its original `webhook-id` and a fresh retry bound.",
)
async def replay_failure(
    failure_id: Annotated[
        str,
        Path(
            pattern=FAILURE_REF_PATTERN,
            description="An event's id as its receivers saw it (`msg_…`, a failure's "
            "`event_id`): each of its failed deliveries; or a delivery's `id`.",
        ),
    ],
    _admin: AdminCaller,
    webhooks: WebhooksDep,
) -> Response:
    await webhooks.replay(failure_id)
    return Response(status_code=204)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    responses=problem_responses(*_ADMIN_ERRORS, WebhookNotFound),
    summary="Remove a webhook endpoint",
    description="Its pending and failed deliveries go with it.",
)
async def remove_webhook(
    endpoint_id: uuid.UUID, _admin: AdminCaller, webhooks: WebhooksDep
) -> Response:
    await webhooks.remove(endpoint_id)
    return Response(status_code=204)
