"""Retiring a chip gives back what its activation took: checked in the sandbox's own state."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from julia_chips.activation.saga_log import ActivationLog
from julia_chips.contract import activation as ev
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import instance_name
from tests.integration.activation_fixtures import activation_world, running_activator

RELEASES = ["cancel_number", "delete_instance", "free_slot"]


async def test_retire_cancels_the_number_deletes_the_instance_and_frees_the_slot(
        nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world, registrar="vps"):
        quiet, banned = await world.provision(2)
        await world.until_settled([quiet, banned], timeout=60)
        assert sum(h.used_slots for h in world.sandbox.hosts) == 2
        ban = await world.chips.send(banned, cmd.ReportBan(command_id="ban", reason="logged out",
                                                           evidence="close 401"))
        assert ban.ok, ban
        for chip in (quiet, banned):
            reply = await world.chips.send(chip, cmd.Retire(command_id="retire", reason="test"))
            assert reply.ok, reply
        for chip in (quiet, banned):
            await world.until_saga(chip, ev.RetirementCompleted, timeout=30)
    sandbox = world.sandbox
    by_name = {a["name"]: a for a in sandbox.salvy.accounts.values()}
    assert by_name[f"julia-chip-{quiet}"]["status"] == "canceled"
    assert by_name[f"julia-chip-{quiet}"]["cancelReason"] == "unnecessary"
    assert by_name[f"julia-chip-{banned}"]["cancelReason"] == "whatsapp-blocked"
    assert instance_name(quiet) not in sandbox.evolution.instances
    assert instance_name(banned) not in sandbox.evolution.instances
    assert sum(h.used_slots for h in sandbox.hosts) == 0
    for chip in (quiet, banned):
        history = [e for e in await world.chip_events(chip)
                   if isinstance(e, chip_ev.ResourceReleased)]
        assert [e.resource for e in history] == RELEASES
        saga = await world.saga_events(chip)
        assert [type(e) for e in saga[-4:]] == [ev.NumberCancelled, ev.InstanceDeleted,
                                               ev.HostSlotFreed, ev.RetirementCompleted]
    assert await ActivationLog(nc.jetstream()).unfinished() == []


async def test_a_failing_release_is_retried_and_shows_in_the_saga(nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world):
        [chip] = await world.provision(1)
        await world.until_settled([chip], timeout=30)
        world.sandbox.evolution.outage(2)  # the next two gateway calls answer 5xx
        reply = await world.chips.send(chip, cmd.Retire(command_id="retire", reason="test"))
        assert reply.ok, reply
        await world.until_saga(chip, ev.RetirementCompleted, timeout=30)
    assert instance_name(chip) not in world.sandbox.evolution.instances
    saga = await world.saga_events(chip)
    assert any(isinstance(e, ev.AttemptFailed) and e.step is ev.Step.DELETE_INSTANCE
               for e in saga)
    assert not any(isinstance(e, ev.ReleaseSkipped) for e in saga)
