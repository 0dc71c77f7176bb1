"""The review queue of sends left `unknown`, and an operator's verdict on one.

A `SendUnknown` is never re-sent (`balancer/dispatch.py`: a doctor messaged twice is the
harm), so it waits for a person who can look at the phone or the gateway. Their verdict is a
ledger event, `UnknownSendSettled`, on the chip's `msg.evt.<chip_id>`: the balancer and the
read models fold it like any outcome, and the history keeps who was unsure and what was
found. The queue is read from the ledger itself (bounded by MSG_EVENTS' max age), so it
needs no read model to be up.
"""

from __future__ import annotations

from nats.js.client import JetStreamContext

from julia_chips.balancer.route_log import append_message_event
from julia_chips.clock import Clock
from julia_chips.contract import messages as msg
from julia_chips.contract import operations as ops
from julia_chips.contract.subjects import Stream, message_events
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.follower import body, replay
from julia_chips.operations.dead_letters import OperationRefused


class _Ledger:
    """What a review needs of the ledger: each attempt, and its latest outcome."""

    def __init__(self) -> None:
        self.attempts: dict[str, msg.SendAttempted] = {}
        self.outcomes: dict[str, msg.AnyMessageEvent] = {}

    def fold(self, _seq: int, event: msg.AnyMessageEvent) -> None:
        match event:
            case msg.SendAttempted():
                self.attempts[event.attempt_id] = event
            case (msg.SendDispatched() | msg.SendFailed() | msg.SendUnknown()
                  | msg.UnknownSendSettled()):
                self.outcomes[event.attempt_id] = event

    def unknown(self) -> list[ops.UnknownSend]:
        return [ops.UnknownSend(attempt_id=a.attempt_id, chip_id=a.chip_id,
                                doctor_id=a.doctor_id, kind=a.kind,
                                attempted_at=a.occurred_at, unknown_at=o.occurred_at,
                                reason=o.reason)
                for o in self.outcomes.values() if isinstance(o, msg.SendUnknown)
                if (a := self.attempts.get(o.attempt_id)) is not None]


async def _ledger(js: JetStreamContext, chip_id: str | None) -> _Ledger:
    ledger = _Ledger()
    await replay(js, Stream.MSG_EVENTS, message_events(chip_id or "*"),
                 body(msg.decode_message_event), ledger.fold, reader="unknown sends review")
    return ledger


async def unknown_sends(js: JetStreamContext, request: ops.ListUnknownSends
                        ) -> ops.UnknownSendsListed:
    """Sends whose outcome nobody knows yet, oldest first (of one chip, or of the fleet)."""
    found = (await _ledger(js, request.chip_id)).unknown()
    found.sort(key=lambda s: s.attempted_at)
    return ops.UnknownSendsListed(sends=found[:request.limit])


async def settle_unknown_send(js: JetStreamContext, publisher: AckedPublisher, clock: Clock,
                              request: ops.SettleUnknownSend) -> ops.UnknownSendSettledReply:
    """Record the verdict on one unknown send. The same verdict again is answered as a
    duplicate; another verdict, or an attempt that is not unknown, is refused."""
    ledger = await _ledger(js, request.chip_id)
    outcome = ledger.outcomes.get(request.attempt_id)
    event_id = f"{request.attempt_id}:settled"
    if request.attempt_id not in ledger.attempts:
        raise OperationRefused(f"attempt_id: no send {request.attempt_id!r} on chip "
                               f"{request.chip_id!r}")
    if isinstance(outcome, msg.UnknownSendSettled):
        if outcome.verdict is request.verdict:
            return ops.UnknownSendSettledReply(event_id=event_id, duplicate=True)
        raise OperationRefused(f"verdict: already settled as {outcome.verdict.value}")
    if not isinstance(outcome, msg.SendUnknown):
        state = "in flight" if outcome is None else type(outcome).__name__
        raise OperationRefused(f"attempt_id: {request.attempt_id!r} is {state}, not unknown")
    settled = msg.UnknownSendSettled(
        event_id=event_id, chip_id=request.chip_id, attempt_id=request.attempt_id,
        occurred_at=clock.now(), verdict=request.verdict, note=request.note)
    stored = await append_message_event(publisher, settled)
    return ops.UnknownSendSettledReply(event_id=event_id, duplicate=not stored)
