"""The environment `julia-chips run` needs to use a sandbox served by another process.

`julia-chips sandbox` writes it into the data folder (mode 0600, like the SSH key beside it)
instead of printing keys: a terminal's scrollback or a CI log is no place for a key, even a
sandbox's. `set -a; . .julia/sandbox.env; set +a` then points `run` at it.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

import msgspec

from julia_chips.sandbox.world import CLOUD_API_PIN, Sandbox

ENV_FILE = "sandbox.env"


def _private(path: Path, data: bytes) -> None:
    """Written readable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def sandbox_env(sandbox: Sandbox, folder: Path, public_url: str,
                env: Mapping[str, str]) -> dict[str, str]:
    """The variables for `run`; the SSH key and the host list go to files in `folder`."""
    assert sandbox.cloud_api is not None
    folder.mkdir(parents=True, exist_ok=True)
    key_file, hosts_file = folder / "sandbox_ssh_key", folder / "sandbox_hosts.json"
    _private(key_file, sandbox.vps_client_key.export_private_key())
    _private(hosts_file, msgspec.json.encode(sandbox.vps_hosts))
    return {
        "EVOLUTION_API_URL": sandbox.evolution_url,
        "EVOLUTION_API_KEY": sandbox.evolution_api_key,
        "SALVY_API_URL": sandbox.salvy_url,
        "SALVY_API_TOKEN": sandbox.salvy_token,
        "SALVY_WEBHOOK_SECRET": sandbox.salvy_webhook_secret,
        "CLOUD_API_URL": sandbox.cloud_api_url,
        "CLOUD_API_TOKEN": sandbox.cloud_api.token,
        "CLOUD_API_WABA_ID": sandbox.cloud_api.waba_id,
        "CLOUD_API_PIN": CLOUD_API_PIN,
        "CLOUD_API_APP_SECRET": sandbox.cloud_api.app_secret,
        # Meta's handshake is not played by the sandbox; set for `run` all the same.
        "CLOUD_API_VERIFY_TOKEN": env.get("CLOUD_API_VERIFY_TOKEN") or secrets.token_hex(16),
        "VPS_SSH_KEY": str(key_file.resolve()),
        "VPS_HOSTS_FILE": str(hosts_file.resolve()),
        "JULIA_PUBLIC_URL": public_url,
        "JULIA_WEBHOOK_SECRET": env.get("JULIA_WEBHOOK_SECRET") or secrets.token_hex(16),
        # Kept across sandbox restarts: ROUTE_EVENTS in `run`'s data folder holds opt-outs
        # under keys made with it, and a new one would forget them.
        "JULIA_PHONE_KEY": env.get("JULIA_PHONE_KEY") or _written(folder, "JULIA_PHONE_KEY")
        or secrets.token_hex(16),
    }


def _written(folder: Path, name: str) -> str | None:
    """`name` as the env file in `folder` holds it from an earlier run, if it does."""
    path = folder / ENV_FILE
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return shlex.split(value)[0] if value else None
    return None


def write_env_file(variables: Mapping[str, str], folder: Path) -> Path:
    """`NAME=value` lines, shell-quoted, in `folder/sandbox.env`; returns its path."""
    path = folder / ENV_FILE
    lines = "".join(f"{name}={shlex.quote(value)}\n" for name, value in variables.items())
    _private(path, lines.encode())
    return path
