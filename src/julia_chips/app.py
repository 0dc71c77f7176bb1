"""Wiring: start the parts that exist against the configured infrastructure, stop on a signal."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from aiohttp import web
from nats.aio.client import Client as NATS

from julia_chips.activation.wiring import activator_settings, run_activator
from julia_chips.balancer.dispatch import EvolutionSender
from julia_chips.balancer.runner import balancer_settings, run_balancer
from julia_chips.chip.partition import PartitionSettings
from julia_chips.chip.worker import Worker, new_worker_id
from julia_chips.clock import AcceleratedClock, Clock, SystemClock
from julia_chips.config import Config, ConfigError, require_local_servers
from julia_chips.db.migrate import migrate_url
from julia_chips.demo.driver import run_demo
from julia_chips.demo.model.script import DemoScript
from julia_chips.demo.timeline import demo_clock
from julia_chips.health.monitor import monitor_settings, run_health_monitor
from julia_chips.http.app import create_app
from julia_chips.http.auth import require_token_off_loopback
from julia_chips.http.keys import SUPERVISOR
from julia_chips.infrastructure import Endpoints, connect_nats, infrastructure, nats_identity
from julia_chips.ingest.deriver import ObservationDeriver, run_observation_deriver
from julia_chips.ingest.feedback import run_doctor_feedback
from julia_chips.ingest.webhooks import (
    WEBHOOK_ACCESS,
    WEBHOOK_INGRESS,
    WebhookIngress,
    webhook_routes,
)
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.operations.desk import OperationsDesk
from julia_chips.outside_world import OutsideWorld, outside_world, whatsapp_sender
from julia_chips.privacy import without_credentials
from julia_chips.projections.service import run_projections
from julia_chips.supervisor import PartFactory, SupervisionPolicy, Supervisor, run_until
from julia_chips.warmer.model.policy import WarmupPolicy
from julia_chips.warmer.scheduler import run_warmer_scheduler

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 10.0  # seconds each group of parts gets to stop on SIGINT/SIGTERM
ENDPOINTS_FILE = "endpoints.json"  # where `run` tells other commands its embedded servers


def partition_settings(config: Config) -> PartitionSettings:
    policy = WarmupPolicy(min_days=config.warmer_min_days, max_days=config.warmer_max_days)
    return PartitionSettings(ack_wait=config.ack_wait, max_deliver=config.max_deliver,
                             snapshot_every=config.snapshot_every,
                             idle_passivate=config.idle_passivate, policy=policy,
                             reply_prefixes=config.reply_prefixes)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


@asynccontextmanager
async def _one_part(config: Config, command: str) -> AsyncIterator[tuple[NATS, asyncio.Event]]:
    """NATS and a stop event (SIGINT/SIGTERM) for a command that runs one part against
    NATS_URL; the connection closes after the block (every message is acked or left for
    redelivery: nothing to drain)."""
    if config.nats_url is None:
        raise ConfigError(f"julia-chips {command} needs NATS_URL")
    # a signal meanwhile ends the process at once
    nc = await connect_nats(config.nats_url, nats_identity(config))
    stop = asyncio.Event()
    _stop_on_signals(stop)
    try:
        await ensure_streams(nc.jetstream(), config.replicas, config.lease_ttl,
                             config.ledger_max_age_days, config.stream_limits)
        log.info("%s started (NATS %s)", command, without_credentials(config.nats_url))
        yield nc, stop
    finally:
        await nc.close()


def _supervisor(config: Config) -> Supervisor:
    """Backoffs and /health's grace are process time: the wall clock, demo or not."""
    return Supervisor(SystemClock(), SupervisionPolicy(max_restarts=config.max_restarts))


def _workers(nc: NATS, clock: Clock, config: Config, stop: asyncio.Event,
             worker_id: str) -> PartFactory:
    """The chip workers as a part: a fresh `Worker` per start, under one id, so a restart
    leaves no second live worker in the fair share."""
    return lambda: run_until(Worker(nc, clock, config.partitions, config.lease_ttl,
                                    partition_settings(config), worker_id), stop)


async def run_worker(config: Config, worker_id: str | None = None,
                     clock: Clock | None = None) -> int:
    """Only chip workers, against NATS_URL (scaling out, and the crash tests); 1 when they
    could not recover (for systemd to restart the process)."""
    clock = clock or SystemClock()
    async with _one_part(config, "worker") as (nc, stop):
        worker_id = worker_id or new_worker_id()
        supervisor = _supervisor(config)
        task = supervisor.start("workers", _workers(nc, clock, config, stop, worker_id), stop)
        log.info("worker %s started", worker_id)
        recovered = await supervisor.until_stopped(stop)
        await task
    return 0 if recovered else 1


async def run_deriver(config: Config) -> int:
    """Only the observation deriver, against NATS_URL, while it holds the deriver's lease
    (standing by otherwise): for a `run --without deriver` beside it. 1 when it could not
    recover."""
    async with _one_part(config, "deriver") as (nc, stop):
        await ObservationDeriver(nc).prepare()
        supervisor = _supervisor(config)
        task = supervisor.start(
            "deriver", lambda: run_observation_deriver(nc, stop, config.lease_ttl), stop)
        recovered = await supervisor.until_stopped(stop)
        await task
    return 0 if recovered else 1


async def start_http(app: web.Application, port: int, host: str = "127.0.0.1"
                     ) -> tuple[web.AppRunner, int]:
    """Serve `app`; port 0 picks a free port. Returns the runner and the real port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


def _endpoints_path(config: Config) -> Path:
    return config.data_dir / ENDPOINTS_FILE


@asynccontextmanager
async def endpoints_for(config: Config) -> AsyncIterator[Endpoints]:
    """For one-off commands: the configured URLs, else the servers a running `julia-chips
    run` left in the data folder, else embedded servers started for this command."""
    if config.nats_url and config.database_url:
        yield Endpoints(nats_url=config.nats_url, database_url=config.database_url)
        return
    found = await running_endpoints(config)
    if found is not None:
        yield Endpoints(nats_url=config.nats_url or found.nats_url,
                        database_url=config.database_url or found.database_url)
        return
    async with infrastructure(config) as started:
        yield started


async def running_endpoints(config: Config) -> Endpoints | None:
    """The embedded servers of a live `run`; None when the file is missing or stale."""
    path = _endpoints_path(config)
    if not path.exists():
        return None
    found = msgspec.json.decode(path.read_bytes(), type=Endpoints)
    host, _, port = found.nats_url.rpartition("@")[2].rpartition("/")[2].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1)
    except (OSError, ValueError, TimeoutError):
        return None
    writer.close()
    return found


def _announce(config: Config, endpoints: Endpoints) -> None:
    """Only fully embedded servers are written down: a given URL may carry a password. An
    embedded one does with JULIA_NATS_AUTH=on (admin's), so the file is the owner's only,
    like the passwords beside it."""
    if config.nats_url is None and config.database_url is None:
        path = _endpoints_path(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(msgspec.to_builtins(endpoints)))


def domain_clock(config: Config) -> Clock:
    """The time of chips and doctors: the demo's accelerated clock (JULIA_DEMO), else the
    wall's. Process time (leases, supervision, timeouts) is always the wall's."""
    return demo_clock(config.data_dir, config.demo_speed) if config.demo else SystemClock()


async def run_all(config: Config, without: frozenset[str] = frozenset()) -> int:
    """Every part, until SIGINT/SIGTERM: workers, projections, HTTP (read API + webhooks),
    warmer scheduler, health monitor, observation deriver, doctor feedback, balancer,
    activator, and the
    sandbox when no outside service is configured, with the demo fleet on it unless
    JULIA_DEMO=off. 1 when a part could not recover after
    `config.max_restarts` restarts (for systemd to restart the process).

    :param without: parts run by processes of their own (cli.SEPARABLE_PARTS).
    """
    require_token_off_loopback(config)  # before anything starts
    if config.uses_sandbox:
        require_local_servers(config)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with infrastructure(config) as endpoints:
        _announce(config, endpoints)
        config = msgspec.structs.replace(config, nats_url=endpoints.nats_url,
                                         database_url=endpoints.database_url)
        applied = await migrate_url(endpoints.database_url)
        log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
        nc = await connect_nats(endpoints.nats_url, nats_identity(config))
        await ensure_streams(nc.jetstream(), config.replicas, config.lease_ttl,
                             config.ledger_max_age_days, config.stream_limits)
        clock = domain_clock(config)
        async with outside_world(config, clock) as world, whatsapp_sender(world) as sender:
            recovered = await _serve(config, clock, nc, world, sender, stop, without)
        _endpoints_path(config).unlink(missing_ok=True)
        await nc.close()  # every command is acked or left for redelivery: nothing to drain
    return 0 if recovered else 1


async def _serve(config: Config, clock: Clock, nc: NATS, world: OutsideWorld,
                 sender: EvolutionSender, stop: asyncio.Event, without: frozenset[str]) -> bool:
    """Every part under one supervisor until `stop`; False when a part was given up."""
    supervisor = _supervisor(config)
    app = create_app(config, clock, nc=nc, routes=webhook_routes(), route_access=WEBHOOK_ACCESS)
    app[SUPERVISOR] = supervisor
    app[WEBHOOK_INGRESS] = WebhookIngress(nc.jetstream(), clock,
                                          evolution_secret=world.webhook_secret,
                                          salvy_secret=world.salvy_webhook_secret,
                                          cloud_api_secret=world.cloud_api_app_secret,
                                          cloud_api_verify_token=world.cloud_api_verify_token,
                                          clock_speed=_speed(clock))
    # Before the first webhook, so every stored body gets its observation, whichever process
    # holds the deriver's lease.
    await ObservationDeriver(nc).prepare()
    http, port = await start_http(app, config.http_port, config.http_host)
    http_url = f"http://{config.http_host}:{port}"
    world.listen_at(http_url)
    log.info("HTTP read API and webhooks on %s", http_url)
    answered = asyncio.Event()  # the workers' stop: once nothing sends them commands any more
    parts = _parts(config, clock, nc, world, sender, http_url, stop, answered)
    for name in without:
        del parts[name]
    if isinstance(clock, AcceleratedClock):
        clock.begin()
    if without:
        log.info("left to their own processes: %s", ", ".join(sorted(without)))
    tasks = {name: supervisor.start(name, part, stopping)
             for name, (part, stopping) in parts.items()}
    log.info("julia-chips running (NATS %s); Ctrl-C to stop",
             without_credentials(config.nats_url or ""))
    log.info(where_to_look(config, http_url))
    recovered = await supervisor.until_stopped(stop)
    log.info("stopping")
    if "demo" in tasks:  # it asks the balancer and the chips: before them
        await _stop_within([tasks.pop("demo")], cancel=False)
    # Those that send commands stop before the workers that answer them. The activator,
    # monitor, deriver and projections end on `stop`, not by cancellation: they release
    # their leases.
    await asyncio.gather(_stop_within([tasks.pop("balancer")], cancel=True),
                         _stop_within([tasks.pop("activator")], cancel=False))
    answered.set()
    await _stop_within(list(tasks.values()), cancel=False)
    await http.cleanup()
    return recovered


def _parts(config: Config, clock: Clock, nc: NATS, world: OutsideWorld,
           sender: EvolutionSender, http_url: str, stop: asyncio.Event,
           answered: asyncio.Event) -> dict[str, tuple[PartFactory, asyncio.Event]]:
    """Every part of `run` by name, with the event that ends it."""
    assert config.database_url is not None
    database_url, ttl = config.database_url, config.lease_ttl
    endpoints = world.activator_endpoints(config, http_url)
    monitor = monitor_settings(config)
    # An SMS or a pairing takes real seconds on any clock.
    chosen = activator_settings(config)  # JULIA_REGISTRAR's registrar for new chips
    activation = msgspec.structs.replace(chosen, policy=chosen.policy.scaled(_speed(clock)))
    parts: dict[str, tuple[PartFactory, asyncio.Event]] = {
        "workers": (_workers(nc, clock, config, answered, new_worker_id()), answered),
        "projections": (lambda: run_projections(nc, database_url, stop, ttl), stop),
        "warmer scheduler": (lambda: run_warmer_scheduler(nc, clock, stop), stop),
        "health monitor": (lambda: run_health_monitor(nc, clock, stop, ttl, monitor), stop),
        "deriver": (lambda: run_observation_deriver(nc, stop, ttl), stop),
        # replies and receipts: idempotent, so no lease (ingest/feedback.py)
        "doctor feedback": (lambda: run_doctor_feedback(nc, clock, stop), stop),
        "balancer": (lambda: run_balancer(nc, clock, config, sender), stop),  # cancelled
        "activator": (lambda: run_activator(nc, clock, config, stop, endpoints=endpoints,
                                            settings=activation), stop),
        # operator requests on ops.cmd.>: a queue group, so no lease (operations/desk.py)
        "operations": (lambda: run_until(OperationsDesk(nc, clock, config.reply_prefixes,
                                                           config.phone_key.encode()),
                                         stop), stop),
    }
    sandbox = world.sandbox
    if config.demo and sandbox is not None and isinstance(clock, AcceleratedClock):
        demo_clock_ = clock
        script = DemoScript(chips=config.demo_chips, doctors=config.demo_doctors,
                            protection=balancer_settings(config).protection)
        parts["demo"] = (lambda: run_demo(nc, demo_clock_, sandbox, script, config.data_dir,
                                          stop), stop)
    return parts


def _speed(clock: Clock) -> float:
    """How much faster than the wall `clock` runs: 1 but for the demo's."""
    return clock.speed if isinstance(clock, AcceleratedClock) else 1.0


def where_to_look(config: Config, http_url: str) -> str:
    """What `run` tells a person once everything is up: where to look, and what next. A
    token is named, never shown."""
    tokens = [var for var, value in (("JULIA_API_TOKEN", config.api_token),
                                     ("JULIA_OPERATOR_TOKEN", config.operator_token)) if value]
    token = (f"Authorization: Bearer ${' or $'.join(tokens)}" if tokens
             else "no token: loopback only")
    data_dir = "" if config.data_dir == Config().data_dir else f"JULIA_DATA_DIR={config.data_dir} "
    lines = [f"dashboard  {http_url}/",
             f"HTTP API   {http_url} ({http_url}/openapi.json), {token}",
             f"NATS       {without_credentials(config.nats_url or '')}",
             f"next       {data_dir}julia-chips chip list"]
    if config.demo:
        day = 86_400 / config.demo_speed
        lines.append(f"demo       {config.demo_chips} chips, {config.demo_doctors} sandbox "
                     f"doctors, a warm day every {day:.3g}s (JULIA_DEMO=off: no demo)")
    return "where to look:\n  " + "\n  ".join(lines)


async def _stop_within(tasks: list[asyncio.Task[None]], cancel: bool) -> None:
    """Let `tasks` end for up to SHUTDOWN_GRACE seconds, cancelling them if asked.

    Cancellation is repeated: on Python 3.11 `asyncio.wait_for` (used throughout nats-py)
    can swallow a cancel that races with its inner future, and a loop then goes on.
    """
    deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
    pending = set(tasks)
    while pending and asyncio.get_running_loop().time() < deadline:
        if cancel:
            for task in pending:
                task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in pending:
        log.warning("%s did not stop within %ss", task.get_name(), SHUTDOWN_GRACE)
