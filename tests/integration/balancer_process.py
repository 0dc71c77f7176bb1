"""One balancer process (leader or standby) with an in-memory gateway, which journals its
sends to a file when given one, so a test can SIGKILL the process and still count what it
sent; `bench/routing.py` runs it too.

`python -m tests.integration.balancer_process --holder NAME [--gateway-journal PATH]`
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

import uvloop

from julia_chips.balancer.runner import run_balancer
from julia_chips.clock import SystemClock
from julia_chips.config import load_config
from julia_chips.infrastructure import connect_nats
from tests.fakes import FakeSender


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
