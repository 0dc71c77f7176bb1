"""SIGKILL the leading balancer process under load: the standby takes over within the lease
TTL at worst (plus one look; within 2 s, as its death is proved: test_lease_takeover.py),
nobody is assigned twice, every request is answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.route import RouteReply
from julia_chips.contract.subjects import BALANCER_LEASE, Bucket
from julia_chips.jetstream.leases.sightings import LeaseTiming
from tests.conftest import LEASE_TTL
from tests.integration.balancer_harness import route_events, seed_chip
from tests.integration.balancer_process import start_balancer
from tests.integration.workers import kill

DOCTORS = 300
PER_DOCTOR = 4
LOOK = LeaseTiming.for_ttl(LEASE_TTL).look_every  # how often a standby looks at its watch


async def lease_holder(js: JetStreamContext) -> str | None:
    kv = await js.key_value(Bucket.SHARD_LEASES)
    try:
        entry = await kv.get(BALANCER_LEASE)
    except Exception:
        return None
    return entry.value.decode() if entry.value else None


async def wait_for_holder(js: JetStreamContext, holder: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await lease_holder(js) == holder:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{holder} never took the lease")


async def test_sigkill_the_leader_under_load(nc: NATS, js: JetStreamContext, nats_url: str,
                                             tmp_path: Path) -> None:
    for chip_id in ("a", "b", "c"):
        await seed_chip(js, chip_id, Status.ACTIVE, 10_000)
    leader = start_balancer(nats_url, "bal-a", tmp_path)
    standby = None
    try:
        await wait_for_holder(js, "bal-a", timeout=20)
        standby = start_balancer(nats_url, "bal-b", tmp_path)  # after: it must be the standby
        client = RouteClient(nc)
        answers: list[RouteReply] = []

        async def doctor(n: int) -> None:
            for k in range(PER_DOCTOR):  # one doctor's messages in order, doctors in parallel
                answers.append(await client.send(f"doc{n}", "+5511987654321", f"m{n}-{k}",
                                                 "reply", command_id=f"r{n}-{k}", timeout=60))

        load = asyncio.gather(*(doctor(n) for n in range(DOCTORS)))
        while len(answers) < DOCTORS * PER_DOCTOR * 0.3:  # noqa: ASYNC110 - a test probe
            await asyncio.sleep(0.005)
        kill(leader)
        takeover = await wait_for_holder(js, "bal-b", timeout=LEASE_TTL + 20)
        await asyncio.wait_for(load, timeout=90)
    finally:
        for proc in (leader, standby):
            if proc is not None and proc.poll() is None:
                kill(proc)
    assert takeover <= LEASE_TTL + LOOK + 0.5, f"took over after {takeover:.2f}s"
    assert len(answers) == DOCTORS * PER_DOCTOR  # every accepted request answered
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {"dispatched", "unknown"}, statuses
    events = await route_events(js)
    assigned = Counter(e.doctor_id for e in events if isinstance(e, rt.ConversationAssigned))
    assert len(assigned) == DOCTORS and set(assigned.values()) == {1}  # nobody assigned twice
    assert not [e for e in events if isinstance(e, rt.ConversationReassigned)]
    sent: Counter[str] = Counter()
    for holder in ("bal-a", "bal-b"):
        path = tmp_path / f"{holder}.sent"
        if path.exists():
            sent.update(json.loads(line)["text"] for line in path.read_text().splitlines())
    assert sent and max(sent.values()) == 1  # never a second send
    assert statuses["dispatched"] <= len(sent)
