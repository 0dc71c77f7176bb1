"""The health monitor end to end: signals on gw.obs -> chip commands -> chip events; the brake."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.chip.client import ChipClient
from julia_chips.chip.model.lifecycle import fold
from julia_chips.clock import FixedClock
from julia_chips.contract import chip as ev
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import instance_name
from julia_chips.contract.chip import Status
from julia_chips.contract.fleet import AnyFleetEvent, FleetBrakeEngaged, FleetBrakeReleased
from julia_chips.contract.observations import SendRefused
from julia_chips.contract.subjects import FLEET_BRAKE, FLEET_BRAKE_RELEASE, Stream
from julia_chips.ingest.observation_log import publish_observation
from julia_chips.jetstream.acked_publish import AckedPublisher
from tests.conftest import new_chip_id
from tests.integration.dead_letter_reader import stored_dead_letters
from tests.integration.health_rig import FAST, connection, monitoring, until
from tests.integration.warm_fleet import MORNING, events_of, warming_chips
from tests.integration.workers import running_worker

FLEET = msgspec.json.Decoder(AnyFleetEvent)


async def statuses(js: JetStreamContext, chip: str) -> list[str]:
    return [type(e).__name__ for e in await events_of(js, chip)]


async def brake_events(js: JetStreamContext) -> list[AnyFleetEvent]:
    found: list[AnyFleetEvent] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(Stream.FLEET_EVENTS, seq=seq, subject=FLEET_BRAKE, next=True)
        except Exception:
            return found
        assert msg.data is not None and msg.seq is not None
        found.append(FLEET.decode(msg.data))
        seq = msg.seq + 1


async def test_bans_are_reported_with_evidence_and_a_burst_engages_then_releases_the_brake(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)  # stores signals as the observation deriver does
    chips = [new_chip_id() for _ in range(4)]
    async with running_worker(nc, clock), monitoring(nc, clock) as monitor:
        await warming_chips(ChipClient(nc), chips)
        await until(lambda: _known(monitor, chips))
        transient = connection(f"inst-{chips[3]}", "close", 428, clock)
        await publish_observation(gateway, transient)
        for chip in chips[:3]:
            await publish_observation(gateway, connection(f"inst-{chip}", "close", 403, clock))
        await until(lambda: _all_banned(js, chips[:3]))
        await until(lambda: _brake_is(js, [FleetBrakeEngaged]))
        assert monitor.brake.engaged
        banned = [e for e in await events_of(js, chips[0]) if isinstance(e, ev.Banned)]
        assert "403" in banned[0].evidence and banned[0].previous_status is Status.WARMING
        assert "Banned" not in await statuses(js, chips[3])  # a transient never bans
        assert "Cooled" not in await statuses(js, chips[3])
        reply = await nc.request(FLEET_BRAKE_RELEASE, b"{}", timeout=2)
        assert msgspec.json.decode(reply.data) == {"ok": True, "engaged": False}
        await until(lambda: _brake_is(js, [FleetBrakeEngaged, FleetBrakeReleased]))
    [engaged, released] = await brake_events(js)
    assert isinstance(engaged, FleetBrakeEngaged) and engaged.bans_in_window == 3
    assert isinstance(released, FleetBrakeReleased) and released.reason == "operator"


async def test_the_brake_releases_itself_when_the_cool_off_passes_and_survives_a_restart(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)  # stores signals as the observation deriver does
    chips = [new_chip_id() for _ in range(3)]
    async with running_worker(nc, clock):
        async with monitoring(nc, clock) as monitor:
            await warming_chips(ChipClient(nc), chips)
            await until(lambda: _known(monitor, chips))
            for chip in chips:
                locked = connection(f"inst-{chip}", "close", 406, clock)
                await publish_observation(gateway, locked)
            await until(lambda: _brake_is(js, [FleetBrakeEngaged]))
        clock.advance(timedelta(hours=6, seconds=1))
        async with monitoring(nc, clock) as restarted:  # replays the same bans: no re-engage
            await until(lambda: _brake_is(js, [FleetBrakeEngaged, FleetBrakeReleased]))
            await asyncio.sleep(0.2)
            assert not restarted.brake.engaged
    events = await brake_events(js)
    assert [type(e) for e in events] == [FleetBrakeEngaged, FleetBrakeReleased]
    assert events[1].reason == "cool-off passed"


async def test_cooling_escalates_and_resumes_only_when_rested_and_connected(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)  # stores signals as the observation deriver does
    chip = new_chip_id()
    instance = f"inst-{chip}"
    rests = []
    async with running_worker(nc, clock), monitoring(nc, clock) as monitor:
        await warming_chips(ChipClient(nc), [chip])
        await until(lambda: _known(monitor, [chip]))
        for round_ in range(3):
            # Baileys' rate-overlimit on a send rests the chip; the socket then drops.
            await publish_observation(gateway, SendRefused(
                instance=instance, gateway="evolution", code=429, observed_at=clock.now()))
            await publish_observation(gateway, connection(instance, "close", 428, clock))
            await until(lambda n=round_ + 1: _count(js, chip, ev.Cooled, n))
            cooled = [e for e in await events_of(js, chip) if isinstance(e, ev.Cooled)][-1]
            rests.append(cooled.until - cooled.occurred_at if cooled.until else None)
            clock.advance(rests[-1] or timedelta(0))
            await asyncio.sleep(0.15)  # rested, but the socket is still closed: no resume
            assert await _count(js, chip, ev.Resumed, round_)
            await publish_observation(gateway, connection(instance, "open", 200, clock))
            await until(lambda n=round_ + 1: _count(js, chip, ev.Resumed, n))
            clock.advance(timedelta(minutes=5))
    assert rests == [timedelta(hours=1), timedelta(hours=4), timedelta(hours=24)]
    assert fold(chip, await events_of(js, chip)).status is Status.WARMING


async def test_bad_signals_are_rejected_with_a_reason_and_change_nothing(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    chip = new_chip_id()
    instance = f"inst-{chip}"
    now = clock.now().isoformat()
    bad = [
        (f"gw.obs.{instance}", b"{not json", "malformed signal"),
        (f"gw.obs.{instance}", b'{"type": "teleport", "signal": {}}', "malformed signal"),
        ("gw.obs.nobody", b'{"type": "connection", "signal": {"instance": "nobody", "state": '
         b'"close", "status_reason": 403, "observed_at": "' + now.encode() + b'"}}',
         "unknown instance"),
        (f"gw.obs.{instance}", _traffic(instance, now, -5), "Expected `int` >= 0"),
        (f"gw.obs.{instance}", _traffic(instance, now, 10**9), "Expected `int` <= 100000"),
        (f"gw.obs.{instance}", _traffic(instance, "1999-01-01T00:00:00Z", 3), "from now"),
    ]
    async with running_worker(nc, clock), monitoring(nc, clock) as monitor:
        await warming_chips(ChipClient(nc), [chip])
        await until(lambda: _known(monitor, [chip]))
        before = await events_of(js, chip)
        for subject, body, _ in bad:
            await js.publish(subject, body)
        await until(lambda: _rejected(monitor, len(bad)))
        await asyncio.sleep(0.2)
        assert monitor.folded == 0 and monitor.commands_sent == 0
        assert monitor.chips[chip].pending.sent == 0
    assert await events_of(js, chip) == before
    letters = await stored_dead_letters(js, "dlq.obs.>", quiet=0.5)
    assert [body for body, _ in letters] == [body for _, body, _ in bad]
    for (_, _, why), (_, reason) in zip(bad, letters, strict=True):
        assert why in reason, (why, reason)


async def test_an_activating_chips_link_signals_are_not_dead_letters(
        nc: NATS, js: JetStreamContext) -> None:
    """Evolution reports the link opening before the activator's `Activated` names the
    instance: the activator's business, not evidence, and not an operator's dead letter."""
    clock = FixedClock(MORNING)
    chip, client = new_chip_id(), ChipClient(nc)
    gateway = AckedPublisher(nc)
    async with running_worker(nc, clock), monitoring(nc, clock) as monitor:
        for command in (cmd.Provision(command_id="p", phone_number="+5511987654321"),
                        cmd.StartActivation(command_id="s")):
            assert (await client.send(chip, command)).ok
        await until(lambda: _state_seen(monitor, chip))
        for state, code in (("connecting", None), ("open", 200)):
            await publish_observation(gateway, connection(instance_name(chip), state, code,
                                                          clock))
        await publish_observation(gateway, connection("chip-" + new_chip_id(), "close", 403,
                                                      clock))  # no chip of ours: rejected
        await until(lambda: _rejected(monitor, 1))
        await asyncio.sleep(0.3)
        assert monitor.folded == 0 and monitor.commands_sent == 0
    await client.close()
    letters = await stored_dead_letters(js, "dlq.obs.>", quiet=0.5)
    assert len(letters) == 1 and "unknown instance" in letters[0][1]


async def _state_seen(monitor: object, chip: str) -> bool:
    return chip in monitor._states  # type: ignore[attr-defined]


def _traffic(instance: str, at: str, sent: int) -> bytes:
    return (f'{{"type": "traffic", "signal": {{"instance": "{instance}", "sent": {sent}, '
            f'"observed_at": "{at}"}}}}').encode()


async def _known(monitor: object, chips: list[str]) -> bool:
    return all(c in monitor.chips for c in chips)  # type: ignore[attr-defined]


async def _rejected(monitor: object, n: int) -> bool:
    return monitor.rejected >= n  # type: ignore[attr-defined,no-any-return]


async def _all_banned(js: JetStreamContext, chips: list[str]) -> bool:
    return all(["Banned" in await statuses(js, c) for c in chips])


async def _count(js: JetStreamContext, chip: str, kind: type, n: int) -> bool:
    return sum(isinstance(e, kind) for e in await events_of(js, chip)) == n


async def _brake_is(js: JetStreamContext, kinds: list[type]) -> bool:
    return [type(e) for e in await brake_events(js)] == kinds


async def test_signals_a_crashed_monitor_took_come_again_first_and_in_order(
        nc: NATS, js: JetStreamContext) -> None:
    """A close, then a reopen: the monitor before crashed holding the close unacked. The next
    one must fold the close before the reopen, now, not after `ack_wait` behind it."""
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)
    chip = new_chip_id()
    instance = f"inst-{chip}"
    async with running_worker(nc, clock):
        await warming_chips(ChipClient(nc), [chip])
        async with monitoring(nc, clock) as first:  # creates its durable, folds nothing yet
            await until(lambda: _known(first, [chip]))
        crashed = await js.pull_subscribe_bind(FAST.durable, Stream.GATEWAY_OBS)
        await publish_observation(gateway, connection(instance, "close", 428, clock))
        [taken] = await crashed.fetch(1, timeout=2)  # delivered to a monitor that then died
        assert taken.metadata.num_delivered == 1
        await crashed.unsubscribe()
        await publish_observation(gateway, connection(instance, "open", 200, clock))
        async with monitoring(nc, clock) as second:

            async def close_then_open() -> bool:
                health = second.chips.get(chip)
                drops = sum(counts.disconnects for _, counts in health.window) if health else 0
                return health is not None and drops == 1 and health.connection == "open"
            await until(close_then_open)
