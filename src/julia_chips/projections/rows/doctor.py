"""Rows of the doctor read models as pure folds over ROUTE_EVENTS and MSG_EVENTS.

The doctor's flags follow the balancer's own `evolve` (balancer/model/state.py): consent
only ever turns on (a reply or an opt-in), an opt-out holds until an opt-in, a quarantine
takes the doctor off their chip. Every value comes from an event, so a rebuild writes the
very same rows. Phone numbers and message texts are left in the streams (LGPD).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from julia_chips.contract import messages as msg
from julia_chips.contract import route as rt

_r = msgspec.structs.replace


class DoctorRow(msgspec.Struct, frozen=True, kw_only=True):
    doctor_id: str
    chip_id: str | None = None
    consented: bool = False
    opted_out: bool = False
    opted_out_since: datetime | None = None
    opted_out_source: str | None = None
    opted_in_at: datetime | None = None
    quarantined_until: datetime | None = None
    quarantine_reason: str | None = None
    assigned_at: datetime | None = None
    reassigned_at: datetime | None = None
    reassigned_from: str | None = None
    reassign_reason: str | None = None
    replied_at: datetime | None = None
    first_seen_at: datetime
    updated_at: datetime
    last_seq: int  # ROUTE_EVENTS sequence


class BacklogRow(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    doctor_id: str
    kind: str
    consented: bool
    reason: str
    queued_at: datetime
    status: str  # queued | served | cancelled
    settled_at: datetime | None = None
    chip_id: str | None = None
    cancel_reason: str | None = None
    last_seq: int  # ROUTE_EVENTS sequence


class AttemptRow(msgspec.Struct, frozen=True, kw_only=True):
    attempt_id: str
    chip_id: str
    doctor_id: str
    kind: str
    consented: bool
    attempted_at: datetime
    outcome: str | None = None  # dispatched | failed | unknown; None: in flight
    settled_at: datetime | None = None
    outcome_reason: str | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    replied_at: datetime | None = None
    last_seq: int  # MSG_EVENTS sequence


_BACKLOG_EVENTS = (rt.RequestQueued, rt.RequestServed, rt.RequestCancelled)


def _doctor_changed(row: DoctorRow, event: rt.AnyRouteEvent) -> DoctorRow:
    at = event.occurred_at
    match event:
        case rt.ConversationAssigned():
            return _r(row, chip_id=event.chip_id, consented=row.consented or event.consented,
                      assigned_at=at)
        case rt.ConversationReassigned():
            return _r(row, chip_id=event.chip_id, consented=row.consented or event.consented,
                      reassigned_at=at, reassigned_from=event.from_chip_id,
                      reassign_reason=event.reason)
        case rt.DoctorOptedOut() if not row.opted_out:  # a repeat keeps the first "since"
            return _r(row, opted_out=True, opted_out_since=at, opted_out_source=event.source)
        case rt.DoctorOptedIn():
            return _r(row, opted_out=False, opted_out_since=None, opted_out_source=None,
                      opted_in_at=at, consented=True)
        case rt.DoctorReplied():
            return _r(row, consented=True, replied_at=at)
        case rt.DoctorQuarantined():
            return _r(row, chip_id=None, quarantined_until=event.until,
                      quarantine_reason=event.reason)
        case rt.DoctorErased():  # the doctor's history goes; the opt-out stays in force
            return DoctorRow(doctor_id=row.doctor_id, opted_out=row.opted_out,
                             opted_out_since=row.opted_out_since,
                             opted_out_source=row.opted_out_source,
                             first_seen_at=at, updated_at=at, last_seq=row.last_seq)
    return row


def doctor_step(row: DoctorRow | None, seq: int, event: rt.AnyRouteEvent) -> DoctorRow:
    """The doctor's row after the event at ROUTE_EVENTS sequence `seq`."""
    if row is None:
        row = DoctorRow(doctor_id=event.doctor_id, first_seen_at=event.occurred_at,
                        updated_at=event.occurred_at, last_seq=seq)
    elif isinstance(event, _BACKLOG_EVENTS):
        return row  # the backlog has its own table; nothing of the doctor moved
    changed = _doctor_changed(row, event)
    return _r(changed, updated_at=event.occurred_at, last_seq=seq)


def backlog_key(event: rt.AnyRouteEvent) -> str | None:
    return event.request_id if isinstance(event, _BACKLOG_EVENTS) else None


def backlog_step(row: BacklogRow | None, seq: int, event: rt.AnyRouteEvent
                 ) -> BacklogRow | None:
    """A queued request's row; settled once, by the first RequestServed/RequestCancelled."""
    match event:
        case rt.RequestQueued() if row is None:
            return BacklogRow(request_id=event.request_id, doctor_id=event.doctor_id,
                              kind=event.kind, consented=event.consented, reason=event.reason,
                              queued_at=event.occurred_at, status="queued", last_seq=seq)
        case rt.RequestServed() if row is not None and row.status == "queued":
            return _r(row, status="served", settled_at=event.occurred_at,
                      chip_id=event.chip_id, last_seq=seq)
        case rt.RequestCancelled() if row is not None and row.status == "queued":
            return _r(row, status="cancelled", settled_at=event.occurred_at,
                      cancel_reason=event.reason, last_seq=seq)
    return row


def attempt_key(event: msg.AnyMessageEvent) -> str:
    return event.attempt_id


_OUTCOME: dict[type[msg.MessageEvent], str] = {
    msg.SendDispatched: "dispatched", msg.SendFailed: "failed", msg.SendUnknown: "unknown"}
_SETTLED = {msg.Verdict.DELIVERED: "dispatched", msg.Verdict.NOT_SENT: "failed"}


def attempt_step(row: AttemptRow | None, seq: int, event: msg.AnyMessageEvent
                 ) -> AttemptRow | None:
    """An attempt's row. Like the balancer, the latest outcome wins; receipts and outcomes
    of an attempt the stream no longer holds (MSG_EVENTS has a max age) have no row."""
    if isinstance(event, msg.SendAttempted):
        if row is not None:
            return row
        return AttemptRow(attempt_id=event.attempt_id, chip_id=event.chip_id,
                          doctor_id=event.doctor_id, kind=event.kind, consented=event.consented,
                          attempted_at=event.occurred_at, last_seq=seq)
    if row is None:
        return None
    at = event.occurred_at
    match event:
        case msg.SendDispatched():
            row = _r(row, outcome="dispatched", settled_at=at, outcome_reason=None)
        case msg.SendFailed() | msg.SendUnknown():
            row = _r(row, outcome=_OUTCOME[type(event)], settled_at=at,
                     outcome_reason=event.reason)
        case msg.UnknownSendSettled():
            row = _r(row, outcome=_SETTLED[event.verdict], settled_at=at,
                     outcome_reason=event.note)
        case msg.Delivered():
            row = _r(row, delivered_at=row.delivered_at or at)
        case msg.Read():
            row = _r(row, read_at=row.read_at or at)
        case msg.Replied():
            row = _r(row, replied_at=row.replied_at or at)
    return _r(row, last_seq=seq)
