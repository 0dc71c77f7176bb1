"""The activator end to end: sandbox over real HTTP and SSH, chip workers on real NATS."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from nats.aio.client import Client as NATS

from julia_chips.activation.saga_log import ActivationLog
from julia_chips.contract import activation as ev
from julia_chips.contract import chip as chip_ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import RegistrarKind, Step, instance_name
from julia_chips.contract.chip import Status
from julia_chips.contract.subjects import Stream
from tests.integration.activation_fixtures import (
    FAST,
    World,
    activation_world,
    running_activator,
)
from tests.integration.balancer_harness import read_stream

SLOW_SMS = msgspec.structs.replace(FAST, policy=msgspec.structs.replace(
    FAST.policy, attempts_by_step={Step.CODE: 2}, wait_timeouts={Step.CODE: 1.5,
                                                                 Step.CONNECTION: 5.0}))

STEP_EVENTS = (ev.ChipActivating, ev.NumberObtained, ev.HostAllocated, ev.InstanceCreated,
               ev.CodeRequested, ev.CodeReceived, ev.NumberRegistered, ev.ConnectionOpened,
               ev.ActivationCompleted)


@pytest.mark.parametrize("registrar", ["vps", "cloud_api"])
async def test_twenty_chips_activate_through_the_sandbox_and_end_warming(
        nc: NATS, registrar: RegistrarKind) -> None:
    async with activation_world(nc) as world, running_activator(world, registrar=registrar):
        chips = await world.provision(20)
        await world.until_settled(chips, timeout=60)
        again = await world.chips.send(chips[0], cmd.Provision(command_id="provision-again"))
        assert again.state == Status.WARMING.value
    sandbox = world.sandbox
    assert len(sandbox.salvy.accounts) == 20  # one number each
    assert set(sandbox.evolution.instances) == {instance_name(c) for c in chips}
    integration = {"vps": "WHATSAPP-BAILEYS", "cloud_api": "WHATSAPP-BUSINESS"}[registrar]
    assert all(i.state == "open" and i.integration == integration
               for i in sandbox.evolution.instances.values())
    assert sandbox.cloud_api is not None
    registered_on_hosts = sorted(n for h in sandbox.hosts for n in h.registered)
    if registrar == "vps":  # each number registered once, on one host, holding its slot
        phones = sorted(a["phoneNumber"].lstrip("+") for a in sandbox.salvy.accounts.values())
        assert registered_on_hosts == phones
        assert sum(h.used_slots for h in sandbox.hosts) == 20
        assert sandbox.cloud_api.numbers == {}
    else:
        assert [n.register_calls for n in sandbox.cloud_api.numbers.values()] == [1] * 20
        assert registered_on_hosts == []
    for chip in chips:
        events = await world.chip_events(chip)
        assert isinstance(events[-1], chip_ev.Activated), events[-1]
        kinds = Counter(type(e) for e in await world.saga_events(chip))
        assert all(kinds[k] == 1 for k in STEP_EVENTS), kinds
        [requested] = [e for e in await world.saga_events(chip)
                       if isinstance(e, ev.ActivationRequested)]
        assert requested.registrar == registrar
    assert await ActivationLog(nc.jetstream()).unfinished() == []
    # The codes opened the numbers' accounts: the saga kept where the SMS was, not the code.
    stored = b"".join(await read_stream(nc.jetstream(), Stream.ACTIVATIONS))
    assert b'"code":"' not in stored and stored.count(b'"sms_seq":') == 20


async def settled_chip(world: World) -> str:
    """One freshly provisioned chip, once its activation has ended either way."""
    [chip] = await world.provision(1)
    await world.until_settled([chip], timeout=30)
    return chip


async def failed(world: World, chip: str) -> chip_ev.ActivationFailed:
    events = await world.chip_events(chip)
    last = events[-1]
    assert isinstance(last, chip_ev.ActivationFailed), last
    return last


async def test_sms_that_never_comes_times_out_and_fails_naming_the_step(nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world, SLOW_SMS, registrar="cloud_api"):
        assert world.sandbox.cloud_api is not None
        world.sandbox.cloud_api.silence = True
        chip = await settled_chip(world)
        failure = await failed(world, chip)
    assert failure.step == "code" and "no SMS code" in failure.reason and failure.retryable
    saga = await world.saga_events(chip)
    assert sum(isinstance(e, ev.CodeRequested) for e in saga) == 2  # bounded: 2 attempts
    assert isinstance(saga[-1], ev.FailureReported)
    assert any(isinstance(e, ev.HostReleased) for e in saga)
    assert instance_name(chip) not in world.sandbox.evolution.instances  # slot freed
    assert len(world.sandbox.salvy.accounts) == 1  # the number is kept
    assert all(a["status"] != "canceled" for a in world.sandbox.salvy.accounts.values())


async def test_wrong_code_is_retried_with_a_new_code_then_fails(nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world, registrar="cloud_api"):
        assert world.sandbox.cloud_api is not None
        world.sandbox.cloud_api.corrupt_codes = 1
        ok = await settled_chip(world)
        assert isinstance((await world.chip_events(ok))[-1], chip_ev.Activated)
        world.sandbox.cloud_api.corrupt_codes = 100
        bad = await settled_chip(world)
        failure = await failed(world, bad)
    assert failure.step == "register" and "136025" in failure.reason
    saga = await world.saga_events(bad)
    assert sum(isinstance(e, ev.CodeRequested) for e in saga) == 3
    numbers = {n.phone: n for n in world.sandbox.cloud_api.numbers.values()}
    assert all(n.register_calls <= 1 for n in numbers.values())  # never spent on a bad code


async def test_register_lock_133016_is_terminal_and_never_looped(nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world, registrar="cloud_api"):
        assert world.sandbox.cloud_api is not None
        world.sandbox.cloud_api.register_limit = 0
        chip = await settled_chip(world)
        failure = await failed(world, chip)
    assert failure.step == "register" and "133016" in failure.reason and not failure.retryable
    assert [n.register_calls for n in world.sandbox.cloud_api.numbers.values()] == [1]


async def test_host_down_another_host_is_chosen(nc: NATS) -> None:
    async with activation_world(nc, hosts=3, capacity=5) as world:
        await world.sandbox.hosts[0].kill()  # the emptiest: would be picked first
        world.sandbox.hosts[1].used_slots = 1
        world.sandbox.hosts[2].used_slots = 1
        async with running_activator(world):
            chips = await world.provision(3)
            await world.until_settled(chips, timeout=30)
    for chip in chips:
        assert isinstance((await world.chip_events(chip))[-1], chip_ev.Activated)
        [allocated] = [e for e in await world.saga_events(chip)
                       if isinstance(e, ev.HostAllocated)]
        assert allocated.host in ("vps-2", "vps-3")


async def test_host_lost_after_allocation_is_replaced(nc: NATS) -> None:
    async with (activation_world(nc, hosts=2, capacity=5, link_delay=None) as world,
                running_activator(world, registrar="vps")):
        [chip] = await world.provision(1)
        allocated = await world.until_saga(chip, ev.HostAllocated)
        first = allocated.host  # type: ignore[attr-defined]
        await next(h for h in world.sandbox.hosts if h.name == first).kill()
        world.sandbox.evolution.link_delay = 0.05  # the survivor links normally
        await world.until_settled([chip], timeout=30)
    saga = await world.saga_events(chip)
    lost = [e for e in saga if isinstance(e, ev.AttemptFailed) and e.drop_host]
    hosts = [e.host for e in saga if isinstance(e, ev.HostAllocated)]
    assert isinstance((await world.chip_events(chip))[-1], chip_ev.Activated)
    assert lost and hosts[0] == first and hosts[-1] != first


async def test_a_saga_keeps_its_registrar_and_says_so_when_it_is_not_configured(
        nc: NATS) -> None:
    """A saga recorded with `cloud_api` in a process built without the Cloud API waits for it
    (bounded retries, the reason naming it), rather than switching registrars midway."""
    async with activation_world(nc) as world:
        world.endpoints = msgspec.structs.replace(world.endpoints, cloud_api=None)
        async with running_activator(world, registrar="cloud_api"):
            chip = await settled_chip(world)
            failure = await failed(world, chip)
    assert failure.step == "instance" and failure.retryable
    assert "cloud_api registrar is not configured" in failure.reason
    [requested] = [e for e in await world.saga_events(chip)
                   if isinstance(e, ev.ActivationRequested)]
    assert requested.registrar == "cloud_api"
