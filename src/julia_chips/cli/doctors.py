"""`julia-chips doctor erase --doctor-id ID | --phone PHONE`: erase a doctor's personal
data through the operations desk (`ops.cmd.doctor.erase`, `operations/erasure.py`).

The table says what was found where; the phone is shown masked. Asking again is safe.
"""

from __future__ import annotations

import argparse

from julia_chips.cli.desk import ask, settled
from julia_chips.cli.output import OK, Output
from julia_chips.cli.system import System
from julia_chips.contract import operations as ops
from julia_chips.contract.subjects import OpsSubject
from julia_chips.privacy import mask_phone

ERASE_TIMEOUT = 120.0  # seconds: the erasure scans whole streams


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    doctor = sub.add_parser("doctor", help="a doctor's personal data").add_subparsers(
        dest="doctor", required=True)
    erase = doctor.add_parser("erase", parents=[common],
                              help="erase a doctor's phone and texts everywhere (the opt-out "
                                   "stays)")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--doctor-id", default=None)
    who.add_argument("--phone", default=None, help="E.164 digits, e.g. +5511987654321")
    erase.set_defaults(act=_erase, timeout=ERASE_TIMEOUT)


async def _erase(system: System, out: Output, args: argparse.Namespace) -> int:
    reply = await ask(system, OpsSubject.DOCTOR_ERASE,
                      {"doctor_id": args.doctor_id, "phone": args.phone},
                      ops.DoctorErasedReport, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    who = args.doctor_id or mask_phone(args.phone)
    out.table(f"erased {who}: doctors {', '.join(reply.doctor_ids) or 'none known'}",
              ("where", "removed"),
              [("doctor keys (sealed data shredded)", reply.keys_deleted),
               ("balancer backlog (doctors)", reply.balancer_forgot),
               *((f"{stream} messages", n) for stream, n in reply.deleted.items())])
    return OK
