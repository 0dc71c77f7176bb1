"""The demo recruiter: Julia writing to sandbox doctors (consented: those who opted in;
prospecting the others once a chip is active) and answering those who write back, through
the balancer as any caller would (`RouteClient`, `route.cmd.send`).

It picks no chip and counts no traffic: the balancer places each message within the caps,
quiet hours and the weekly prospecting cap, or refuses it, and the doctors' receipts and
replies come back through the sandbox's webhooks like real ones. The recruiter only paces
its offers (`demo/model/script.py`) and hears the doctors on `gw.obs.>`.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.model.protection import is_opt_out, local_day
from julia_chips.clock import Clock
from julia_chips.contract.observations import InboundMessage
from julia_chips.contract.route import RefusalReason, ReplyStatus
from julia_chips.contract.subjects import GATEWAY_SIGNALS
from julia_chips.demo.model.script import (
    DemoFleet,
    DemoScript,
    answer_text,
    offer_text,
    opted_in,
    prospecting_budget,
    prospects_strangers,
)
from julia_chips.ingest.observation_log import ObservationUnreadable, decode_observation
from julia_chips.phones import normalise_phone
from julia_chips.sandbox.doctors import Doctor, DoctorPopulation

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 32  # requests waiting for the balancer's answer at once
MAX_PER_TICK = 200  # offers asked in one tick, so a late start does not flood the balancer


class Recruiter:
    def __init__(self, nc: NATS, clock: Clock, doctors: DoctorPopulation,
                 script: DemoScript) -> None:
        self._nc, self._clock, self._script = nc, clock, script
        self._routes = RouteClient(nc)
        self._doctors = doctors.doctors
        self._consented = {d.doctor_id for n, d in enumerate(self._doctors)
                           if opted_in(n, script)}  # by the script; replies add the rest
        self._by_phone = {normalise_phone(d.phone): d for d in self._doctors}
        self._next = 0  # the doctor the next offer goes to, round the population
        self._day = -1
        self._offered_today = 0
        self._answered_today: collections.Counter[str] = collections.Counter()
        self._opted_out: set[str] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self._sent = 0
        self._holders: dict[str, str] = {}  # consented doctor -> the chip last placed on
        self.outcomes: collections.Counter[str] = collections.Counter()  # status or refusal

    def carrying(self) -> collections.Counter[str]:
        """Consented conversations by chip, as the balancer last placed them for us; a chip
        that stopped serving is forgotten (`forget`), its doctors having moved."""
        return collections.Counter(self._holders.values())

    def forget(self, chip_id: str) -> None:
        """The chip stopped serving: the balancer moved its conversations elsewhere."""
        self._holders = {d: c for d, c in self._holders.items() if c != chip_id}

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(GATEWAY_SIGNALS, cb=self._on_observation)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._routes.close()

    def tick(self, fleet: DemoFleet) -> None:
        """Ask for the offers due by now on this local day."""
        now = self._clock.now()
        if local_day(now) != self._day:
            self._day, self._offered_today = local_day(now), 0
            self._answered_today.clear()
        due = min(MAX_PER_TICK, prospecting_budget(fleet, now, self._script)
                  - self._offered_today)
        strangers = prospects_strangers(fleet)
        for _ in range(max(0, due)):
            doctor = self._next_doctor(strangers)
            if doctor is None:
                return
            self._offered_today += 1
            self._spawn(doctor, offer_text(self._sent, doctor.name), "prospecting")

    def _next_doctor(self, strangers: bool) -> Doctor | None:
        for _ in range(len(self._doctors)):
            doctor = self._doctors[self._next % len(self._doctors)]
            self._next += 1
            if doctor.doctor_id not in self._opted_out and (
                    strangers or doctor.doctor_id in self._consented):
                return doctor
        return None  # everyone opted out

    async def _on_observation(self, msg: Msg) -> None:
        """A doctor wrote: answer, unless it was an opt-out (the balancer keeps it) or they
        have had enough answers today."""
        try:
            observation = decode_observation(msg.data)
        except ObservationUnreadable:
            return  # the deriver wrote it; whatever it is, it is not a doctor's message
        if not isinstance(observation, InboundMessage):
            return
        doctor = self._by_phone.get(normalise_phone(observation.from_phone))
        if doctor is None or is_opt_out(observation.text):
            return
        if self._answered_today[doctor.doctor_id] >= self._script.replies_per_doctor_day:
            return
        self._answered_today[doctor.doctor_id] += 1
        self._consented.add(doctor.doctor_id)  # they wrote: the balancer knows it too
        self._spawn(doctor, answer_text(self._sent), "reply")

    def _spawn(self, doctor: Doctor, text: str, kind: str) -> None:
        self._sent += 1
        task = asyncio.create_task(self._send(doctor, text, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, doctor: Doctor, text: str, kind: str) -> None:
        async with self._slots:
            try:
                reply = await self._routes.send(
                    doctor.doctor_id, doctor.phone, text, kind,
                    consented=doctor.doctor_id in self._consented)
            except TimeoutError:  # stored all the same: the balancer answers it later
                self.outcomes["no answer yet"] += 1
                return
            except Exception as err:  # the connection closing on the way out, say
                log.warning("demo recruiter: a %s request failed (%s)", kind,
                            type(err).__name__)
                return
        if reply.reason == RefusalReason.OPTED_OUT:
            self._opted_out.add(doctor.doctor_id)
            self._holders.pop(doctor.doctor_id, None)
        elif reply.chip_id is not None and doctor.doctor_id in self._consented:
            self._holders[doctor.doctor_id] = reply.chip_id
        self.outcomes[str(reply.status or reply.reason or "refused")] += 1
        if reply.status is ReplyStatus.FAILED:
            log.info("demo recruiter: a %s to %s failed: %s", kind, doctor.doctor_id,
                     reply.error)
