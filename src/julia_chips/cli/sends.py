"""`julia-chips sends unknown|settle`: sends whose outcome never came back, held for review
(never re-sent: a doctor must not get the same message twice), and an operator's verdict on
one, stored by the operations desk as `UnknownSendSettled`."""

from __future__ import annotations

import argparse

from julia_chips.cli.desk import ask, settled
from julia_chips.cli.output import OK, Output, chip_id
from julia_chips.cli.system import System
from julia_chips.contract import operations as ops
from julia_chips.contract.messages import Verdict
from julia_chips.contract.subjects import OpsSubject

COLUMNS = ("attempt", "chip", "doctor", "kind", "attempted at", "unknown at", "reason")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    sends = sub.add_parser("sends", help="sends left unknown: review and settle"
                           ).add_subparsers(dest="sends", required=True)
    unknown = sends.add_parser("unknown", parents=[common], help="sends left unknown")
    unknown.add_argument("--chip", type=chip_id, default=None)
    unknown.add_argument("--limit", type=int, default=100)
    unknown.set_defaults(act=_unknown)
    settle = sends.add_parser("settle", parents=[common], help="record what became of one")
    settle.add_argument("chip_id", type=chip_id)
    settle.add_argument("attempt_id")
    settle.add_argument("--verdict", required=True, choices=[v.value for v in Verdict])
    settle.add_argument("--note", default=None)
    settle.set_defaults(act=_settle)


async def _unknown(system: System, out: Output, args: argparse.Namespace) -> int:
    request = {"chip_id": args.chip, "limit": args.limit}
    reply = await ask(system, OpsSubject.UNKNOWN_SENDS_LIST,
                      request,
                      ops.UnknownSendsListed, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    out.table(f"sends left unknown: {len(reply.sends)}", COLUMNS, (
        (s.attempt_id, s.chip_id, s.doctor_id, s.kind, s.attempted_at, s.unknown_at, s.reason)
        for s in reply.sends))
    return OK


async def _settle(system: System, out: Output, args: argparse.Namespace) -> int:
    request = {"chip_id": args.chip_id, "attempt_id": args.attempt_id,
               "verdict": args.verdict, "note": args.note}
    reply = await ask(system, OpsSubject.UNKNOWN_SEND_SETTLE,
                      request,
                      ops.UnknownSendSettledReply, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    if reply.duplicate:
        return out.done(f"{args.attempt_id} was settled so before: nothing new stored")
    return out.done(f"{args.attempt_id} settled as {args.verdict} ({reply.event_id})")
