"""Nothing on a request's path runs in FastAPI's thread pool."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from seau.app import create_app
from seau.settings import Settings


def _calls(dependant: Dependant) -> Iterator[object]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _runs_on_the_loop(call: object) -> bool:
    # FastAPI awaits coroutine functions and callables with an async __call__;
    # anything else goes to a worker thread, one hop per request.
    if inspect.iscoroutinefunction(call):
        return True
    method = getattr(call, "__call__", None)  # noqa: B004 - a class instance's __call__
    return inspect.iscoroutinefunction(method)


def _api_routes(routes: Iterable[object]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # Included routers (FastAPI >= 0.160 keeps them whole rather than copied).
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_route_and_dependency_is_async(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    routes = list(_api_routes(app.routes))
    assert len(routes) > 10
    threaded = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for route in routes
            for call in _calls(route.dependant)
            if not _runs_on_the_loop(call)
        }
    )
    assert threaded == []
