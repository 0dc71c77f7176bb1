"""Requests to the operations desk (`ops.cmd.*`, `operations/desk.py`) and the brake: core
NATS request/reply, so an answer comes from a live `run` or not at all, and asking again
is always safe."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.errors import NoRespondersError

from julia_chips.cli.output import OK, Output
from julia_chips.cli.system import System, SystemUnreachable
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.operations import OpsReply

R = TypeVar("R", bound=msgspec.Struct)


async def ask(system: System, subject: str, request: msgspec.Struct | dict[str, object],
              reply_type: type[R], timeout: float) -> R:
    """The answer to `request` on `subject`, decoded as `reply_type`. A dict request leaves
    out the options not given (None), so the desk applies its own defaults to them.

    :param timeout: seconds to wait for the answer.
    :raises SystemUnreachable: nothing listens on `subject`, or no answer in time.
    """
    try:
        if isinstance(request, dict):
            request = {k: v for k, v in request.items() if v is not None}
        msg = await system.nc.request(subject, ENCODER.encode(request), timeout=timeout)
    except NoRespondersError as err:
        raise SystemUnreachable(f"nothing answers {subject}: is `julia-chips run` up?") from err
    except TimeoutError as err:
        raise SystemUnreachable(f"no answer on {subject} within {timeout}s") from err
    return msgspec.json.decode(msg.data, type=reply_type)


def settled(out: Output, reply: OpsReply) -> int | None:
    """The exit code when nothing more is to be printed (`--json` printed the reply, or the
    desk refused); None when the caller's table follows."""
    if out.as_json:  # every field: the wire leaves defaults out (`ok`, `[]`), scripts should not
        out.json(msgspec.structs.asdict(reply))  # have to guess them
    if not reply.ok:
        return out.refused(reply.error or "refused")
    return OK if out.as_json else None
