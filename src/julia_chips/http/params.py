"""Query parameters as msgspec structs: validated once, and the source of the OpenAPI params."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

import msgspec
from aiohttp import web

from julia_chips.contract.chip import Status
from julia_chips.contract.route import DoctorId
from julia_chips.contract.timestamps import AwareDatetime
from julia_chips.http.errors import ApiProblem, field_of

T = TypeVar("T")
Limit = Annotated[int, msgspec.Meta(ge=1, le=500, description="items per page")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="items to skip")]
ChipCursor = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    description="`next_cursor` of the previous page: chips with a greater id")]
Since = Annotated[AwareDatetime, msgspec.Meta(
    description="events that occurred at or after this time (ISO 8601, with zone)")]
Seq = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="first stream sequence")]
ChipIdParam = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]


class ChipsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Status | None = None
    needs_review: bool | None = None  # true: only chips waiting for an operator's review
    limit: Limit = 50
    offset: Offset = 0
    cursor: ChipCursor | None = None


class EventsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_seq: Seq | None = None
    since: Since | None = None
    limit: Limit = 100


class PageQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit: Limit = 100
    offset: Offset = 0


class NoQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


def query(request: web.Request, kind: type[T]) -> T:
    """:raises ApiProblem: 400 naming the parameter."""
    raw = {key: request.query.getone(key) for key in request.query}
    if len(raw) != len(request.query):
        repeated = next(k for k in raw if len(request.query.getall(k)) > 1)
        raise ApiProblem(400, f"parameter {repeated!r} given more than once", repeated)
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as err:
        raise ApiProblem(400, str(err), field_of(err)) from None


def chip_id(request: web.Request) -> str:
    """The `{id}` path segment as a canonical UUID string. :raises ApiProblem: 400."""
    raw = request.match_info["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiProblem(400, "chip id must be a UUID", "id") from None


def doctor_id(request: web.Request) -> str:
    """The `{id}` path segment, valid as the balancer requires (it is a subject token).

    The value is not echoed in the error: callers may use phone-like ids (LGPD).
    :raises ApiProblem: 400.
    """
    try:
        return msgspec.convert(request.match_info["id"], DoctorId)
    except msgspec.ValidationError:
        raise ApiProblem(400, "doctor id must be 1-64 letters, digits, '_' or '-', starting "
                         "with a letter or digit", "id") from None
