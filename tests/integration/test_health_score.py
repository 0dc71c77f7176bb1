"""The health monitor's score reaches the chips: it rides on `ObserveTraffic`, is stored on
`TrafficObserved`, and ranks chips in the balancer (real NATS, worker and monitor)."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.balancer.model.decide import choose_chip
from julia_chips.balancer.model.state import BalancerState, apply_chip_event
from julia_chips.chip.client import ChipClient
from julia_chips.clock import FixedClock
from julia_chips.contract import chip as ev
from julia_chips.contract.observations import MessageStatus
from julia_chips.ingest.observation_log import publish_observation
from julia_chips.jetstream.acked_publish import AckedPublisher
from tests.conftest import new_chip_id
from tests.integration.health_rig import monitoring, until
from tests.integration.warm_fleet import MORNING, events_of, warming_chips
from tests.integration.workers import running_worker

SENT = 30


async def scores(js: JetStreamContext, chip: str) -> list[float]:
    return [e.health_score for e in await events_of(js, chip)
            if isinstance(e, ev.TrafficObserved) and e.health_score is not None]


async def test_a_chip_that_fails_more_scores_lower_and_ranks_below_a_clean_one(
        nc: NATS, js: JetStreamContext) -> None:
    clock = FixedClock(MORNING)
    gateway = AckedPublisher(nc)  # stores signals as the observation deriver does
    clean, failing = new_chip_id(), new_chip_id()
    async with running_worker(nc, clock), monitoring(nc, clock):
        await warming_chips(ChipClient(nc), [clean, failing])
        for chip in (clean, failing):
            for n in range(SENT):
                outcome = "ERROR" if chip == failing and n % 10 == 0 else "DELIVERY_ACK"
                for status in ("SERVER_ACK", outcome):
                    await publish_observation(gateway, MessageStatus(
                        instance=f"inst-{chip}", message_id=f"{chip}-{n}",
                        remote_phone=f"+55119000{n:05d}", status=status,  # type: ignore[arg-type]
                        observed_at=clock.now()))

        async def both_scored() -> bool:
            return all([await scores(js, c) for c in (clean, failing)])
        await until(both_scored)
    assert (await scores(js, clean))[-1] == 1.0
    assert 0.5 < (await scores(js, failing))[-1] < 0.95  # a tenth failed: lower, not cooled
    state = BalancerState()
    for chip in (clean, failing):
        for event in await events_of(js, chip):
            apply_chip_event(state, event)
    assert state.fleet.chips[failing].health_score == (await scores(js, failing))[-1]
    assert choose_chip(state, True, clock.now(), {}) == clean  # same cap: health decides
