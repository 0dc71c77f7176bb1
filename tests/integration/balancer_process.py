"""One balancer process (leader or standby) with an in-memory gateway, which journals its
sends to a file when given one, so a test can SIGKILL the process and still count what it
sent; `bench/routing.py` runs it too.

`python -m tests.integration.balancer_process --holder NAME [--gateway-journal PATH]`
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import uvloop

from julia_chips.balancer.runner import run_balancer
from julia_chips.clock import SystemClock
from julia_chips.config import load_config
from julia_chips.infrastructure import connect_nats
from tests.conftest import LEASE_TTL
from tests.fakes import FakeSender


def start_balancer(nats_url: str, holder: str, tmp: Path,
                   lease_ttl: float = LEASE_TTL) -> subprocess.Popen[bytes]:
    """This module as its own OS process, so a test can SIGKILL or SIGSTOP it; its log and
    its gateway journal go to `tmp`."""
    env = {**os.environ, "NATS_URL": nats_url, "JULIA_LEASE_TTL": str(lease_ttl),
           "JULIA_ACK_WAIT": "3", "MAX_CHIPS_ACTIVE": "10"}
    with (tmp / f"{holder}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.balancer_process", "--holder", holder,
             "--gateway-journal", str(tmp / f"{holder}.sent")],
            env=env, stdout=out, stderr=subprocess.STDOUT)


async def _main(journal: Path | None, holder: str) -> None:
    config = load_config()
    if not config.nats_url:
        raise SystemExit("NATS_URL must be set")
    nc = await connect_nats(config.nats_url)
    await run_balancer(nc, SystemClock(), config, FakeSender(journal), holder)


def main() -> None:
    parser = argparse.ArgumentParser(description="one balancer with a journalling fake gateway")
    parser.add_argument("--gateway-journal", type=Path, default=None)
    parser.add_argument("--holder", required=True, help="its name in the lease")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_main(args.gateway_journal, args.holder))  # as `julia-chips run` does


if __name__ == "__main__":
    main()
