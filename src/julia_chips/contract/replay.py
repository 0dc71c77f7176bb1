"""How old a webhook may be, and how long GATEWAY_IN must remember one to drop its replay.

A captured webhook posted again is refused on two grounds: while its stamp is fresh, by
GATEWAY_IN's duplicate window (same `Nats-Msg-Id`); after that, by its stamp. The two must
overlap, or a copy posted between them is stored again as a new fact (a second "banned").
A body stamped `s` is taken from `s - ahead` to `s + behind`, so the duplicate window must be
at least `behind + ahead` (`span`): `GATEWAY_DEDUPE` is the longest span of any source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ReplayWindow:
    """:param behind: how long after its stamp a body is still taken (the sender's retries).
    :param ahead: how far a stamp may run ahead of our clock (the sender's clock skew)."""

    behind: timedelta
    ahead: timedelta

    @property
    def span(self) -> timedelta:
        return self.behind + self.ahead

    def scaled(self, speed: float) -> ReplayWindow:
        """The window on a clock `speed` times faster than the wall: the senders' retries
        and skews take real seconds, which are `speed` times as long on that clock (and
        GATEWAY_IN's duplicate window, in real time, still covers the span)."""
        return ReplayWindow(behind=self.behind * speed, ahead=self.ahead * speed)

    def admits(self, stamp: datetime, now: datetime) -> bool:
        return now - self.behind <= stamp <= now + self.ahead


# Evolution retries a failed POST for up to ~30 minutes (10 tries, back-off from 5 s capped
# at 300 s, 30 s timeouts), with the same body: a shorter window would refuse its own retries
# after one of our outages, and a 400 stops them. Stamped by `date_time`.
EVOLUTION = ReplayWindow(behind=timedelta(minutes=30), ahead=timedelta(minutes=1))
# Svix's own tolerance, both ways (each retry is signed anew, so no retry comes late).
SVIX = ReplayWindow(behind=timedelta(minutes=5), ahead=timedelta(minutes=5))
# Meta retries a webhook it could not deliver for days (up to 7), with the same signed body;
# each message and status is stamped by `timestamp`, Meta's time of the event. A day behind
# covers our outages of up to a day (a doctor's "PARAR" must not be lost to one) and keeps
# GATEWAY_IN's duplicate window, which must span it, well inside the stream's 7-day age.
CLOUD_API = ReplayWindow(behind=timedelta(hours=24), ahead=timedelta(minutes=5))
GATEWAY_DEDUPE = max(EVOLUTION.span, SVIX.span, CLOUD_API.span)
