"""One activator process as `julia-chips run` holds it (holder or standby of the activator's
lease, `activation/wiring.run_activator`) whose outside world is nowhere: for timing the
lease's takeover (`bench/takeover.py`), where no chip is provisioned and so no outside call
is made. (`activator_process.py` runs the activator alone, without its lease, to be killed
mid-step.)

`python -m tests.integration.activator_lease_process --holder NAME`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import uvloop

from julia_chips.activation.wiring import ActivatorEndpoints, run_activator
from julia_chips.clock import SystemClock
from julia_chips.config import load_config
from julia_chips.infrastructure import connect_nats

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers
ENDPOINTS = ActivatorEndpoints(
    salvy_url=NOWHERE, salvy_token="-", evolution_url=NOWHERE, evolution_api_key="-",
    cloud_api_url=NOWHERE, cloud_api_token="-", cloud_api_waba_id="-", cloud_api_pin="-",
    hosts=[], ssh_keys=[], webhook_url=NOWHERE, webhook_secret="-")


def start_activator(nats_url: str, holder: str, log: Path,
                    lease_ttl: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": nats_url, "JULIA_LEASE_TTL": str(lease_ttl)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.activator_lease_process", "--holder", holder],
            env=env, stdout=out, stderr=subprocess.STDOUT)


async def _main(holder: str) -> None:
    config = load_config()
    if not config.nats_url:
        raise SystemExit("NATS_URL must be set")
    nc = await connect_nats(config.nats_url)
    await run_activator(nc, SystemClock(), config, asyncio.Event(), endpoints=ENDPOINTS,
                        holder=holder)


def main() -> None:
    parser = argparse.ArgumentParser(description="one activator with nowhere to call")
    parser.add_argument("--holder", required=True, help="its name in the lease")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_main(args.holder))


if __name__ == "__main__":
    main()
