"""The `julia-chips` console script: one entry point for every part of the system."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys

import uvloop

from julia_chips.cli import brake, chips, dlq, doctors, events, routes, sends
from julia_chips.cli.output import Output, common_options
from julia_chips.cli.system import SystemUnreachable, reach_system
from julia_chips.config import Config, ConfigError, load_config, require_local_servers
from julia_chips.demo.timeline import clock_of

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Parts `run` can leave to processes of their own, each started by its own command (`worker`,
# `projections run`, `deriver`): so the HTTP edge, say, can have a core to itself.
SEPARABLE_PARTS = ("workers", "projections", "deriver")
SERVICES = ("run", "worker", "deriver", "sandbox")  # commands that run until stopped
# The operator's command groups, each `add_commands(sub, common)`, leaves setting `act`.
OPERATOR_GROUPS = (chips, routes, events, dlq, sends, doctors, brake)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="julia-chips", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_all = sub.add_parser(
        "run", help="run every part (embedded NATS/PostgreSQL unless URLs are set)")
    run_all.add_argument("--without", action="append", default=[], choices=SEPARABLE_PARTS,
                         help="a part that runs in a process of its own (repeatable)")
    worker = sub.add_parser("worker", help="run only chip workers against NATS_URL")
    worker.add_argument("--worker-id", default=None)
    sub.add_parser("deriver", help="run only the observation deriver against NATS_URL")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("migrate", help="apply the SQL migrations that are missing")
    proj = sub.add_parser("projections", help="read-model projections").add_subparsers(
        dest="projections", required=True)
    rebuild = proj.add_parser("rebuild", help="empty read models and replay their stream")
    rebuild.add_argument("name", nargs="?", default=None,
                         help="one projection (and those depending on it); default: all")
    run = proj.add_parser("run", help="run only the projections")
    run.add_argument("--batch", type=int, default=1000, help="events per transaction")
    audit = sub.add_parser("audit", help="a chip's history, checked against its read model")
    audit.add_argument("chip_id")
    sandbox = sub.add_parser("sandbox", help="serve the stand-ins for Evolution, Salvy, the "
                                             "Cloud API and VPS hosts on 127.0.0.1")
    sandbox.add_argument("--public-url", default="http://127.0.0.1:8000",
                         help="where `julia-chips run` takes webhooks (its JULIA_PUBLIC_URL)")
    sandbox.add_argument("--salvy-webhook-url", default=None,
                         help="where SMS webhooks go (default: <public url>/webhooks/salvy)")
    sandbox.add_argument("--hosts", type=int, default=10)
    sandbox.add_argument("--doctors", type=int, default=50)
    common = common_options()
    for group in OPERATOR_GROUPS:
        group.add_commands(sub, common)
    return parser


async def _operate(config: Config, args: argparse.Namespace) -> int:
    """One operator command against the running system (`cli/system.py`)."""
    out = Output(args.json)
    try:
        # the demo's "now" while a demo `run` uses this data folder: its brake, its week
        async with reach_system(config, clock_of(config.data_dir, config.demo)) as system:
            code: int = await args.act(system, out, args)
            return code
    except SystemUnreachable as err:
        return out.unreachable(str(err))


async def _operator_command(config: Config, args: argparse.Namespace) -> int:
    from julia_chips import app
    from julia_chips.cli import projections as commands
    from julia_chips.infrastructure import nats_identity

    async with app.endpoints_for(config) as endpoints:
        if args.command == "db":
            return await commands.db_migrate(endpoints)
        if args.command == "audit":
            return await commands.audit(endpoints, args.chip_id,
                                        identity=nats_identity(config))
        if args.projections == "rebuild":
            return await commands.projections_rebuild(endpoints, args.name,
                                                      nats_identity(config))
        return await commands.projections_run(endpoints, args.batch, config)


async def _sandbox(args: argparse.Namespace, config: Config) -> int:
    """Serve the sandbox; write what `run` in another process needs to use it into the data
    folder (keys taken from the environment when set there, random otherwise)."""
    from julia_chips.sandbox.env_file import sandbox_env, write_env_file
    from julia_chips.sandbox.serve import serve_sandbox
    from julia_chips.sandbox.world import Sandbox, SandboxKeys

    require_local_servers(config)
    public_url = args.public_url.rstrip("/")

    async def announce(sandbox: Sandbox) -> None:
        variables = sandbox_env(sandbox, config.data_dir, public_url, os.environ)
        path = write_env_file(variables, config.data_dir)
        log.info("sandbox doctors listed at %s/sandbox/doctors (apikey EVOLUTION_API_KEY)",
                 sandbox.evolution_url)
        log.info("environment for `julia-chips run` written to %s: set -a; . %s; set +a",
                 path, path)

    with contextlib.suppress(asyncio.CancelledError):
        await serve_sandbox(salvy_webhook_url=args.salvy_webhook_url
                            or f"{public_url}/webhooks/salvy",
                            cloud_api_webhook_url=f"{public_url}/webhooks/cloud-api",
                            hosts=args.hosts,
                            doctors=args.doctors, keys=SandboxKeys.from_env(os.environ),
                            ready=announce)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    operator = hasattr(args, "act")  # their answers, not the libraries' logs, on the terminal
    logging.basicConfig(level=logging.WARNING if operator else logging.INFO, format=LOG_FORMAT)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per SSH session
    try:
        config = load_config()
        return _run(args, config)
    except ConfigError as err:
        print(f"julia-chips: configuration error: {err}", file=sys.stderr)
        return 2


def freeze_startup_heap() -> None:
    """What the imports built (modules, classes, msgspec types) lives as long as the process:
    frozen, it is left out of every full collection, which otherwise walks it (30-40 ms on
    a busy 2-core box, while every request in flight waits)."""
    gc.collect()
    gc.freeze()
    log.info("startup heap frozen: %d objects left out of garbage collection",
             gc.get_freeze_count())


def _run(args: argparse.Namespace, config: Config) -> int:
    from julia_chips import app  # heavy imports only once the config is known good

    if args.command in SERVICES:
        freeze_startup_heap()
    if args.command == "run":
        return uvloop.run(app.run_all(config, frozenset(args.without)))
    if args.command == "worker":
        return uvloop.run(app.run_worker(config, args.worker_id))
    if args.command == "deriver":
        return uvloop.run(app.run_deriver(config))
    if args.command == "sandbox":
        return uvloop.run(_sandbox(args, config))
    if hasattr(args, "act"):
        return uvloop.run(_operate(config, args))
    return uvloop.run(_operator_command(config, args))
