"""Dispatch without double-sends: record the attempt, call the gateway, record the outcome.

The gateway is a port (`WhatsAppSender`). In production it is the Evolution API client
(`gateways/evolution/client.py`) behind `EvolutionSender`; in tests, `FakeSender` (in
`tests/fakes.py`). Anything other than a definite "not sent" from the gateway settles the
attempt as `SendUnknown`, never as a failure to retry: a doctor messaged twice is the harm
this module exists to prevent.
"""

from __future__ import annotations

import logging
from typing import Protocol

from julia_chips.balancer.route_log import append_message_event
from julia_chips.clock import Clock
from julia_chips.contract import messages as msg
from julia_chips.gateways.evolution.client import EvolutionClient
from julia_chips.gateways.evolution.errors import (
    GatewayUnavailable,
    InstanceMissing,
    InstanceNotConnected,
    NumberNotOnWhatsApp,
    RateLimited,
    Unauthorized,
)
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.privacy import mask_phone

log = logging.getLogger(__name__)


DEFINITELY_NOT_SENT = (NumberNotOnWhatsApp, InstanceMissing, InstanceNotConnected, RateLimited,
                       Unauthorized)


class SendRefused(Exception):
    """The gateway said no before anything left for WhatsApp: known not sent."""


class WhatsAppSender(Protocol):
    """Send one text through a chip's gateway instance; returns the gateway's message id.

    :raises SendRefused: definitely not sent. Any other exception: outcome unknown.
    """

    async def send_text(self, instance: str, phone: str, text: str) -> str: ...


class EvolutionSender:
    """Adapts `gateways.evolution.EvolutionClient` to the port. The gateway saying no (4xx:
    number not on WhatsApp, instance gone or closed, rate limited, bad key) or never being
    reached is a refusal; an interrupted or 5xx answer stays unknown, never re-sent."""

    def __init__(self, client: EvolutionClient) -> None:
        self._client = client

    async def send_text(self, instance: str, phone: str, text: str) -> str:
        try:
            sent = await self._client.send_text(instance, phone, text)
        except DEFINITELY_NOT_SENT as err:
            raise SendRefused(f"{type(err).__name__}: {err}") from err
        except GatewayUnavailable as err:
            if not err.request_sent:
                raise SendRefused(f"gateway not reached: {err}") from err
            raise
        return str(sent.message_id)


async def dispatch(publisher: AckedPublisher, sender: WhatsAppSender, clock: Clock,
                   attempt: msg.SendAttempted, instance: str, phone: str, text: str
                   ) -> msg.MessageEvent | None:
    """Attempt, send, settle; returns the outcome event, None when another balancer had
    already recorded this attempt (then nothing is sent: never twice)."""
    if not await append_message_event(publisher, attempt):
        return None
    common = {"chip_id": attempt.chip_id, "attempt_id": attempt.attempt_id}
    outcome: msg.MessageEvent
    try:
        message_id = await sender.send_text(instance, phone, text)
    except SendRefused as err:
        outcome = msg.SendFailed(event_id=f"{attempt.attempt_id}:failed", reason=str(err)[:500],
                                 occurred_at=clock.now(), **common)
    except Exception as err:
        log.warning("send %s to %s via %s: outcome unknown (%s)", attempt.attempt_id,
                    mask_phone(phone), instance, type(err).__name__)
        outcome = msg.SendUnknown(event_id=f"{attempt.attempt_id}:unknown",
                                  reason=f"gateway error {type(err).__name__}",
                                  occurred_at=clock.now(), **common)
    else:
        outcome = msg.SendDispatched(event_id=f"{attempt.attempt_id}:dispatched",
                                     message_id=message_id, occurred_at=clock.now(), **common)
    await append_message_event(publisher, outcome)
    return outcome


def crashed_attempt(attempt_id: str, chip_id: str, clock: Clock) -> msg.SendUnknown:
    """An attempt found without an outcome after a takeover: held, never re-sent."""
    return msg.SendUnknown(event_id=f"{attempt_id}:unknown", chip_id=chip_id,
                           attempt_id=attempt_id, occurred_at=clock.now(),
                           reason="balancer stopped between the attempt and the gateway's "
                                  "answer; not re-sent, needs review")
