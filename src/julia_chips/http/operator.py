"""The operator endpoints (`POST /operator/...`): the operator CLI's writes over HTTP, behind
`JULIA_OPERATOR_TOKEN` (`Access.OPERATE`).

A chip move is the chip command `julia-chips chip <move>` sends (`ChipClient`), so the actor
decides it as it decides the CLI's and the health monitor's: a refused move is 409 with the
rule, the chip's state and the moves allowed. A body is decoded strictly (unknown fields
refused) before anything is sent: a bad one is 400 naming the field, and nothing is stored.
Each body may carry a `command_id`: sent again with the same one, a move is not made twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web
from nats.errors import NoRespondersError

from julia_chips.chip.client import ChipClient
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.chip_commands import AreaCode, CommandId, EventRef, Name, Phone, Reason
from julia_chips.contract.fleet import BrakeReleaseReply
from julia_chips.contract.subjects import FLEET_BRAKE_RELEASE
from julia_chips.contract.timestamps import AwareDatetime
from julia_chips.http.errors import ApiProblem, Handler, field_of
from julia_chips.http.keys import NATS_CONN
from julia_chips.http.params import NoQuery, chip_id, query
from julia_chips.http.responses import json

T = TypeVar("T")
REPLY_TIMEOUT = 10.0  # seconds to wait for the actor (or the health monitor) to answer
NewChipId = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    description="the new chip's id (a UUID); default: a fresh one")]


class MoveBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`resume`, `reinstate`, `retry-activation`: nothing to say (an empty body will do)."""

    command_id: CommandId | None = None  # the same id again: the same move, not a second


class ProvisionBody(MoveBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone_number: Phone | None = None  # a number already bought; default: the activator buys
    ddd: AreaCode | None = None  # the area code to buy in
    salvy_account_id: Name | None = None
    chip_id: NewChipId | None = None


class CoolBody(MoveBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason
    until: AwareDatetime | None = None  # default: the escalating rest


class BanBody(MoveBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason
    evidence: Reason


class RetireBody(MoveBody, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class MoveDone(msgspec.Struct, frozen=True, kw_only=True):
    chip_id: str
    state: str | None
    events: list[EventRef]  # appended by this command (a repeat: the first answer's)


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """409: the actor (or the health monitor) said no; `allowed` are the moves it would make."""

    error: str
    state: str | None = None
    allowed: list[str] = []


async def body(request: web.Request, kind: type[T]) -> T:
    """The JSON body as `kind`; an empty body is `{}`. :raises ApiProblem: 400 naming the field."""
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as err:
        raise ApiProblem(400, str(err), field_of(err) or "body") from None
    except msgspec.DecodeError as err:
        raise ApiProblem(400, f"the body is not JSON: {err}", "body") from None


async def _send(request: web.Request, chip: str, command: cmd.AnyChipCommand) -> web.Response:
    client = ChipClient(request.app[NATS_CONN])
    try:
        reply = await client.send(chip, command, REPLY_TIMEOUT)
    except TimeoutError:
        raise ApiProblem(503, f"the command is stored but chip {chip} did not answer within "
                         f"{REPLY_TIMEOUT:g}s; it will be handled (send the same command_id "
                         "again to learn the outcome)") from None
    finally:
        await client.close()
    if not reply.ok:
        return json(Refused(error=reply.error or "refused", state=reply.state,
                            allowed=reply.allowed or []), 409)
    return json(MoveDone(chip_id=chip, state=reply.state, events=reply.events))


async def provision_chip(request: web.Request) -> web.Response:
    query(request, NoQuery)
    b = await body(request, ProvisionBody)
    command = cmd.Provision(command_id=b.command_id or uuid.uuid4().hex,
                            phone_number=b.phone_number, ddd=b.ddd,
                            salvy_account_id=b.salvy_account_id)
    return await _send(request, str(uuid.UUID(b.chip_id)) if b.chip_id else str(uuid.uuid4()),
                       command)


def _mover(name: str, kind: type[Any], build: Callable[[Any, str], cmd.AnyChipCommand]
           ) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        chip = chip_id(request)
        query(request, NoQuery)
        b = await body(request, kind)
        return await _send(request, chip, build(b, b.command_id or uuid.uuid4().hex))

    handler.__name__ = handler.__qualname__ = f"{name.replace('-', '_')}_chip"
    return handler


# move -> (summary, body, handler): `cli/chips.py MOVES`, over HTTP.
MOVES: dict[str, tuple[str, type[MoveBody], Handler]] = {
    "cool": ("Rest a chip (warming, ready or active) until a time or the default rest",
             CoolBody, _mover("cool", CoolBody, lambda b, i: cmd.Cool(
                 command_id=i, reason=b.reason, until=b.until))),
    "resume": ("End a chip's rest early", MoveBody,
               _mover("resume", MoveBody, lambda b, i: cmd.Resume(command_id=i))),
    "ban": ("Record a ban WhatsApp imposed, with its evidence", BanBody,
            _mover("ban", BanBody, lambda b, i: cmd.ReportBan(
                command_id=i, reason=b.reason, evidence=b.evidence))),
    "reinstate": ("A banned chip's number works again: warm it up anew", MoveBody,
                  _mover("reinstate", MoveBody, lambda b, i: cmd.Reinstate(command_id=i))),
    "retire": ("Take a chip out of the fleet for good (its number, instance and host slot "
               "are released)", RetireBody,
               _mover("retire", RetireBody, lambda b, i: cmd.Retire(
                   command_id=i, reason=b.reason))),
    "retry-activation": ("Run an abandoned activation again, with the number it bought",
                         MoveBody, _mover("retry-activation", MoveBody,
                                          lambda b, i: cmd.RetryActivation(command_id=i))),
}


class NoBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


async def release_brake(request: web.Request) -> web.Response:
    query(request, NoQuery)
    await body(request, NoBody)
    try:
        msg = await request.app[NATS_CONN].request(FLEET_BRAKE_RELEASE, b"{}",
                                                   timeout=REPLY_TIMEOUT)
    except NoRespondersError:
        raise ApiProblem(503, f"nothing answers {FLEET_BRAKE_RELEASE}: is the health monitor "
                         "running?") from None
    reply = msgspec.json.decode(msg.data, type=BrakeReleaseReply)
    if reply.engaged:
        return json(Refused(error="the brake is still engaged"), 409)
    return json(reply)
