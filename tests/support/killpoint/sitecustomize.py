"""A kill point for real `seau serve` processes (`tests.support.server.kill_after_commit`).

Python imports this module at start-up when its directory is on ``PYTHONPATH``. With
``SEAU_TEST_KILL_AFTER_COMMIT_OF`` naming a table, the process sends itself SIGKILL
right after the commit of the first transaction that inserted into that table, at the
point in seau's own code where the session's commit has returned: the change is in
the database, and nothing that was to follow it in the process ran. Without the
variable it does nothing. SQLAlchemy's events mark the point; nothing of seau is
replaced.
"""

from __future__ import annotations

import os

_TABLE = os.environ.get("SEAU_TEST_KILL_AFTER_COMMIT_OF")

if _TABLE:
    import re
    import signal
    import weakref
    from typing import Any

    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, SessionTransaction

    _INSERT = re.compile(rf"\s*INSERT\s+INTO\s+[`\"]?{re.escape(_TABLE)}[`\"]?[\s(]", re.IGNORECASE)
    _SESSION = "seau_test_session"
    _ARMED = "seau_test_kill_after_commit"

    @event.listens_for(Session, "after_begin")
    def _remember(
        session: Session, transaction: SessionTransaction, connection: Connection
    ) -> None:
        # The session now working on this connection (one at a time), to mark it
        # when the connection runs the insert.
        connection.info[_SESSION] = weakref.ref(session)

    @event.listens_for(Engine, "before_cursor_execute")
    def _watch(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if not _INSERT.match(statement):
            return
        ref = conn.info.get(_SESSION)
        session = ref() if ref is not None else None
        if session is not None:
            session.info[_ARMED] = True

    @event.listens_for(Session, "after_commit")
    def _kill(session: Session) -> None:
        if session.info.pop(_ARMED, False):
            os.kill(os.getpid(), signal.SIGKILL)
