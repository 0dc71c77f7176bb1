"""Ask the operations desk (`ops.cmd.*`, desk.py): the one client of the CLI and the HTTP
operator endpoints. Core NATS request/reply, so an answer comes from a live desk or not at
all, and asking again is always safe."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError

from julia_chips.contract.codec import ENCODER

R = TypeVar("R", bound=msgspec.Struct)


class DeskUnreachable(Exception):
    """Nothing answers the desk's subject, or no answer came in time; says which."""


async def ask_desk(nc: NATS, subject: str, request: msgspec.Struct | dict[str, object],
                   reply_type: type[R], timeout: float) -> R:
    """The answer to `request` on `subject`, decoded as `reply_type`. A dict request leaves
    out the options not given (None), so the desk applies its own defaults to them.

    :param timeout: seconds to wait for the answer.
    :raises DeskUnreachable: nothing listens on `subject`, or no answer in time.
    """
    if isinstance(request, dict):
        request = {k: v for k, v in request.items() if v is not None}
    try:
        msg = await nc.request(subject, ENCODER.encode(request), timeout=timeout)
    except NoRespondersError as err:
        raise DeskUnreachable(f"nothing answers {subject}: is `julia-chips run` up?") from err
    except TimeoutError as err:
        raise DeskUnreachable(f"no answer on {subject} within {timeout}s") from err
    return msgspec.json.decode(msg.data, type=reply_type)
