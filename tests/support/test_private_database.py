"""A private server (`tests.support.private_database`) really stops, and comes back on
its port with every commit it answered, stopped as by a crash or cleanly; its
directory is gone afterwards."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.private_database import Mode, private_database

KINDS = [
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_private_server_restarts_on_its_port_with_what_it_committed(
    kind: Literal["mysql", "postgresql"],
) -> None:
    with private_database(kind) as server:
        root, port = server.root, server.port
        engine = create_async_engine(server.url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE kept (n INTEGER)"))
            modes: list[Mode] = ["immediate", "fast"]
            for mode in modes:
                for n in range(20):
                    async with engine.begin() as connection:
                        await connection.execute(text("INSERT INTO kept VALUES (:n)"), {"n": n})
                await asyncio.to_thread(server.stop, mode)
                assert not server.running
                await engine.dispose()
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("127.0.0.1", port)
                await asyncio.to_thread(server.start)
                assert server.running
                assert server.port == port
            async with engine.connect() as connection:
                count = await connection.scalar(text("SELECT count(*) FROM kept"))
            assert count == 40
        finally:
            await engine.dispose()
    assert not root.exists()
