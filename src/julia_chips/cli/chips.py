"""`julia-chips chip ...`: provision a chip, move it through its lifecycle, list and show
chips. Moves are chip commands sent through `ChipClient`, so the actor decides them as it
decides the health monitor's: a refused move prints the rule and the moves that are allowed.
Lists and rows come from the read model through the queries `/chips` uses.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable

import msgspec

from julia_chips.chip.client import ChipClient
from julia_chips.cli.output import OK, Output, aware_datetime, checked, chip_id
from julia_chips.cli.system import System
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip import Status
from julia_chips.http.chips import view_of
from julia_chips.privacy import mask_phone
from julia_chips.projections.audit import read_row
from julia_chips.projections.chips import list_chip_rows
from julia_chips.projections.distribution import chip_doctors
from julia_chips.projections.rows.chip import ChipRow

# How each move becomes its command, from the parsed arguments.
MOVES: dict[str, tuple[str, Callable[[argparse.Namespace, str], cmd.AnyChipCommand]]] = {
    "cool": ("rest a chip (warming, ready or active) until a time or the default rest",
             lambda a, i: cmd.Cool(command_id=i, reason=a.reason, until=a.until)),
    "resume": ("end a chip's rest early", lambda a, i: cmd.Resume(command_id=i)),
    "ban": ("record a ban WhatsApp imposed, with its evidence",
            lambda a, i: cmd.ReportBan(command_id=i, reason=a.reason, evidence=a.evidence)),
    "reinstate": ("a banned chip's number works again: warm it up anew",
                  lambda a, i: cmd.Reinstate(command_id=i)),
    "retire": ("take a chip out of the fleet for good",
               lambda a, i: cmd.Retire(command_id=i, reason=a.reason)),
    "retry-activation": ("run an abandoned activation again, with the number it bought",
                         lambda a, i: cmd.RetryActivation(command_id=i)),
}
LIST_COLUMNS = ("id", "phone", "status", "warm day", "progress", "health", "ddd", "updated")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    chip = sub.add_parser("chip", help="provision, list, show and move chips").add_subparsers(
        dest="chip", required=True)
    provision = chip.add_parser("provision", parents=[common], help="add a chip to the fleet "
                                "(the activator buys and links its number)")
    provision.add_argument("--ddd", type=int, default=None, help="area code to buy in")
    provision.add_argument("--phone", default=None, help="a number already bought")
    provision.add_argument("--salvy-account", default=None)
    provision.set_defaults(act=_provision)
    listing = chip.add_parser("list", parents=[common], help="chips from the read model")
    listing.add_argument("--status", type=Status, choices=list(Status), default=None)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", type=chip_id, default=None,
                         help="the page after this chip id (the table says when more follow)")
    listing.set_defaults(act=_list)
    show = chip.add_parser("show", parents=[common], help="one chip's row and its doctors")
    show.add_argument("chip_id", type=chip_id)
    show.set_defaults(act=_show)
    for name, (summary, _) in MOVES.items():
        move = chip.add_parser(name, parents=[common], help=summary)
        move.add_argument("chip_id", type=chip_id)
        if name in ("cool", "ban", "retire"):
            move.add_argument("--reason", required=True)
        if name == "cool":
            move.add_argument("--until", type=aware_datetime, default=None,
                              help="ISO 8601 with offset; default: the escalating rest")
        if name == "ban":
            move.add_argument("--evidence", required=True)
        move.set_defaults(act=_move, move=name)


async def _send(system: System, out: Output, chip: str, command: cmd.AnyChipCommand,
                timeout: float) -> int:
    client = ChipClient(system.nc)
    try:
        reply = await client.send(chip, command, timeout)
    finally:
        await client.close()
    if out.as_json:  # the chip named too: `provision` is where a script learns its id
        out.json({"chip_id": chip, **msgspec.to_builtins(reply)})
    if not reply.ok:
        allowed = ", ".join(reply.allowed) if reply.allowed else "none"
        return out.refused(f"{reply.error} (chip {chip} is {reply.state or 'unknown'}; "
                           f"allowed: {allowed})")
    if out.as_json:
        return OK
    events = ", ".join(f"{e.type} #{e.seq}" for e in reply.events) or "nothing new (a repeat)"
    return out.done(f"chip {chip}: {reply.state} ({events})")


async def _provision(system: System, out: Output, args: argparse.Namespace) -> int:
    try:
        command = cmd.Provision(command_id=uuid.uuid4().hex, phone_number=args.phone,
                                ddd=args.ddd, salvy_account_id=args.salvy_account)
        command = checked(command)
    except msgspec.ValidationError as err:
        return out.refused(f"invalid provision: {err}")
    return await _send(system, out, str(uuid.uuid4()), command, args.timeout)


async def _move(system: System, out: Output, args: argparse.Namespace) -> int:
    _, build = MOVES[args.move]
    try:
        command = build(args, uuid.uuid4().hex)
        command = checked(command)
    except msgspec.ValidationError as err:
        return out.refused(f"invalid {args.move}: {err}")
    return await _send(system, out, args.chip_id, command, args.timeout)


def _row(row: ChipRow) -> tuple[object, ...]:
    return (row.id, mask_phone(row.phone_number) if row.phone_number else None, row.status,
            row.warm_day, row.warmer_progress, row.health_score, row.ddd, row.updated_at)


async def _list(system: System, out: Output, args: argparse.Namespace) -> int:
    page = await list_chip_rows(await system.database(), args.status, max(1, args.limit),
                                cursor=args.after)
    if out.as_json:
        out.json(page.items)
        return OK
    out.table(f"chips: {len(page.items)} of {page.total}", LIST_COLUMNS,
              (_row(r) for r in page.items))
    if page.next_cursor is not None:
        out.out.print(f"more follow: --after {page.next_cursor}", markup=False)
    return OK


async def _show(system: System, out: Output, args: argparse.Namespace) -> int:
    conn = await system.database()
    row = await read_row(conn, args.chip_id)
    if row is None:
        return out.refused(f"no chip {args.chip_id} in the read model")
    view = view_of(row, await chip_doctors(conn, row.id))
    if out.as_json:
        out.json(view)
        return OK
    pairs = [(name, getattr(row, name)) for name in row.__struct_fields__]
    pairs = [(n, mask_phone(v) if n == "phone_number" and v else v) for n, v in pairs]
    out.fields(f"chip {row.id}", [*pairs, ("doctors", view.doctors.count),
                                  ("review_reason", view.review_reason)])
    return OK
