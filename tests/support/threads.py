"""Counting trips to a worker thread (`asyncio.to_thread`, which the stores use)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


class ThreadCalls:
    """Counts the trips to a worker thread made while the test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = asyncio.to_thread

        async def counting(
            function: Callable[..., object], /, *args: object, **kwargs: object
        ) -> object:
            self.count += 1
            return await real(function, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counting)
