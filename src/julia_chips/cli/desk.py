"""The CLI's requests to the operations desk (`operations/client.py`), and how a reply is
printed."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from julia_chips.cli.output import OK, Output
from julia_chips.cli.system import System, SystemUnreachable
from julia_chips.contract.operations import OpsReply
from julia_chips.operations.client import DeskUnreachable, ask_desk

R = TypeVar("R", bound=msgspec.Struct)


async def ask(system: System, subject: str, request: msgspec.Struct | dict[str, object],
              reply_type: type[R], timeout: float) -> R:
    """`ask_desk` on the system's connection. :raises SystemUnreachable: as it says."""
    try:
        return await ask_desk(system.nc, subject, request, reply_type, timeout)
    except DeskUnreachable as err:
        raise SystemUnreachable(str(err)) from err


def settled(out: Output, reply: OpsReply) -> int | None:
    """The exit code when nothing more is to be printed (`--json` printed the reply, or the
    desk refused); None when the caller's table follows."""
    if out.as_json:  # every field: the wire leaves defaults out (`ok`, `[]`), scripts should not
        out.json(msgspec.structs.asdict(reply))  # have to guess them
    if not reply.ok:
        return out.refused(reply.error or "refused")
    return OK if out.as_json else None
