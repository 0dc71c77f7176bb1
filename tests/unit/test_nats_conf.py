"""The shipped nats-server configurations are valid and partition commands the same way."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from julia_chips.config import load_config
from julia_chips.embedded.nats_server import nats_server_binary, render_conf

ROOT = Path(__file__).resolve().parents[2]
CONFS = [ROOT / "nats.conf", ROOT / "deploy" / "nats-cluster.conf"]
MAPPING = re.compile(r'"chip\.cmd\.\*":\s*"chip\.cmd\.\{\{partition\((\d+),1\)\}\}\.\{\{wildcard\(1\)\}\}"')


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.name)
def test_config_is_valid_and_maps_commands_to_the_default_partitions(conf: Path) -> None:
    checked = subprocess.run([nats_server_binary(), "-c", str(conf), "-t"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    found = MAPPING.search(conf.read_text())
    assert found and int(found.group(1)) == load_config({}).partitions


def test_embedded_render_sets_store_dir_and_partition_count(tmp_path: Path) -> None:
    rendered = render_conf((ROOT / "nats.conf").read_text(), tmp_path / "js", 4)
    assert f'store_dir: "{tmp_path / "js"}"' in rendered
    found = MAPPING.search(rendered)
    assert found and found.group(1) == "4"
