"""The `julia-chips` console script: one entry point for every part of the system."""

from __future__ import annotations

import argparse
import logging
import sys

import uvloop

from julia_chips.config import ConfigError, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="julia-chips", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run every part (embedded NATS/PostgreSQL unless URLs are set)")
    worker = sub.add_parser("worker", help="run only chip workers against NATS_URL")
    worker.add_argument("--worker-id", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        config = load_config()
    except ConfigError as err:
        print(f"julia-chips: configuration error: {err}", file=sys.stderr)
        return 2
    from julia_chips import app  # heavy imports only once the config is known good

    if args.command == "run":
        return uvloop.run(app.run_all(config))
    if args.command == "worker":
        return uvloop.run(app.run_worker(config, args.worker_id))
    return 2
