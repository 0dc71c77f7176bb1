"""The shipped nats-server configurations are valid and partition commands the same way."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from julia_chips.config import load_config
from julia_chips.embedded.nats_server import NATS_CONF, nats_server_binary, render_conf
from julia_chips.nats_auth.auth_conf import password_variable, render_auth_conf
from julia_chips.nats_auth.roles import ROLES
from tests.tls_certificates import self_signed

ROOT = Path(__file__).resolve().parents[2]
CONFS = [NATS_CONF, ROOT / "deploy" / "nats-cluster.conf"]
MAPPING = re.compile(r'"chip\.cmd\.\*":\s*"chip\.cmd\.\{\{partition\((\d+),1\)\}\}\.\{\{wildcard\(1\)\}\}"')


def _self_signed(folder: Path) -> dict[str, str]:
    """A node's TLS files, as deploy/nats-cluster.conf reads them from the environment."""
    cert, key = self_signed(folder)
    return {"NATS_SERVER_TLS_CERT": str(cert), "NATS_SERVER_TLS_KEY": str(key),
            "NATS_SERVER_TLS_CA": str(cert)}


def _check(conf: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([nats_server_binary(), "-c", str(conf), "-t"], env=env,
                          capture_output=True, text=True, check=False)


PASSWORDS = {password_variable(role): '"a-password"' for role in ROLES}


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.name)
def test_config_is_valid_and_maps_commands_to_the_default_partitions(
        conf: Path, tmp_path: Path) -> None:
    checked = _check(conf, PASSWORDS | _self_signed(tmp_path))
    assert checked.returncode == 0, checked.stderr
    found = MAPPING.search(conf.read_text())
    assert found and int(found.group(1)) == load_config({}).partitions


def test_embedded_render_sets_store_dir_and_partition_count(tmp_path: Path) -> None:
    rendered = render_conf(NATS_CONF.read_text(), tmp_path / "js", 4)
    assert f'store_dir: "{tmp_path / "js"}"' in rendered
    found = MAPPING.search(rendered)
    assert found and found.group(1) == "4"


def test_the_deploy_users_are_the_roles_table_and_hold_no_secret() -> None:
    shipped = (ROOT / "deploy" / "nats-auth.conf").read_text()
    assert shipped == render_auth_conf()
    assert re.findall(r"password: (\S+)", shipped) == [
        f"${password_variable(role)}" for role in ROLES]


def test_the_cluster_config_does_not_start_open(tmp_path: Path) -> None:
    """Closed by default: without a password per role, or without TLS files, no start."""
    tls = _self_signed(tmp_path)
    no_password = _check(CONFS[1], tls)
    assert no_password.returncode != 0
    assert "JULIA_NATS_PASSWORD_" in no_password.stderr
    no_tls = _check(CONFS[1], PASSWORDS)
    assert no_tls.returncode != 0 and "NATS_SERVER_TLS_" in no_tls.stderr
