"""`julia-chips events tail|replay`: chip events straight from CHIP_EVENTS, the audit log
itself (not the read model, which may lag or be rebuilding).

`tail` follows with an ordered consumer that starts at the newest event: ephemeral, so a
forgotten terminal leaves nothing behind on the server. Tables mask phone numbers; `--json`
prints what `/chips/{id}/events` would (one JSON object a line for `tail`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.cli.output import OK, Output, aware_datetime, chip_id, shown
from julia_chips.cli.system import System
from julia_chips.contract.chip import CHIP_EVENT_TYPES, AnyChipEvent
from julia_chips.contract.codec import event_type
from julia_chips.contract.subjects import Stream, chip_events
from julia_chips.http.responses import StoredEventView
from julia_chips.jetstream.stored_chip_event import read_chip_event
from julia_chips.privacy import mask_phone, without_link_codes

EVENT_TYPES = sorted(str(t.__struct_config__.tag) for t in CHIP_EVENT_TYPES)
COLUMNS = ("seq", "chip", "type", "occurred at", "details")
_IDENTITY = ("type", "event_id", "chip_id", "occurred_at")  # in their own columns


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    events = sub.add_parser("events", help="chip events from the stream").add_subparsers(
        dest="events", required=True)
    tail = events.add_parser("tail", parents=[common], help="follow new events until Ctrl-C")
    tail.add_argument("--chip", type=chip_id, default=None)
    tail.add_argument("--type", choices=EVENT_TYPES, default=None)
    tail.set_defaults(act=_tail)
    replay = events.add_parser("replay", parents=[common], help="one chip's history")
    replay.add_argument("--chip", type=chip_id, required=True)
    replay.add_argument("--since", type=aware_datetime, default=None,
                        help="only events at or after this ISO 8601 time")
    replay.set_defaults(act=_replay)


def _view(seq: int, event: AnyChipEvent) -> StoredEventView:
    body: dict[str, Any] = without_link_codes(msgspec.to_builtins(event))
    return StoredEventView(seq=seq, type=event_type(event), occurred_at=event.occurred_at,
                           event=body)


def _details(view: StoredEventView) -> str:
    shown_fields = (f"{k}={mask_phone(str(v)) if 'phone' in k and v else shown(v)}"
                    for k, v in view.event.items() if k not in _IDENTITY and v is not None)
    return " ".join(shown_fields)


def _line(view: StoredEventView, chip: str) -> tuple[object, ...]:
    return (view.seq, chip, view.type, view.occurred_at, _details(view))


async def _replay(system: System, out: Output, args: argparse.Namespace) -> int:
    history = await JetStreamChipEventLog(system.nc.jetstream()).load(args.chip)
    if not history:
        return out.refused(f"chip {args.chip} has no events")
    views = [_view(stored.seq, stored.event) for stored in history
             if args.since is None or stored.event.occurred_at >= args.since]
    if out.as_json:
        out.json(views)
        return OK
    out.table(f"chip {args.chip}: {len(views)} of {len(history)} events", COLUMNS,
              (_line(v, args.chip) for v in views))
    return OK


async def _tail(system: System, out: Output, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def on_event(msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        event = read_chip_event("cli", msg.subject, seq, msg.data, msg.headers)
        if event is None or (args.type is not None and event_type(event) != args.type):
            return
        view = _view(seq, event)
        if out.as_json:
            out.json(view)
        else:
            out.out.print(" ".join(shown(v) for v in _line(view, event.chip_id)), markup=False)

    subject = chip_events(args.chip) if args.chip else chip_events("*")
    sub = await system.nc.jetstream().subscribe(
        subject, stream=Stream.CHIP_EVENTS, cb=on_event, ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW)
    out.err.print(f"following {subject}; Ctrl-C to stop", markup=False)
    await stop.wait()
    await sub.unsubscribe()
    return OK
