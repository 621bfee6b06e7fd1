"""The quota invariant, read straight from the database: for every owner, the usage
row's `used` is the sum of their ready files, its `reserved` the sum of their
reservations, and no reservation outlives its upload."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def check_invariant(database_url: str, *, live_uploads_only: bool = True) -> dict[str, int]:
    """Asserts the invariant; returns counts for the caller to assert more
    (`reservations`: how many are held)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT u.owner_id, u.used_bytes, u.used_files, u.reserved_bytes, "
                        "u.reserved_files, "
                        "(SELECT COALESCE(SUM(f.size), 0) FROM user_file f "
                        " WHERE f.owner_id = u.owner_id AND f.state = 'ready'), "
                        "(SELECT COUNT(*) FROM user_file f "
                        " WHERE f.owner_id = u.owner_id AND f.state = 'ready'), "
                        "(SELECT COALESCE(SUM(r.bytes), 0) FROM quota_reservation r "
                        " WHERE r.owner_id = u.owner_id), "
                        "(SELECT COALESCE(SUM(r.files), 0) FROM quota_reservation r "
                        " WHERE r.owner_id = u.owner_id) "
                        "FROM owner_usage u"
                    )
                )
            ).all()
            for owner, used, files, reserved, reserved_files, *counted in rows:
                ready_bytes, ready_files, held_bytes, held_files = (int(v) for v in counted)
                assert (int(used), int(files)) == (ready_bytes, ready_files), owner
                assert (int(reserved), int(reserved_files)) == (held_bytes, held_files), owner
            without_owner_row = await connection.scalar(
                text(
                    "SELECT COUNT(*) FROM user_file f WHERE f.state = 'ready' AND NOT EXISTS "
                    "(SELECT 1 FROM owner_usage u WHERE u.owner_id = f.owner_id)"
                )
            )
            assert without_owner_row == 0
            orphans = await connection.scalar(
                text(
                    "SELECT COUNT(*) FROM quota_reservation r WHERE NOT EXISTS "
                    "(SELECT 1 FROM upload x WHERE x.id = r.id AND x.state <> 'done')"
                )
            )
            if live_uploads_only:
                assert orphans == 0, "a reservation outlived its upload"
            held = await connection.scalar(text("SELECT COUNT(*) FROM quota_reservation"))
            return {"owners": len(rows), "reservations": int(held or 0)}
    finally:
        await engine.dispose()
