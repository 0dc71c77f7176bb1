"""The operator endpoints beyond chip moves: a doctor's consent (`POST /operator/doctors/
{id}/optout|optin`, through the balancer like `julia-chips route optout|optin`) and the
operations desk's writes (`POST /operator/dead-letters/replay|purge`,
`POST /operator/sends/settle`, like `julia-chips dlq replay|purge` and `sends settle`).

Bodies are decoded strictly before anything is sent (400 naming the field, nothing stored);
the balancer's or the desk's refusal is 409 with its reason; nothing answering is 503.
"""

from __future__ import annotations

import uuid

import msgspec
from aiohttp import web

from julia_chips.balancer.client import RouteClient
from julia_chips.contract import operations as ops
from julia_chips.contract.chip_commands import CommandId, Phone
from julia_chips.contract.route import OptIn, OptOut, RouteCommand, Source
from julia_chips.contract.subjects import OpsSubject
from julia_chips.http.errors import ApiProblem, Handler
from julia_chips.http.keys import NATS_CONN
from julia_chips.http.operator import REPLY_TIMEOUT, Refused, body
from julia_chips.http.params import NoQuery, doctor_id, query
from julia_chips.http.responses import json
from julia_chips.operations.client import DeskUnreachable, ask_desk


class OptOutBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    source: Source = "operator"  # who asked, for the audit
    command_id: CommandId | None = None  # the same id again: the same request, not a second


class OptInBody(OptOutBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Phone | None = None  # also lift that phone's opt-out (an opt-out keyed by phone)


async def _route(request: web.Request, command: RouteCommand) -> web.Response:
    client = RouteClient(request.app[NATS_CONN])
    try:
        reply = await client.request(command, REPLY_TIMEOUT)
    except TimeoutError:
        raise ApiProblem(503, f"the request is stored but the balancer did not answer within "
                         f"{REPLY_TIMEOUT:g}s; it will be handled (send the same command_id "
                         "again to learn the outcome)") from None
    finally:
        await client.close()
    if not reply.ok:
        return json(Refused(error=f"{reply.error or 'refused'} ({reply.reason or 'no reason'})"),
                    409)
    return json(reply)


async def opt_out_doctor(request: web.Request) -> web.Response:
    doctor = doctor_id(request)
    query(request, NoQuery)
    b = await body(request, OptOutBody)
    return await _route(request, OptOut(command_id=b.command_id or uuid.uuid4().hex,
                                        doctor_id=doctor, source=b.source))


async def opt_in_doctor(request: web.Request) -> web.Response:
    doctor = doctor_id(request)
    query(request, NoQuery)
    b = await body(request, OptInBody)
    return await _route(request, OptIn(command_id=b.command_id or uuid.uuid4().hex,
                                       doctor_id=doctor, source=b.source, doctor_phone=b.phone))


def _desk(subject: str, kind: type[ops.OpsRequest], reply: type[ops.OpsReply]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        query(request, NoQuery)
        b = await body(request, kind)
        try:
            answer = await ask_desk(request.app[NATS_CONN], subject, b, reply, REPLY_TIMEOUT)
        except DeskUnreachable as err:
            raise ApiProblem(503, str(err)) from None
        if not answer.ok:
            return json(Refused(error=answer.error or "refused"), 409)
        return json(answer)

    handler.__name__ = handler.__qualname__ = subject.replace("ops.cmd.", "").replace(".", "_")
    return handler


replay_dead_letters = _desk(OpsSubject.DEAD_LETTERS_REPLAY, ops.ReplayDeadLetters,
                            ops.DeadLettersReplayed)
purge_dead_letters = _desk(OpsSubject.DEAD_LETTERS_PURGE, ops.PurgeDeadLetters,
                           ops.DeadLettersPurged)
settle_unknown_send = _desk(OpsSubject.UNKNOWN_SEND_SETTLE, ops.SettleUnknownSend,
                            ops.UnknownSendSettledReply)
