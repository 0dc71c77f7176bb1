"""Answers go to inboxes only: a `reply_to` (or `Julia-Reply-To`) naming any other subject,
say another chip's audit log, gets the command dead-lettered and answered nowhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js.client import JetStreamContext

from julia_chips.app import partition_settings
from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.runner import balancer_settings
from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import FixedClock
from julia_chips.config import load_config
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import (
    FLEET_BRAKE_RELEASE,
    JuliaHeader,
    chip_command,
    chip_events,
    route_command,
)
from julia_chips.health.monitor import run_health_monitor
from tests.conftest import LEASE_TTL, new_chip_id
from tests.fakes import FakeSender
from tests.integration.balancer_harness import SETTINGS as BALANCER
from tests.integration.balancer_harness import route_events, running_balancer, seed_chip
from tests.integration.health_rig import FAST as FAST_MONITOR
from tests.integration.workers import SETTINGS as WORKER
from tests.integration.workers import running_worker

PHONE = "+5511987654321"
OWN_PREFIX = "_INBOX_julia_ops"  # a client that sets its own `inbox_prefix`
# `{a}`: a chip (or, for routes, the seeded chip "a") whose audit log the reply would enter.
HOSTILE = ["chip.evt.{a}", "$JS.API.STREAM.INFO.CHIP_EVENTS", FLEET_BRAKE_RELEASE]
FIELD = {"body": "reply_to", "header": JuliaHeader.REPLY_TO}


@asynccontextmanager
async def overheard(nc: NATS, subject: str) -> AsyncIterator[list[bytes]]:
    """What our processes publish on `subject` meanwhile (JetStream API requests of other
    clients have no `ok`; every answer of ours does)."""
    heard: list[bytes] = []

    async def keep(msg: Msg) -> None:
        if b'"ok"' in msg.data:
            heard.append(msg.data)

    sub = await nc.subscribe(subject, cb=keep)
    await nc.flush()
    try:
        yield heard
    finally:
        await nc.flush()
        await asyncio.sleep(0.3)  # an answer published just before the ack/term: let it in
        await sub.unsubscribe()


async def dead_letter_reason(js: JetStreamContext, subject: str) -> str:
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        msg = await sub.next_msg(timeout=5)
        return (msg.headers or {}).get(JuliaHeader.DLQ_REASON, "")
    finally:
        await sub.unsubscribe()


def addressed(command: msgspec.Struct, target: str, via: str
              ) -> tuple[bytes, dict[str, str] | None]:
    """`command` naming `target` as its reply subject, in the body or in the header."""
    if via == "body":
        return ENCODER.encode(msgspec.structs.replace(command, reply_to=target)), None
    return ENCODER.encode(command), {JuliaHeader.REPLY_TO: target}


async def first_answer(nc: NATS) -> Msg:
    """The monitor's answer to a release, once it is up (no responders until then)."""
    for _ in range(100):
        with contextlib.suppress(NoRespondersError, TimeoutError):
            return await nc.request(FLEET_BRAKE_RELEASE, b"", timeout=1)
        await asyncio.sleep(0.1)
    raise AssertionError("the health monitor never answered a brake release")


@pytest.mark.parametrize("via", ["body", "header"])
@pytest.mark.parametrize("hostile", HOSTILE)
async def test_a_chip_command_replying_outside_an_inbox_is_dead_lettered_and_unanswered(
        nc: NATS, js: JetStreamContext, hostile: str, via: str) -> None:
    client, log = ChipClient(nc), JetStreamChipEventLog(js)
    a, b = new_chip_id(), new_chip_id()
    target = hostile.format(a=a)
    async with running_worker(nc):
        assert (await client.send(a, cmd.Provision(command_id="p"))).ok
        a_last = await log.last_seq(a)
        async with overheard(nc, target) as heard:
            body, headers = addressed(cmd.Provision(command_id="p"), target, via)
            await js.publish(chip_command(b), body, headers=headers)
            reason = await dead_letter_reason(js, f"dlq.chip.{b}")
        after = await client.send(a, cmd.StartActivation(command_id="s"))  # an _INBOX. reply
    assert f"{FIELD[via]} {target!r} is not an inbox subject" in reason
    assert heard == []
    assert await log.load(b) == []  # not carried out
    assert after.ok and after.state == "activating"
    assert [e.seq for e in after.events] == [a_last + 1]  # nothing else entered A's subject
    assert [type(s.event).__name__ for s in await log.load(a)] == [
        "Provisioned", "ActivationStarted"]


@pytest.mark.parametrize("via", ["body", "header"])
@pytest.mark.parametrize("hostile", HOSTILE)
async def test_a_route_command_replying_outside_an_inbox_is_dead_lettered_and_unanswered(
        nc: NATS, js: JetStreamContext, hostile: str, via: str) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 100)
    log = JetStreamChipEventLog(js)
    a_last = await log.last_seq("a")
    target = hostile.format(a="a")
    sender = FakeSender()
    async with running_balancer(nc, sender=sender):
        async with overheard(nc, target) as heard:
            request = rt.SendRequest(command_id="c1", doctor_id="d1", doctor_phone=PHONE,
                                     text="oi", kind="reply")
            body, headers = addressed(request, target, via)
            await js.publish(route_command("send"), body, headers=headers)
            reason = await dead_letter_reason(js, "dlq.route.send")
        after = await RouteClient(nc).send("d2", PHONE, "ainda vivo", "reply")
    assert f"{FIELD[via]} {target!r} is not an inbox subject" in reason
    assert heard == []
    assert after.ok and after.status == "dispatched"
    assert [e.doctor_id for e in await route_events(js)] == ["d2"]  # d1: not carried out
    assert len(sender.sent) == 1
    assert await log.last_seq("a") == a_last


async def test_an_undecodable_command_with_a_hostile_reply_to_is_answered_nowhere(
        nc: NATS, js: JetStreamContext) -> None:
    chip, target = new_chip_id(), "fleet.cmd.brake.release"
    async with running_worker(nc), overheard(nc, target) as heard:
        await js.publish(chip_command(chip), b'{"type": "Teleport", "command_id": "t", '
                                             b'"reply_to": "fleet.cmd.brake.release"}')
        reason = await dead_letter_reason(js, f"dlq.chip.{chip}")
    assert reason.startswith("invalid command") and heard == []


async def test_a_configured_inbox_prefix_is_answered_and_only_when_configured(
        nc: NATS, js: JetStreamContext, nats_url: str) -> None:
    config = load_config({"JULIA_REPLY_PREFIXES": f"{OWN_PREFIX}, _INBOX_other."})
    settings = msgspec.structs.replace(
        WORKER, reply_prefixes=partition_settings(config).reply_prefixes)
    own = await nats.connect(nats_url, inbox_prefix=OWN_PREFIX)
    chip = new_chip_id()
    try:
        async with running_worker(nc, settings=settings):
            mine = await ChipClient(own).send(chip, cmd.Provision(command_id="p"))
            default = await ChipClient(nc).send(chip, cmd.StartActivation(command_id="s"))
        async with running_worker(nc):  # the default: `_INBOX.` only
            with pytest.raises(TimeoutError):
                await ChipClient(own).send(chip, cmd.Retire(command_id="r", reason="x"),
                                           timeout=2)
            reason = await dead_letter_reason(js, f"dlq.chip.{chip}")
    finally:
        await own.close()
    assert mine.ok and default.ok and default.state == "activating"
    assert f"{OWN_PREFIX}." in reason and "is not an inbox subject" in reason


async def test_a_route_client_with_a_configured_prefix_gets_its_answer(
        nc: NATS, js: JetStreamContext, nats_url: str) -> None:
    await seed_chip(js, "a", Status.ACTIVE, 100)
    config = load_config({"JULIA_REPLY_PREFIXES": OWN_PREFIX})
    settings = msgspec.structs.replace(
        BALANCER, reply_prefixes=balancer_settings(config).reply_prefixes)
    own = await nats.connect(nats_url, inbox_prefix=OWN_PREFIX)
    try:
        async with running_balancer(nc, settings=settings):
            reply = await RouteClient(own).send("d1", PHONE, "oi", "reply")
    finally:
        await own.close()
    assert reply.ok and reply.status == "dispatched"


async def test_a_brake_release_asking_for_its_answer_in_a_chip_log_gets_none(
        nc: NATS, js: JetStreamContext) -> None:
    chip = new_chip_id()
    log = JetStreamChipEventLog(js)
    stop = asyncio.Event()
    clock = FixedClock(datetime(2026, 11, 27, 12, tzinfo=UTC))
    monitor = asyncio.create_task(run_health_monitor(nc, clock, stop, LEASE_TTL, FAST_MONITOR))
    try:
        answered = await first_answer(nc)
        await nc.publish(FLEET_BRAKE_RELEASE, b"", reply=chip_events(chip))
        await nc.flush()
        again = await nc.request(FLEET_BRAKE_RELEASE, b"", timeout=5)  # handled in order
    finally:
        stop.set()
        await asyncio.wait_for(monitor, 10)
    assert b'"ok":true' in answered.data and b'"ok":true' in again.data
    assert await log.last_seq(chip) == 0


@pytest.mark.parametrize("via", ["body", "header"])
async def test_a_valid_command_is_answered_on_its_inbox_named_in_the_body_or_the_header(
        nc: NATS, js: JetStreamContext, via: str) -> None:
    """The header alone is enough, as a `nats pub` or a client in another language sends it."""
    chip, inbox = new_chip_id(), f"_INBOX.{via}-only"
    answers = await nc.subscribe(inbox)
    async with running_worker(nc):
        body, headers = addressed(cmd.Provision(command_id="p"), inbox, via)
        await js.publish(chip_command(chip), body, headers=headers)
        answer = await answers.next_msg(timeout=10)
    reply = msgspec.json.decode(answer.data)
    assert reply["ok"] is True and reply["state"] == "provisioning"
