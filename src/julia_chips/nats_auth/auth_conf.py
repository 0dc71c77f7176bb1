"""`nats-auth.conf`: the roles as nats-server users, with no secret in the file.

Each password is a `$JULIA_NATS_PASSWORD_<ROLE>` reference that nats-server resolves from its
own environment when it reads the file, so the same text serves a production node (secrets in
its unit's environment file) and the embedded server (passwords generated into the data
folder and handed to the child process). `deploy/nats-auth.conf` is this rendering, checked
by a test so the two never drift.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path

from julia_chips.nats_auth.roles import ROLES, Permissions

PASSWORDS_FILE = "nats-passwords.json"  # in the embedded server's data folder, mode 0600


def password_variable(role: str) -> str:
    return f"JULIA_NATS_PASSWORD_{role.upper().replace('-', '_')}"


def _subjects(subjects: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in subjects) + "]"


def _user(role: str, permissions: Permissions) -> str:
    return (f"    {{\n      user: {json.dumps(role)}\n"
            f"      password: ${password_variable(role)}\n"
            f"      permissions: {{\n"
            f"        publish: {{ allow: {_subjects(permissions.publish)} }}\n"
            f"        subscribe: {{ allow: {_subjects(permissions.subscribe)} }}\n"
            f"      }}\n    }}")


def render_auth_conf(roles: Mapping[str, Permissions] = ROLES) -> str:
    """The `authorization` block: one user per role; anyone else is refused."""
    users = "\n".join(_user(role, permissions) for role, permissions in roles.items())
    return ("# Generated from src/julia_chips/nats_auth/roles.py (docs/security.md); do not edit:\n"
            "# a test compares this file with that table. Passwords come from the server's\n"
            "# environment, one JULIA_NATS_PASSWORD_<ROLE> per role.\n"
            f"authorization {{\n  users = [\n{users}\n  ]\n}}\n")


def role_passwords(data_dir: Path) -> dict[str, str]:
    """The embedded server's password per role, generated once into `data_dir` (mode 0600)
    and kept, so clients of an earlier run still connect after a restart."""
    path = data_dir / PASSWORDS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    passwords = {role: known.get(role) or secrets.token_urlsafe(24) for role in ROLES}
    if passwords != known:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(passwords))
    return passwords
