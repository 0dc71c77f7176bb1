"""An abandoned activation retried by an operator completes with the number it already had."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS

from julia_chips.contract import activation as ev
from julia_chips.contract import chip as chip_ev
from julia_chips.contract.chip import Status
from julia_chips.operations.activations import retry_activation
from tests.integration.activation_fixtures import World, activation_world, running_activator
from tests.integration.test_activation import SLOW_SMS


async def until_activated(world: World, chip: str, timeout: float = 30.0) -> chip_ev.Activated:
    async with asyncio.timeout(timeout):
        while True:
            last = (await world.chip_events(chip))[-1]
            if isinstance(last, chip_ev.Activated):
                return last
            await asyncio.sleep(0.05)


async def test_an_abandoned_activation_is_retried_and_completes_with_the_same_number(
        nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world, SLOW_SMS, registrar="cloud_api"):
        assert world.sandbox.cloud_api is not None
        world.sandbox.cloud_api.silence = True  # no SMS code ever comes: abandoned
        [chip] = await world.provision(1)
        await world.until_saga(chip, ev.FailureReported, timeout=30)
        assert isinstance((await world.chip_events(chip))[-1], chip_ev.ActivationFailed)
        world.sandbox.cloud_api.silence = False
        reply = await retry_activation(world.chips, chip)
        assert reply.ok and reply.state == Status.ACTIVATING.value, reply
        activated = await until_activated(world, chip)
    [account] = world.sandbox.salvy.accounts.values()  # no second purchase
    assert activated.salvy_account_id == account["id"]
    assert activated.phone_number == account["phoneNumber"]
    saga = [type(e) for e in await world.saga_events(chip)]
    assert saga.count(ev.NumberObtained) == 1
    assert saga.index(ev.FailureReported) < saga.index(ev.ActivationResumed)
    assert saga[-1] is ev.ActivationCompleted


async def test_a_retry_is_refused_once_the_chip_is_no_longer_activating(nc: NATS) -> None:
    async with activation_world(nc) as world, running_activator(world):
        [chip] = await world.provision(1)
        activated = await until_activated(world, chip)
        reply = await retry_activation(world.chips, chip)
        history = await world.chip_events(chip)
    assert activated.salvy_account_id is not None
    assert not reply.ok and reply.state == Status.WARMING.value
    assert "RetryActivation" in (reply.error or "")
    assert not any(isinstance(e, chip_ev.ActivationRetried) for e in history)
