"""The one place seau's parts are built from its settings (tusd's composer).

settings → engine → sessions → store (and its staging capability) → services, for
the server (`seau.app.create_app`, in its lifespan) and for every CLI command that
touches the database or the store (through `seau.preflight`). The server and the
commands cannot drift apart, so any configuration `seau serve` accepts (a relative
``file:`` storage URL under ``SEAU_DATA_DIR``, the S3 options, the database
timeout) means the same to `seau user delete` and `seau gc`.

Nothing here does I/O when building: engines, stores and staging connect on first
use. Every context manager closes what it opened, in the reverse order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seau.auth.authenticate import Authenticator
from seau.auth.keys import AccessKeys
from seau.auth.passwords import PasswordHashing
from seau.auth.service import AuthService
from seau.auth.throttle import SignUpGuard
from seau.auth.tokens import TokenSigner
from seau.db.engine import create_engine, create_search_engine, create_sessionmaker
from seau.direct.service import DirectLimits, DirectUploads
from seau.direct.signing import UrlSigner
from seau.events.dispatcher import Dispatcher, Receiver
from seau.events.hook import PreUploadHook
from seau.events.outbox import KEEP_EVERY_EVENT, Wakeup
from seau.events.service import WebhookService
from seau.events.types import parse_event_types
from seau.files.links import DownloadLinks
from seau.files.service import FileService
from seau.files.types import TypePolicy
from seau.gc import ExtraStep, GcReport, collect
from seau.idempotency.service import Idempotency
from seau.quotas.service import Defaults, Quotas
from seau.settings import Settings
from seau.shares.service import ShareService
from seau.storage import Store
from seau.storage.factory import (
    S3Options,
    open_direct_uploads,
    open_download_links,
    open_staging,
    open_store,
    part_size_for,
)
from seau.storage.staging import UploadStaging
from seau.uploads.schemas import UploadLimits
from seau.uploads.service import UploadService

if TYPE_CHECKING:
    from seau.auth.app_tokens import AppTokenVerifier
    from seau.auth.oidc import OidcVerifier

__all__ = ["Parts", "open_engine", "open_parts", "open_storage", "s3_options"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """Everything built from one `Settings`; valid until `open_parts` exits."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: Store
    staging: UploadStaging | None
    """The store's staging capability; None for a store without one (memory)."""
    auth: AuthService
    authenticator: Authenticator
    keys: AccessKeys
    oidc: OidcVerifier | None
    """The identity provider's token verifier, started; None without SEAU_OIDC_ISSUER."""
    files: FileService
    quotas: Quotas
    links: DownloadLinks
    """Download links: presigned by the store when it can, else signed by seau."""
    shares: ShareService
    uploads: UploadService | None
    """Resumable uploads; None exactly when ``staging`` is None."""
    direct: DirectUploads | None
    """Direct uploads; None for a store without the capability (memory)."""
    webhooks: WebhookService
    idempotency: Idempotency
    """The answers to requests sent with an `Idempotency-Key` (safe retries)."""
    dispatcher: Dispatcher
    """Delivers the outbox; built here, run by the server (`seau.app`)."""

    async def collect_garbage(self, *, dry_run: bool = False) -> GcReport:
        """One run of the reconciler (`seau gc`, or the server's periodic run)."""
        return await collect(
            sessions=self.sessions,
            store=self.store,
            grace=timedelta(seconds=self.settings.gc_grace_seconds),
            dry_run=dry_run,
            extra_steps=[
                *_gc_steps(self.uploads, self.quotas, self.idempotency),
                *_direct_gc(self.direct),
            ],
        )


def s3_options(settings: Settings) -> S3Options:
    """Everything but the bucket and prefix, which `open_store` reads from the URL."""
    return S3Options(
        bucket="",
        endpoint_url=settings.aws_endpoint_url,
        region=settings.aws_region,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=settings.aws_secret_access_key,
        session_token=settings.aws_session_token,
        path_style=settings.s3_path_style,
        timeout_seconds=settings.storage_timeout_seconds,
        # The smallest parts (5 MiB) that still reach the largest upload allowed:
        # an upload holds about three parts in memory.
        part_size=part_size_for(settings.max_upload_bytes),
    )


@asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database engine alone, for work that needs nothing else (migrations,
    the start-up check). The default SQLite file lives in the data directory,
    which is created here if the default database or store needs it."""
    if settings.database_url is None or settings.storage_url is None:
        # Its own user's alone: it holds the database (password hashes) and the
        # signing key. Only the last component gets the mode; its parents are
        # the operator's.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Store]:
    """The store alone. A relative ``file:`` URL is taken under ``SEAU_DATA_DIR``.

    Raises `ValueError` (before yielding) for a storage URL or S3 configuration
    that names no usable store.
    """
    store = open_store(
        settings.effective_storage_url,
        s3=s3_options(settings),
        data_dir=settings.data_dir,
        read_on_loop_bytes=settings.local_read_on_loop_bytes,
    )
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_parts(settings: Settings, *, migrate: bool = False) -> AsyncIterator[Parts]:
    """Every part, built once; closed in the reverse order on exit.

    ``migrate`` upgrades the schema to head before any service is built. Raises
    `ValueError` (before yielding) for an unusable storage configuration, and
    `OSError` when the secret key can be neither read nor created.
    """
    async with AsyncExitStack() as stack:
        engine = await stack.enter_async_context(open_engine(settings))
        search_engine = create_search_engine(settings.effective_database_url)
        if search_engine is not None:
            stack.push_async_callback(search_engine.dispose)
        store = await stack.enter_async_context(open_storage(settings))
        if migrate:
            # Imported here: Alembic (and Mako) cost ~10 MiB that a server whose
            # migrations ran before it started (`seau serve`) never needs.
            from seau.db.migrate import upgrade

            await upgrade(engine)
        default_receiver = _default_receiver(settings)
        sessions = create_sessionmaker(
            engine, info={KEEP_EVERY_EVENT: default_receiver is not None}
        )
        staging = open_staging(store)
        if staging is not None:
            stack.push_async_callback(staging.close)
        passwords = PasswordHashing(
            workers=settings.password_hash_workers, queue=settings.password_hash_queue
        )
        stack.callback(passwords.close)
        signer = TokenSigner(
            secret=settings.load_secret_key(),
            ttl=timedelta(seconds=settings.token_ttl_seconds),
        )
        keys = AccessKeys(sessions=sessions, db_timeout=settings.database_timeout_seconds)
        oidc = await stack.enter_async_context(_open_oidc(settings))
        wakeup = Wakeup()
        dispatcher = Dispatcher(
            sessions=sessions,
            db_timeout=settings.database_timeout_seconds,
            default=default_receiver,
            wakeup=wakeup,
            request_timeout=settings.webhook_timeout_seconds,
        )
        stack.push_async_callback(dispatcher.aclose)
        pre_upload = _pre_upload_hook(settings)
        if pre_upload is not None:
            stack.push_async_callback(pre_upload.aclose)
        quotas = Quotas(
            sessions=sessions,
            defaults=Defaults(
                bytes=settings.default_quota_bytes, files=settings.default_quota_files
            ),
            db_timeout=settings.database_timeout_seconds,
        )
        files = FileService(
            sessions=sessions,
            store=store,
            max_name_length=settings.max_name_length,
            db_timeout=settings.database_timeout_seconds,
            search_sessions=(None if search_engine is None else create_sessionmaker(search_engine)),
            on_event=wakeup,
            pre_upload=pre_upload,
            quotas=quotas,
            types=TypePolicy.parse(settings.allowed_types),
        )
        yield Parts(
            settings=settings,
            engine=engine,
            sessions=sessions,
            store=store,
            staging=staging,
            auth=AuthService(
                sessions=sessions,
                signer=signer,
                passwords=passwords,
                sign_up=SignUpGuard(
                    per_address_per_hour=settings.signup_per_address_per_hour,
                    per_minute=settings.signup_per_minute,
                ),
                db_timeout=settings.database_timeout_seconds,
            ),
            authenticator=Authenticator(
                sessions=sessions,
                signer=signer,
                keys=keys,
                local_accounts=settings.local_accounts,
                oidc=oidc,
                oidc_issuer=settings.oidc_issuer,
                app=_app_tokens(settings),
                db_timeout=settings.database_timeout_seconds,
            ),
            keys=keys,
            oidc=oidc,
            files=files,
            quotas=quotas,
            links=DownloadLinks(
                secret=settings.load_secret_key(),
                max_ttl=timedelta(seconds=settings.link_max_ttl_seconds),
                store_links=open_download_links(store),
            ),
            shares=ShareService(
                sessions=sessions,
                files=files,
                passwords=passwords,
                default_ttl=timedelta(seconds=settings.share_default_ttl_seconds),
                max_ttl=timedelta(seconds=settings.share_max_ttl_seconds),
                db_timeout=settings.database_timeout_seconds,
            ),
            uploads=_upload_service(
                settings,
                sessions=sessions,
                store=store,
                staging=staging,
                on_event=wakeup,
                pre_upload=pre_upload,
                quotas=quotas,
            ),
            webhooks=WebhookService(
                sessions=sessions, db_timeout=settings.database_timeout_seconds
            ),
            idempotency=Idempotency(
                sessions=sessions, db_timeout=settings.database_timeout_seconds
            ),
            dispatcher=dispatcher,
            direct=await stack.enter_async_context(
                _direct_uploads(
                    settings,
                    sessions=sessions,
                    store=store,
                    on_event=wakeup,
                    pre_upload=pre_upload,
                    quotas=quotas,
                )
            ),
        )


def _pre_upload_hook(settings: Settings) -> PreUploadHook | None:
    secret = settings.pre_upload_hook_signing_secret
    if settings.pre_upload_hook_url is None or secret is None:
        return None
    return PreUploadHook(
        url=settings.pre_upload_hook_url,
        secret=secret,
        timeout=settings.pre_upload_hook_timeout_seconds,
        fail_open=settings.pre_upload_hook_fail_open,
    )


def _default_receiver(settings: Settings) -> Receiver | None:
    if settings.webhook_url is None or settings.webhook_secret is None:
        return None
    return Receiver(
        url=settings.webhook_url,
        secret=settings.webhook_secret,
        types=parse_event_types(settings.webhook_events),
    )


@asynccontextmanager
async def _open_oidc(settings: Settings) -> AsyncIterator[OidcVerifier | None]:
    """The provider's verifier, fetching its keys in the background: start-up does
    not wait for (or fail with) a provider that is briefly down."""
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        yield None
        return
    # Imported only when configured: it loads `cryptography` (~10 MiB).
    from seau.auth.oidc import OidcVerifier

    verifier = OidcVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        subject_claim=settings.oidc_subject_claim,
        refetch_interval_seconds=settings.oidc_keys_refetch_seconds,
    )
    await verifier.start()
    try:
        yield verifier
    finally:
        await verifier.close()


def _app_tokens(settings: Settings) -> AppTokenVerifier | None:
    if settings.app_jwt_secret is None:
        return None
    from seau.auth.app_tokens import AppTokenVerifier

    return AppTokenVerifier(
        secret=settings.app_jwt_secret,
        issuer=settings.app_jwt_issuer,
        audience=settings.app_jwt_audience,
    )


def _upload_service(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    staging: UploadStaging | None,
    on_event: Wakeup,
    pre_upload: PreUploadHook | None,
    quotas: Quotas,
) -> UploadService | None:
    """Resumable uploads, when the store can stage them (not the memory store)."""
    if staging is None:
        return None
    limits = UploadLimits(
        max_size=settings.tus_effective_max_size,
        part_size=part_size_for(settings.tus_effective_max_size, settings.tus_part_size),
        expiry=timedelta(seconds=settings.upload_expiry_seconds),
        lease=timedelta(seconds=settings.upload_lease_seconds),
        max_name_length=settings.max_name_length,
        max_active=settings.max_active_uploads,
    )
    return UploadService(
        sessions=sessions,
        store=store,
        staging=staging,
        limits=limits,
        db_timeout=settings.database_timeout_seconds,
        on_event=on_event,
        pre_upload=pre_upload,
        quotas=quotas,
        types=TypePolicy.parse(settings.allowed_types),
    )


@asynccontextmanager
async def _direct_uploads(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    store: Store,
    on_event: Wakeup,
    pre_upload: PreUploadHook | None,
    quotas: Quotas,
) -> AsyncIterator[DirectUploads | None]:
    """Direct uploads, when the store has the capability (not the memory store)."""
    found = open_direct_uploads(store)
    if found is None:
        yield None
        return
    target, signer = found
    # Never past the reconciler's grace: an object of an upload in flight has no
    # file row, and gc removes such objects once older than the grace.
    expiry = min(settings.direct_upload_expiry_seconds, settings.gc_grace_seconds)
    try:
        yield DirectUploads(
            sessions=sessions,
            store=store,
            target=target,
            signer=signer,
            urls=UrlSigner(secret=settings.load_secret_key()),
            quotas=quotas,
            limits=DirectLimits(
                max_size=settings.tus_effective_max_size,
                multipart_threshold=settings.direct_multipart_threshold_bytes,
                expiry=timedelta(seconds=expiry),
                url_ttl=timedelta(seconds=settings.direct_url_ttl_seconds),
                max_name_length=settings.max_name_length,
            ),
            db_timeout=settings.database_timeout_seconds,
            on_event=on_event,
            pre_upload=pre_upload,
            types=TypePolicy.parse(settings.allowed_types),
        )
    finally:
        await target.close()


def _direct_gc(direct: DirectUploads | None) -> list[tuple[str, ExtraStep]]:
    """Direct uploads that expired without completing: rows, reservations, bytes."""

    async def expired_direct_uploads(cutoff: datetime, dry_run: bool) -> int:
        return 0 if direct is None else await direct.reclaim(dry_run=dry_run)

    return [("expired_direct_uploads", expired_direct_uploads)]


def _gc_steps(
    uploads: UploadService | None, quotas: Quotas, idempotency: Idempotency
) -> list[tuple[str, ExtraStep]]:
    """Reconciler steps of the optional features: expired resumable uploads (their
    reservations go with them), then the reservations of uploads a killed process
    left, older than the grace period, then the answers kept for retries that are
    more than a day old."""

    async def expired_uploads(cutoff: datetime, dry_run: bool) -> int:
        if uploads is None:
            return 0
        return await uploads.reclaim(older_than=cutoff, dry_run=dry_run)

    async def stale_reservations(cutoff: datetime, dry_run: bool) -> int:
        return await quotas.release_stale(before=cutoff, dry_run=dry_run)

    async def old_idempotency_keys(cutoff: datetime, dry_run: bool) -> int:
        return await idempotency.purge(dry_run=dry_run)

    return [
        ("expired_uploads", expired_uploads),
        ("stale_reservations", stale_reservations),
        ("old_idempotency_keys", old_idempotency_keys),
    ]
