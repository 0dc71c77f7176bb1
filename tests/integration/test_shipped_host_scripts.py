"""The host scripts a VPS gets (`deploy/vps/`), run for real by the sandbox's SSH hosts against
each host's own Evolution listener and registration agent: a chip bought by area code is
activated through them and retired, and its slot is free again."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from julia_chips.contract import activation as ev
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import instance_name
from julia_chips.gateways.evolution.jid import digits_only
from julia_chips.gateways.vps.client import VpsClient
from julia_chips.sandbox.vps_host import shipped_scripts
from tests.integration.activation_fixtures import World, activation_world, running_activator


@pytest.fixture
def scripts() -> Path:
    found = shipped_scripts()
    assert found is not None, "deploy/vps/ is missing from the checkout"
    return found


async def used_slots(world: World) -> dict[str, int]:
    """What `julia-gateway-status` reports on each host, over SSH."""
    vps = VpsClient(client_keys=[world.sandbox.vps_client_key], connect_timeout=2,
                    command_timeout=10)
    survey = await vps.survey(world.sandbox.vps_hosts)
    assert all(h.reachable and h.gateway_up for h in survey), survey
    return {h.host: h.used_slots for h in survey}


async def test_a_chip_is_activated_and_retired_through_the_shipped_scripts(
        nc: NATS, scripts: Path) -> None:
    async with (activation_world(nc, host_scripts=scripts) as world,
                running_activator(world, registrar="vps")):
        sandbox = world.sandbox
        for host in sandbox.hosts:  # the scripts count the gateway's instances, not this
            host.used_slots = 7
        assert await used_slots(world) == {"vps-1": 0, "vps-2": 0}
        [chip] = await world.provision(1, ddd=21)
        await world.until_settled([chip], timeout=30)
        activated = (await world.chip_events(chip))[-1]
        assert isinstance(activated, chip_ev.Activated), activated
        assert activated.phone_number is not None and activated.phone_number.startswith("+5521")
        number = digits_only(activated.phone_number)
        host = next(h for h in sandbox.hosts if h.name == activated.host)
        other = next(h for h in sandbox.hosts if h.name != activated.host)
        # registered by the agent the script called, on the host's own gateway
        assert number in host.registered and number not in other.registered
        instance = sandbox.evolution.instances[instance_name(chip)]
        assert (instance.host, instance.state, instance.integration) == (
            host.name, "open", "WHATSAPP-BAILEYS")
        assert await used_slots(world) == {host.name: 1, other.name: 0}
        saga = await world.saga_events(chip)
        [code] = [e for e in saga if isinstance(e, ev.CodeReceived)]
        assert code.sms_id.startswith("sms_")  # read from Salvy's signed sms.received webhook

        reply = await world.chips.send(chip, cmd.Retire(command_id="retire", reason="test"))
        assert reply.ok, reply
        await world.until_saga(chip, ev.RetirementCompleted, timeout=30)
        assert number not in host.registered  # julia-gateway-release freed it on the agent
        assert await used_slots(world) == {host.name: 0, other.name: 0}
    history = [e.resource for e in await world.chip_events(chip)
               if isinstance(e, chip_ev.ResourceReleased)]
    assert history == ["cancel_number", "delete_instance", "free_slot"]
    assert not any(isinstance(e, ev.AttemptFailed) for e in await world.saga_events(chip))


async def test_a_host_whose_gateway_is_down_is_passed_over_by_its_script(
        nc: NATS, scripts: Path) -> None:
    async with (activation_world(nc, host_scripts=scripts) as world,
                running_activator(world, registrar="vps")):
        world.sandbox.hosts[0].gateway_up = False  # its Evolution listener answers 503
        vps = VpsClient(client_keys=[world.sandbox.vps_client_key])
        down = await vps.health(world.sandbox.vps_hosts[0])
        assert down.reachable and not down.gateway_up and down.free_slots == 0
        chips = await world.provision(2)
        await world.until_settled(chips, timeout=30)
        for chip in chips:
            activated = (await world.chip_events(chip))[-1]
            assert isinstance(activated, chip_ev.Activated) and activated.host == "vps-2"
