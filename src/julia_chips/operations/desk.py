"""The operations desk: answers operator requests on `ops.cmd.>` (core NATS request/reply).

Every `run` process has one, in the queue group `operations`, so one of them answers each
request and none needs a lease: the work is the functions in `dead_letters.py`,
`unknown_sends.py` and `erasure.py`, which are safe to run from anywhere (JetStream orders
the writes).
A request whose reply subject breaks the reply-subject rule is not carried out at all:
these change stored state, and an operator who cannot be told what happened must ask again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.clock import Clock
from julia_chips.contract import operations as ops
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import OPS_COMMANDS, OpsSubject
from julia_chips.jetstream.acked_publish import AckedPublisher
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES, reply_refusal
from julia_chips.operations import dead_letters, erasure, unknown_sends
from julia_chips.operations.dead_letters import OperationRefused

log = logging.getLogger(__name__)
QUEUE = "operations"
Handler = Callable[["OperationsDesk", Any], Awaitable[ops.OpsReply]]


async def _shown(desk: OperationsDesk, r: ops.ShowDeadLetter) -> ops.OpsReply:
    return ops.DeadLetterShown(letter=await dead_letters.show_dead_letter(desk.js, r.seq))


async def _purged(desk: OperationsDesk, r: ops.PurgeDeadLetters) -> ops.OpsReply:
    return ops.DeadLettersPurged(purged=await dead_letters.purge_dead_letters(desk.nc, r))


ROUTES: dict[str, tuple[type[ops.OpsRequest], Handler]] = {
    OpsSubject.DEAD_LETTERS_LIST: (
        ops.ListDeadLetters, lambda d, r: dead_letters.list_dead_letters(d.js, r)),
    OpsSubject.DEAD_LETTERS_SHOW: (ops.ShowDeadLetter, _shown),
    OpsSubject.DEAD_LETTERS_REPLAY: (
        ops.ReplayDeadLetters, lambda d, r: dead_letters.replay_dead_letters(d.js, r)),
    OpsSubject.DEAD_LETTERS_PURGE: (ops.PurgeDeadLetters, _purged),
    OpsSubject.UNKNOWN_SENDS_LIST: (
        ops.ListUnknownSends, lambda d, r: unknown_sends.unknown_sends(d.js, r)),
    OpsSubject.UNKNOWN_SEND_SETTLE: (
        ops.SettleUnknownSend,
        lambda d, r: unknown_sends.settle_unknown_send(d.js, d.publisher, d.clock, r)),
    OpsSubject.DOCTOR_ERASE: (
        ops.EraseDoctor, lambda d, r: erasure.erase_doctor(d.nc, d.phone_secret, r)),
}
_DECODERS = {subject: msgspec.json.Decoder(kind) for subject, (kind, _) in ROUTES.items()}


class OperationsDesk:
    def __init__(self, nc: NATS, clock: Clock,
                 reply_prefixes: tuple[str, ...] = DEFAULT_REPLY_PREFIXES,
                 phone_secret: bytes = b"") -> None:
        """:param phone_secret: JULIA_PHONE_KEY, the key of the phones' hash (erasure)."""
        self.nc: NATS = nc
        self.phone_secret: bytes = phone_secret
        self.js: JetStreamContext = nc.jetstream()
        self.clock: Clock = clock
        self.publisher: AckedPublisher = AckedPublisher(nc)
        self._prefixes = reply_prefixes
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        sub = await self.nc.subscribe(OPS_COMMANDS, queue=QUEUE, cb=self._on_request)
        try:
            await self._stopping.wait()
        finally:
            await sub.unsubscribe()

    def stop(self) -> None:
        self._stopping.set()

    async def _on_request(self, m: Msg) -> None:
        if refused := reply_refusal(m.reply, self._prefixes, "reply"):
            log.warning("operator request on %s not carried out: %s", m.subject, refused)
            return
        await self.nc.publish(m.reply, ENCODER.encode(await self.answer(m.subject, m.data)))

    async def answer(self, subject: str, data: bytes) -> ops.OpsReply:
        """The reply to one request; every failure is an answer, never a dead subscription."""
        route, decoder = ROUTES.get(subject), _DECODERS.get(subject)
        if route is None or decoder is None:
            return ops.OpsReply(ok=False, error=f"unknown request {subject[:80]!r}; expected "
                                                f"one of {', '.join(ROUTES)}")
        kind, handler = route
        try:
            request = decoder.decode(data or b"{}")
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            return ops.OpsReply(ok=False, error=f"invalid {kind.__name__}: {err}")
        try:
            return await handler(self, request)
        except OperationRefused as err:
            return ops.OpsReply(ok=False, error=str(err))
        except Exception as err:  # NATS hiccup: say so; the operator may ask again
            log.exception("operator request on %s failed", subject)
            return ops.OpsReply(ok=False, error=f"failed: {type(err).__name__}")
