"""Carry out a relink try: a new pairing code or QR from the gateway, the wait for `open`,
and what the chip is told of each.

Kept beside `effects.py` (which dispatches here) because a relink talks to a linked chip's
instance, not to the activation's registrars. Command ids carry the saga's version, so a
crashed activator repeating a step is answered by the chip without a second event, and a
chip logged out twice in its life is not mistaken for a repeat of the first time. The
pairing code and the QR go to the chip only (its `RelinkStarted`), never to a log line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from julia_chips.activation import observation_waits as waits
from julia_chips.activation.model import steps as act
from julia_chips.clock import Clock
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.activation import Step

if TYPE_CHECKING:
    from julia_chips.activation.effects import ActivationPorts

log = logging.getLogger(__name__)
_QR_MAX = 2000  # StartRelink's bound on the QR text


async def relink_effect(ports: ActivationPorts, clock: Clock, chip: str, version: int,
                        action: act.OfferLink | act.AwaitRelink | act.ReportRelinkFailure
                        ) -> act.Outcome:
    key = f"activator:relink:{version}"
    match action:
        case act.OfferLink():
            return await _offer(ports, chip, key, action)
        case act.AwaitRelink():
            return await _await_open(ports, clock, chip, key, action)
        case act.ReportRelinkFailure():
            command = cmd.FailRelink(command_id=f"{key}:fail", attempt=action.attempt,
                                     reason=action.reason[:1000], give_up=action.give_up)
            reply = await ports.chips.send(chip, command)
            if not reply.ok:
                log.warning("chip %s refused FailRelink: %s", chip, reply.error)
            return act.LinkFailureSent()


async def _offer(ports: ActivationPorts, chip: str, key: str, action: act.OfferLink
                 ) -> act.Outcome:
    """Connect the closed instance (Evolution answers a pairing code when given the number,
    else a QR) and hand the code to the chip; the cursor is read first, so the `open` that
    follows the code is never missed."""
    after = await waits.connection_cursor(ports.js, action.instance)
    evolution = ports.evolution_for(ports.hosts.get(action.host))
    link = await evolution.connect(action.instance, number=action.phone_number)
    pairing = None if link.already_open else link.pairing_code
    qr = None if link.already_open or pairing else link.qr_code
    command = cmd.StartRelink(command_id=f"{key}:start", attempt=action.attempt,
                              pairing_code=pairing, qr=qr[:_QR_MAX] if qr else None)
    reply = await ports.chips.send(chip, command)
    if not reply.ok:
        return act.StepFailed(step=Step.RELINK, reason=f"chip refused: {reply.error}",
                              retryable=False)
    log.info("relink of %s: try %d offered (%s)", chip, action.attempt,
             "already open" if link.already_open else "pairing code" if pairing else "QR")
    return act.LinkIssued(attempt=action.attempt, obs_after_seq=after)


async def _await_open(ports: ActivationPorts, clock: Clock, chip: str, key: str,
                      action: act.AwaitRelink) -> act.Outcome:
    probe = waits.open_probe(ports.evolution_for(ports.hosts.get(action.host)), action.instance)
    if not await waits.wait_for_open(ports.js, clock, action.instance, action.after_seq,
                                     action.deadline, probe):
        return act.StepFailed(step=Step.RELINK, reason="not linked before the code expired")
    reply = await ports.chips.send(chip, cmd.CompleteRelink(command_id=f"{key}:complete"))
    if not reply.ok:  # retired or banned meanwhile: nothing left to relink
        log.warning("chip %s refused CompleteRelink: %s", chip, reply.error)
    return act.LinkOpened()
