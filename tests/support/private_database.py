"""A PostgreSQL or MariaDB server of a test's own, which it can stop and start again.

The suite's shared servers (`tests.support.databases`) must never be restarted: other
tests, and other people, use them. A test that needs a database server to go away
and come back starts its own here: a fresh data directory under /tmp, a free port on
127.0.0.1, no authentication (PostgreSQL's `trust`, MariaDB's `--skip-grant-tables`).
`stop()` ends the server (`immediate`: as a crash would, open transactions lost and
recovery at the next start; `fast`: a clean shutdown), and `start()` brings it back
on the same port and data.

Nothing is synced to disk (`fsync=off`; InnoDB's log synced once a second), which
only a crash of the machine, not of the server, would show. But a commit is still
written out before it is answered: with PostgreSQL's `synchronous_commit=off` (or
InnoDB's `innodb_flush_log_at_trx_commit=0`) a server stopped as by a crash lost the
last uploads it had answered, and their events.

Debian's binaries: `postgresql` (/usr/lib/postgresql/*/bin/initdb and pg_ctl), run as
the `postgres` user since PostgreSQL refuses root; `mariadb-server`
(/usr/bin/mariadb-install-db, /usr/sbin/mariadbd), run with `--user=root`. Without
them a test fails in CI and skips elsewhere (`tests.support.databases.unavailable`).
Whatever happens in the test, the server is killed and its directory removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from tests.support.databases import unavailable
from tests.support.moto import restartable_port

Mode = Literal["fast", "immediate"]

MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
MARIADBD = "/usr/sbin/mariadbd"
DATABASE = "seau"
"""The database made on the server, named in `PrivateServer.url`."""


def _postgresql_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _wait_for_port(port: int, *, seconds: float, alive: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the server exited {alive.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


class PrivateServer:
    """A server of the test's own; `url` is the async SQLAlchemy URL of its database."""

    kind: Literal["mysql", "postgresql"]
    port: int
    root: Path

    def __init__(self, root: Path) -> None:
        self.root = root
        # Not one the kernel hands out: while the server is down, no server of a
        # parallel worker is given it.
        self.port = restartable_port()

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server on its port and data, and return once it accepts connections."""
        raise NotImplementedError

    def stop(self, mode: Mode = "immediate") -> None:
        """Stop the server and return once it is gone."""
        raise NotImplementedError

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


class PrivatePostgreSQL(PrivateServer):
    kind = "postgresql"

    def __init__(self, root: Path, bin_dir: Path) -> None:
        super().__init__(root)
        self.bin = bin_dir
        self.data = root / "data"
        self._user = pwd.getpwnam("postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run as the `postgres` user when the tests are root (initdb refuses root)."""
        as_user = os.getuid() == 0
        return subprocess.run(
            [str(c) for c in command],
            user=self._user.pw_uid if as_user else None,
            group=self._user.pw_gid if as_user else None,
            extra_groups=[] if as_user else None,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def init(self) -> None:
        if os.getuid() == 0:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
            "--no-sync", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nfull_page_writes = off\n"
                "shared_buffers = 16MB\nmax_connections = 50\n"
            )
        self.start()
        self._run(self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                  "postgres", DATABASE)  # fmt: skip

    @property
    def running(self) -> bool:
        return (
            self._run(self.bin / "pg_ctl", "status", "-D", self.data, check=False).returncode == 0
        )

    def start(self) -> None:
        self._run(
            self.bin / "pg_ctl", "start", "-D", self.data, "-w", "-t", "30",
            "-l", self.root / "server.log",
        )  # fmt: skip
        _wait_for_port(self.port, seconds=30, alive=None)

    def stop(self, mode: Mode = "immediate") -> None:
        self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "30")

    def kill(self) -> None:
        """However things went: the postmaster (its children follow) is gone."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", "immediate", check=False)
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class PrivateMariaDB(PrivateServer):
    kind = "mysql"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.data = root / "data"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql+aiomysql://root@127.0.0.1:{self.port}/{DATABASE}?charset=utf8mb4"

    def init(self) -> None:
        subprocess.run(
            [
                MARIADB_INSTALL_DB, "--no-defaults", "--user=root", f"--datadir={self.data}",
                "--auth-root-authentication-method=normal", "--skip-test-db",
                "--skip-name-resolve",
            ],
            cwd=self.root, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        self.start()
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        finally:
            connection.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.running
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    MARIADBD, "--no-defaults", "--user=root", f"--datadir={self.data}",
                    f"--socket={self.root / 'mariadb.sock'}", f"--port={self.port}",
                    "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mariadbd.pid'}",
                    "--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin",
                    "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
                    "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                    "--max-connections=100", f"--log-error={self.root / 'server.log'}",
                ],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            )  # fmt: skip
        _wait_for_port(self.port, seconds=60, alive=self.process)

    def stop(self, mode: Mode = "immediate") -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
        self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=30)


@contextmanager
def private_database(kind: Literal["mysql", "postgresql"]) -> Iterator[PrivateServer]:
    """A server of ``kind``, started, with an empty database `seau` (``.url``)."""
    server: PrivatePostgreSQL | PrivateMariaDB
    # Under /tmp itself, not pytest's tmp_path: its parents are root's alone (0700),
    # where PostgreSQL, running as `postgres`, could not reach its data.
    root = Path(tempfile.mkdtemp(prefix=f"seau-private-{kind}-"))
    try:
        if kind == "postgresql":
            bin_dir = _postgresql_bin()
            if bin_dir is None or not (bin_dir / "initdb").exists():
                unavailable("PostgreSQL's initdb and pg_ctl are not installed")
            assert bin_dir is not None
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("no `postgres` user to run a private PostgreSQL as")
            server = PrivatePostgreSQL(root, bin_dir)
        else:
            if not (os.path.exists(MARIADB_INSTALL_DB) and os.path.exists(MARIADBD)):
                unavailable("MariaDB's mariadb-install-db and mariadbd are not installed")
            server = PrivateMariaDB(root)
        try:
            try:
                server.init()
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                output = getattr(exc, "stderr", "") or ""
                log = server.log()
                raise RuntimeError(f"{kind} did not start: {exc}\n{output}\n{log}") from exc
            yield server
        finally:
            server.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)
