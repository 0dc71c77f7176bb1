"""The system on a real 3-node NATS cluster at JULIA_REPLICAS=3 (issue 17): a writer reads
its own appends, and under command and routing load the node leading CHIP_EVENTS and a
worker process are SIGKILLed and brought back. Every answered command has its events exactly
once, the read models equal a rebuild, routing answers throughout, and the node catches up.

`-m cluster` selects these; the default run (`make test`) includes them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.contract.route import ReplyStatus, RouteReply
from julia_chips.contract.subjects import Stream
from julia_chips.db.migrate import migrate_url
from julia_chips.embedded.nats_cluster import NatsCluster
from julia_chips.jetstream.follower import replay
from julia_chips.jetstream.stored_chip_event import chip_event_of
from julia_chips.projections.rebuild import rebuild
from julia_chips.projections.service import Projections
from tests.conftest import PARTITIONS, new_chip_id
from tests.fakes import FakeSender
from tests.integration.balancer_harness import seed_chip
from tests.integration.cluster_fixtures import (
    another_database,
    cluster,  # noqa: F401 (fixture)
    cluster_nc,  # noqa: F401 (fixture)
    node_named,
    stream_leader,
    supervised_balancer,
    until_current,
)
from tests.integration.test_crash import lease_holders
from tests.integration.test_projections_lifecycles import caught_up, checksums
from tests.integration.workers import kill, start_worker_process
from tests.unit.balancer_builders import chip_history

pytestmark = [pytest.mark.cluster, pytest.mark.own_nats_server]
log = logging.getLogger(__name__)

PHONE = "+5511987654321"
LOAD_CHIPS = 16  # chips the command load drives, one command at a time each
ROUTE_DRIVERS = 2  # route requests in flight at once
PACE = 0.02  # seconds a chip's sender waits between commands: a load, not a flood
ANSWER_WAIT = 3.0  # a sender's timeout before it sends the same command again
MAX_ROUTE_SILENCE = 20.0  # seconds routing may go without an answer across the kills
RETRIED = (TimeoutError, nats.errors.Error)  # what a sender meets while a node is away
R = TypeVar("R")


async def test_a_writer_reads_its_own_append_on_a_cluster(cluster_nc: NATS) -> None:  # noqa: F811
    """Right after an acked append, the chip's log reads it back: a direct get answered by a
    follower behind the leader (1 to 3 in 100 here) made the activator drop sagas."""
    await asyncio.sleep(3.0)  # followers serve direct gets once a 2 s check finds them current
    log = JetStreamChipEventLog(cluster_nc.jetstream())
    missed = 0
    for _ in range(300):
        chip = new_chip_id()
        provisioned = chip_history(chip, Status.PROVISIONING, 100)[0]
        [seq] = await log.append(chip, [provisioned], 0)
        history = await log.history(chip)
        missed += history.last_seq != seq or len(history.events) != 1
    assert missed == 0, f"{missed} of 300 reads missed the append just acked"


class Load:
    """Chip commands and route requests sent the way a careful client sends them: one at a
    time per chip (or route driver), the same command again until it is answered."""

    def __init__(self, nc: NATS, chips: list[str]) -> None:
        self.chip_client, self.route_client = ChipClient(nc), RouteClient(nc)
        self.chips = chips
        self.answered: dict[str, dict[str, cmd.CommandReply]] = {c: {} for c in chips}
        self.routes: list[tuple[float, RouteReply]] = []  # (answered at, reply)
        self.resent = 0
        self._doctors = itertools.count()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._drive_chip(c)) for c in self.chips]
        self._tasks += [asyncio.create_task(self._drive_routes()) for _ in range(ROUTE_DRIVERS)]

    async def stop(self) -> None:
        """Every command sent so far is answered before this returns."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def abandon(self) -> None:
        """A failed test's way out: the senders are cancelled, answered or not."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def commands(self) -> int:
        return sum(len(a) for a in self.answered.values())

    async def until(self, commands: int, routes: int, timeout: float = 60.0) -> None:
        """Until this many more commands and route requests are answered."""
        want = (self.commands() + commands, len(self.routes) + routes)
        try:
            async with asyncio.timeout(timeout):
                while not (self.commands() >= want[0] and len(self.routes) >= want[1]):  # noqa: ASYNC110 (the load's replies)
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"answered {self.commands()} commands and {len(self.routes)} "
                                 f"routes in {timeout}s, waiting for {want}") from None

    async def _answer(self, send: Callable[[], Awaitable[R]]) -> R:
        while True:
            try:
                return await send()
            except RETRIED:
                self.resent += 1
                await asyncio.sleep(0.05)

    async def _drive_chip(self, chip: str) -> None:
        setup: list[cmd.AnyChipCommand] = [
            cmd.Provision(command_id="p", ddd=11), cmd.StartActivation(command_id="s"),
            cmd.CompleteActivation(command_id="c", instance=f"inst-{chip}", host="vps-1")]
        traffic = (cmd.ObserveTraffic(command_id=f"o{n}", delivered=1) for n in itertools.count())
        for command in itertools.chain(setup, traffic):
            if self._stopping.is_set():
                return
            reply = await self._answer(
                lambda c=command: self.chip_client.send(chip, c, timeout=ANSWER_WAIT))
            self.answered[chip][command.command_id] = reply
            await asyncio.sleep(PACE)

    async def _drive_routes(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            doctor = f"d{next(self._doctors):05}"
            reply = await self._answer(lambda d=doctor: self.route_client.send(
                d, PHONE, f"oi {d}", "reply", consented=True, command_id=f"route-{d}",
                timeout=ANSWER_WAIT))
            self.routes.append((loop.time(), reply))


async def _both_serve(js: JetStreamContext, workers: dict[str, subprocess.Popen[bytes]],
                      logs: Path, timeout: float = 60.0) -> None:
    """Until every partition is held and each worker holds some."""
    async with asyncio.timeout(timeout):
        while True:
            for name, proc in workers.items():
                assert proc.poll() is None, (logs / f"{name}.log").read_text()[-3000:]
            holders = await lease_holders(js)
            if len(holders) == PARTITIONS and set(holders.values()) == set(workers):
                return
            await asyncio.sleep(0.1)


async def _chip_events(nc: NATS) -> list[tuple[int, chip_ev.AnyChipEvent]]:
    """Every chip event in CHIP_EVENTS (an ordered consumer: the leader's view)."""
    events: list[tuple[int, chip_ev.AnyChipEvent]] = []
    await replay(nc.jetstream(), Stream.CHIP_EVENTS, "chip.evt.>", chip_event_of("test"),
                 lambda seq, event: events.append((seq, event)), reader="cluster test")
    return events


def _assert_exactly_once(load: Load, events: list[tuple[int, chip_ev.AnyChipEvent]]) -> None:
    ids = Counter(e.event_id for _, e in events)
    assert ids.most_common(1)[0][1] == 1, f"doubled: {ids.most_common(3)}"
    stored: dict[tuple[str, str], list[int]] = {}
    for seq, event in events:
        if event.chip_id in load.answered:
            stored.setdefault((event.chip_id, event.command_id), []).append(seq)
    refused = [r for a in load.answered.values() for r in a.values() if not r.ok]
    assert not refused, refused[:3]
    told = {(chip, command_id): sorted(e.seq for e in reply.events)
            for chip, replies in load.answered.items() for command_id, reply in replies.items()}
    assert stored == told  # each answered command's events, once, where its reply said


async def test_commands_and_routing_ride_out_killing_the_chip_events_leader_and_a_worker(
        cluster: NatsCluster, cluster_nc: NATS,  # noqa: F811 (fixtures)
        database_url: str, postgres_url: str, tmp_path: Path) -> None:
    nc, js = cluster_nc, cluster_nc.jetstream()
    loop = asyncio.get_running_loop()
    await migrate_url(database_url)
    for _ in range(4):  # the chips routing picks from
        await seed_chip(js, new_chip_id(), Status.ACTIVE, 1000)
    replicas = {"JULIA_REPLICAS": "3"}
    workers: dict[str, subprocess.Popen[bytes]] = {
        name: start_worker_process(cluster.url, tmp_path / f"{name}.log", name, replicas)
        for name in ("worker-a", "worker-b")}
    projections = Projections(nc, database_url, batch=50)
    projections.start()
    load = Load(nc, [new_chip_id() for _ in range(LOAD_CHIPS)])
    gateway = FakeSender()
    try:
        async with supervised_balancer(nc, gateway):
            await _both_serve(js, workers, tmp_path)
            load.start()
            await load.until(commands=4 * LOAD_CHIPS, routes=20)
            leader = await stream_leader(nc, Stream.CHIP_EVENTS)
            node = node_named(cluster, leader)
            killed_at = loop.time()
            await asyncio.to_thread(node.kill)
            kill(workers["worker-a"])
            await load.until(commands=2 * LOAD_CHIPS, routes=10)  # served without them
            recovered = loop.time() - killed_at
            new_leader = await stream_leader(nc, Stream.CHIP_EVENTS)
            await asyncio.to_thread(node.start)
            workers["worker-a"] = start_worker_process(
                cluster.url, tmp_path / "worker-a.log", "worker-a", replicas)
            caught = await until_current(nc, [str(s) for s in Stream], leader)
            await load.until(commands=2 * LOAD_CHIPS, routes=10)
            await load.stop()
        await caught_up(js, database_url, timeout=60)
    finally:
        await load.abandon()
        for proc in workers.values():
            if proc.poll() is None:
                kill(proc)
        await projections.stop()

    answered_at = [at for at, _ in load.routes]
    silences = [b - a for a, b in itertools.pairwise(answered_at)]
    log.warning("cluster: %s killed (CHIP_EVENTS then led by %s); load served again after "
                "%.1f s; the node current again %.1f s after its restart; longest routing "
                "silence %.1f s; %d commands, %d routes (%s), %d resent", leader, new_leader,
                recovered, caught, max(silences), load.commands(), len(load.routes),
                dict(Counter(r.status for _, r in load.routes)), load.resent)
    assert new_leader != leader
    # A send cut by the balancer stepping down (its lease's stream lost its leader) is
    # answered `unknown` by the next tenure, and never sent again.
    answers = Counter(reply.status for _, reply in load.routes)
    assert set(answers) <= {ReplyStatus.DISPATCHED, ReplyStatus.UNKNOWN}, answers
    assert answers[ReplyStatus.UNKNOWN] <= ROUTE_DRIVERS * 3, answers
    assert max(Counter(text for _, _, text in gateway.sent).values()) == 1
    assert max(silences) < MAX_ROUTE_SILENCE
    _assert_exactly_once(load, await _chip_events(nc))

    projected = await checksums(database_url)
    async with another_database(postgres_url) as rebuilt:
        await migrate_url(rebuilt)
        await rebuild(nc, rebuilt, show_progress=False)
        assert await checksums(rebuilt) == projected
    assert projected["julia_chips"][0] == 4 + LOAD_CHIPS
