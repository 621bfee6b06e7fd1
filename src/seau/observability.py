"""Request ids, structured JSON logs and Prometheus metrics.

One pure-ASGI middleware gives every request an id (echoed in `X-Request-ID`
and in problem details), counts requests, durations and bytes by route, and
writes one access-log line. Metrics live in a registry per app, so two apps in
one process do not mix their figures.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "seau_request_id", default=None
)
access_log = logging.getLogger("seau.access")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UPLOAD_ROUTES = {"/api/v1/files", "/api/v1/uploads", "/api/v1/uploads/{upload_id}"}
_DOWNLOAD_ROUTES = {"/api/v1/files/{file_id}/content"}
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "seau_http_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.duration = Histogram(
            "seau_http_request_duration_seconds",
            "Time to answer a request, body included.",
            ["method", "route"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        # Units as suffixes (Prometheus naming): seau_bytes_received_total until 0.x.
        self.bytes_in = Counter("seau_received_bytes", "Request body bytes received.", registry=r)
        self.bytes_out = Counter("seau_sent_bytes", "Response body bytes sent.", registry=r)
        self.upload_duration = Histogram(
            "seau_upload_duration_seconds",
            "Upload requests, from first to last byte.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.download_duration = Histogram(
            "seau_download_duration_seconds",
            "Download requests, from first to last byte.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.uploads_in_progress = Gauge(
            "seau_uploads_in_progress",
            "Upload requests being received now.",
            registry=r,
            # Across `--workers`: the sum over the workers alive.
            multiprocess_mode="livesum",
        )
        self.gc_removed = Counter(
            "seau_gc_removed", "Items removed by the reconciler.", ["kind"], registry=r
        )
        self.gc_runs = Counter("seau_gc_runs", "Reconciler runs.", ["outcome"], registry=r)
        self.webhook_deliveries = Counter(
            "seau_webhook_deliveries",
            "Webhook delivery attempts, by result (delivered, retrying, failed).",
            ["result"],
            registry=r,
        )
        # Read from the database: every instance sees the same numbers.
        self.webhook_backlog = Gauge(
            "seau_webhook_backlog",
            "Events not yet delivered to every receiver (pending deliveries and new events).",
            registry=r,
            multiprocess_mode="max",
        )
        self.webhook_oldest_seconds = Gauge(
            "seau_webhook_oldest_seconds",
            "Age of the oldest event not yet delivered; 0 when none is.",
            registry=r,
            multiprocess_mode="max",
        )


MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_PID_IN_FILE_NAME = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The directory the worker processes of `seau serve` keep their metrics in,
    when there is one (prometheus_client's multiprocess mode)."""
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: ``own`` (this process's metrics), or, under `seau serve`,
    the sum over every worker process, dead ones' counters included, with the
    standard process metrics summed over the workers alive."""
    directory = multiprocess_dir()
    if directory is None:
        return own
    registry = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(WorkerProcesses(directory))
    return registry


class WorkerProcesses:
    """process_* metrics summed over the live processes that left metric files in
    ``directory`` (start time: the earliest; max fds: the largest). A process found
    dead has its live gauges dropped here, whether it exited or was killed."""

    _EARLIEST = frozenset({"process_start_time_seconds"})
    _LARGEST = frozenset({"process_max_fds"})

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> list[Metric]:
        totals: dict[str, tuple[str, str, float]] = {}
        alive = 0
        for pid in self._pids():
            if not _alive(pid):
                mark_process_dead(pid, self._directory)  # type: ignore[no-untyped-call]
                continue
            try:
                collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
                families = list(collector.collect())
            except OSError:
                continue
            alive += 1
            for family in families:
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue
                    seen = totals.get(sample.name)
                    value = sample.value
                    if seen is not None:
                        if sample.name in self._EARLIEST:
                            value = min(seen[2], value)
                        elif sample.name in self._LARGEST:
                            value = max(seen[2], value)
                        else:
                            value += seen[2]
                    totals[sample.name] = (family.type, family.documentation, value)
        result: list[Metric] = [
            GaugeMetricFamily(
                "seau_worker_processes", "Worker processes alive.", value=float(alive)
            )
        ]
        for name, (kind, documentation, value) in totals.items():
            if kind == "counter":
                result.append(
                    CounterMetricFamily(name.removesuffix("_total"), documentation, value=value)
                )
            else:
                result.append(GaugeMetricFamily(name, documentation, value=value))
        return result

    def _pids(self) -> set[int]:
        try:
            names = os.listdir(self._directory)
        except OSError:
            return set()
        return {int(m.group(1)) for n in names if (m := _PID_IN_FILE_NAME.search(n))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _CLIENT_ID.match(given) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        received = sent = 0
        path = scope.get("path", "")
        is_upload = (scope["method"] == "POST" and path.rstrip("/") == "/api/v1/files") or (
            scope["method"] in ("POST", "PATCH") and path.startswith("/api/v1/uploads")
        )
        if is_upload:
            self.metrics.uploads_in_progress.inc()

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            m = self.metrics
            m.requests.labels(scope["method"], route, str(status)).inc()
            m.duration.labels(scope["method"], route).observe(elapsed)
            m.bytes_in.inc(received)
            m.bytes_out.inc(sent)
            if is_upload:
                m.uploads_in_progress.dec()
                if route in _UPLOAD_ROUTES:
                    m.upload_duration.observe(elapsed)
            if route in _DOWNLOAD_ROUTES and scope["method"] == "GET":
                m.download_duration.observe(elapsed)
            logged_path = _without_secrets(path)
            access_log.info(
                "%s %s %s",
                scope["method"],
                logged_path,
                status,
                extra={
                    "method": scope["method"],
                    "path": logged_path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "bytes_in": received,
                    "bytes_out": sent,
                },
            )
            request_id_var.reset(token)


# A share link's path is its secret (`seau.shares`): whoever reads the log must not
# be able to download with it.
_SHARE_SECRET = re.compile(r"^/s/[^/]+")


def _without_secrets(path: str) -> str:
    return _SHARE_SECRET.sub("/s/[secret]", path)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                decoded: str = value.decode("ascii")
            except UnicodeDecodeError:
                return None
            return decoded
    return None


_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras.

    Only what the code logs goes out; request headers and bodies never do, so
    tokens and passwords cannot reach the log.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str) -> dict[str, Any]:
    """`logging.config.dictConfig` for `seau serve`: JSON lines on stderr."""
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "seau": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            # seau.access writes one line per request; uvicorn's own would repeat it.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
