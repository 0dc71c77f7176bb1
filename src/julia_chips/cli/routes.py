"""`julia-chips route ...`: ask the balancer to send to a doctor, opt a doctor out or in, and
show a doctor's routing. Requests go through `RouteClient`, so the balancer applies every
protection (opt-outs, the brake, quiet hours, caps) to an operator as to any caller.
"""

from __future__ import annotations

import argparse
import uuid

import msgspec

from julia_chips.balancer.client import RouteClient
from julia_chips.cli.output import OK, Output, checked
from julia_chips.cli.system import System
from julia_chips.contract.route import OptIn, OptOut, RouteCommand, SendRequest
from julia_chips.projections.doctors import doctor_view


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    route = sub.add_parser("route", help="send to doctors, opt-outs, a doctor's routing"
                           ).add_subparsers(dest="route", required=True)
    send = route.add_parser("send", parents=[common],
                            help="a message to a doctor through the chip the balancer picks")
    send.add_argument("doctor_id")
    send.add_argument("--phone", required=True, help="the doctor's number, +55...")
    send.add_argument("--text", required=True)
    send.add_argument("--kind", choices=("prospecting", "reply"), default="prospecting")
    send.add_argument("--consented", action="store_true",
                      help="the doctor wrote to us or opted in")
    send.set_defaults(act=_send)
    for verb, summary in (("optout", "no message reaches the doctor from any chip"),
                          ("optin", "the doctor may be written to again")):
        consent = route.add_parser(verb, parents=[common], help=summary)
        consent.add_argument("doctor_id")
        consent.add_argument("--source", default="operator", help="who asked (the audit)")
        consent.set_defaults(act=_consent, verb=verb)
    show = route.add_parser("show", parents=[common],
                            help="a doctor's chip, consent, quarantine and message counts")
    show.add_argument("doctor_id")
    show.set_defaults(act=_show)


async def _request(system: System, out: Output, command: RouteCommand,
                   timeout: float) -> int:
    try:
        command = checked(command)
    except msgspec.ValidationError as err:
        return out.refused(f"invalid request: {err}")
    client = RouteClient(system.nc)
    try:
        reply = await client.request(command, timeout)
    finally:
        await client.close()
    if out.as_json:
        out.json(reply)
    if not reply.ok:
        return out.refused(f"{reply.error or 'refused'} ({reply.reason or 'no reason given'})")
    if out.as_json:
        return OK
    via = f" via chip {reply.chip_id}" if reply.chip_id else ""
    why = f" ({reply.reason})" if reply.reason else ""
    return out.done(f"{reply.status}{via}{why}")


async def _send(system: System, out: Output, args: argparse.Namespace) -> int:
    request = SendRequest(command_id=uuid.uuid4().hex, doctor_id=args.doctor_id,
                          doctor_phone=args.phone, text=args.text, kind=args.kind,
                          consented=args.consented)
    return await _request(system, out, request, args.timeout)


async def _consent(system: System, out: Output, args: argparse.Namespace) -> int:
    kind = OptOut if args.verb == "optout" else OptIn
    request = kind(command_id=uuid.uuid4().hex, doctor_id=args.doctor_id, source=args.source)
    return await _request(system, out, request, args.timeout)


async def _show(system: System, out: Output, args: argparse.Namespace) -> int:
    view = await doctor_view(await system.database(), args.doctor_id, system.clock.now())
    if view is None:
        return out.refused(f"no doctor {args.doctor_id[:64]!r} has been routed")
    if out.as_json:
        out.json(view)
        return OK
    pairs = [(name, getattr(view, name)) for name in view.__struct_fields__
             if name != "messages"]
    counts = msgspec.structs.asdict(view.messages)
    out.fields(f"doctor {view.doctor_id}", [*pairs, *((f"messages {k}", v)
                                                      for k, v in counts.items())])
    return OK
