"""`julia-chips brake status|release`: the fleet brake that a burst of bans engages (no new
prospecting anywhere; replies go on). Status is the read model `/health/chips` serves;
release is the request the health monitor answers (`fleet.cmd.brake.release`)."""

from __future__ import annotations

import argparse

from julia_chips.cli.desk import ask
from julia_chips.cli.output import OK, Output
from julia_chips.cli.system import System
from julia_chips.contract.fleet import BrakeReleaseReply
from julia_chips.contract.subjects import FLEET_BRAKE_RELEASE
from julia_chips.projections.fleet import fleet_summary


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    brake = sub.add_parser("brake", help="the fleet brake on prospecting").add_subparsers(
        dest="brake", required=True)
    brake.add_parser("status", parents=[common], help="engaged or not, why, until when"
                     ).set_defaults(act=_status)
    brake.add_parser("release", parents=[common], help="lift the brake before its cool-off"
                     ).set_defaults(act=_release)


async def _status(system: System, out: Output, args: argparse.Namespace) -> int:
    summary = await fleet_summary(await system.database(), system.clock.now())
    if out.as_json:
        out.json({"brake": summary.brake, "banned_last_7d": summary.banned_last_7d})
        return OK
    brake = summary.brake
    out.fields("fleet brake", [("engaged", "yes" if brake.engaged else "no"),
                               ("reason", brake.reason), ("until", brake.until),
                               ("changed at", brake.changed_at),
                               ("chips banned in the last 7 days", summary.banned_last_7d)])
    return OK


async def _release(system: System, out: Output, args: argparse.Namespace) -> int:
    reply = await ask(system, FLEET_BRAKE_RELEASE, {}, BrakeReleaseReply, args.timeout)
    if out.as_json:
        out.json(reply)
    if reply.engaged:
        return out.refused("the brake is still engaged")
    return OK if out.as_json else out.done("the brake is released: prospecting may go on")
