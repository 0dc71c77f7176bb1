"""A time that comes in must say its zone: refused by field name otherwise.

A naive time cannot be compared with the clock's (aware) readings: the `TypeError` it causes
later once wedged the health monitor for the whole fleet. So every inbound type refuses it at
decoding: chip commands, route commands, observations, webhook and API bodies, query
parameters.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

import julia_chips.gateways
from julia_chips.contract.chip_commands import CHIP_COMMAND_TYPES, Cool
from julia_chips.contract.codec import decode_command
from julia_chips.contract.route import VERBS
from julia_chips.gateways.salvy.client import PhoneAccount
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.http import params
from julia_chips.http.params import EventsQuery
from julia_chips.ingest import webhooks
from julia_chips.ingest.observation_log import (
    AnyObserved,
    ObservationUnreadable,
    decode_observation,
)
from julia_chips.ingest.outcomes import WebhookRejected

NAIVE = "2026-03-02T13:00:00"  # decoded only, never compared with a clock
ZONE_MISSING = "Expected `datetime` with a timezone component"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_a_cool_whose_until_has_no_zone_is_refused_naming_until() -> None:
    body = {"type": "Cool", "command_id": "c", "reason": "r", "until": NAIVE + "-03:00"}
    cool = decode_command(json.dumps(body).encode())  # an offset is as good as `Z`
    assert isinstance(cool, Cool) and cool.until == datetime(2026, 3, 2, 16, tzinfo=UTC)
    body["until"] = NAIVE
    with pytest.raises(msgspec.ValidationError, match=rf"{ZONE_MISSING} - at `\$.until`"):
        decode_command(json.dumps(body).encode())


SIGNALS: list[tuple[str, dict[str, Any], str]] = [
    ("connection", {"instance": "i", "state": "close", "status_reason": 403}, "observed_at"),
    ("status", {"instance": "i", "message_id": "m", "remote_phone": "+5511987654321",
                "status": "READ"}, "observed_at"),
    ("inbound", {"instance": "i", "message_id": "m", "from_phone": "+5511987654321",
                 "text": "oi"}, "sent_at"),
    ("sms", {"sms_id": "s", "phone_account_id": "pa", "destination_phone": "+5511987654321",
             "origin_phone": "+15550100", "text": "123456", "code": "123456"}, "received_at"),
    ("send_refused", {"instance": "i", "gateway": "cloud_api", "code": 131048}, "observed_at"),
    ("account", {"instance": "i", "field": "account_update", "event": "FLAGGED"},
     "observed_at"),
    ("traffic", {"instance": "i", "sent": 3}, "observed_at"),
]


@pytest.mark.parametrize(("kind", "fields", "time_field"), SIGNALS,
                         ids=[kind for kind, _, _ in SIGNALS])
def test_an_observation_whose_time_has_no_zone_is_refused_naming_it(
        kind: str, fields: dict[str, Any], time_field: str) -> None:
    aware = {"type": kind, "signal": {**fields, time_field: NAIVE + "Z"}}
    decode_observation(json.dumps(aware).encode())  # the same body with a zone is fine
    naive = {"type": kind, "signal": {**fields, time_field: NAIVE}}
    with pytest.raises(ObservationUnreadable,
                       match=rf"{ZONE_MISSING} - at `\$.signal.{time_field}`"):
        decode_observation(json.dumps(naive).encode())


def test_a_salvy_sms_whose_received_at_has_no_zone_is_refused_naming_it() -> None:
    body = json.loads((FIXTURES / "salvy_sms_received_v3.json").read_bytes())
    body["data"]["receivedAt"] = NAIVE
    with pytest.raises(WebhookRejected, match=rf"{ZONE_MISSING} - at `\$.data.receivedAt`"):
        decode_salvy(json.dumps(body).encode())


@pytest.mark.parametrize("field", ["createdAt", "canceledAt"])
def test_a_salvy_account_whose_dates_have_no_zone_is_refused_naming_them(field: str) -> None:
    body = {"id": "pa", "phoneNumber": "+5511987654321", "status": "active", field: NAIVE}
    with pytest.raises(msgspec.ValidationError, match=rf"{ZONE_MISSING} - at `\$.{field}`"):
        msgspec.json.decode(json.dumps(body).encode(), type=PhoneAccount)


def _structs_of(module: ModuleType) -> list[type]:
    return [v for v in vars(module).values() if isinstance(v, type)
            and issubclass(v, msgspec.Struct) and v.__module__ == module.__name__]


def _gateway_modules() -> Iterator[ModuleType]:
    for found in pkgutil.walk_packages(julia_chips.gateways.__path__, "julia_chips.gateways."):
        yield importlib.import_module(found.name)


INBOUND: list[Any] = [
    *CHIP_COMMAND_TYPES, *VERBS.values(), AnyObserved, *_structs_of(params),
    *_structs_of(webhooks), *(s for m in _gateway_modules() for s in _structs_of(m)),
]


def _naive_datetimes(t: mi.Type, path: str, seen: set[type]) -> Iterator[str]:
    """Paths under `t` where a datetime without a zone would be accepted."""
    match t:
        case mi.DateTimeType(tz=tz) if not tz:
            yield path
        case mi.Metadata(type=inner):
            yield from _naive_datetimes(inner, path, seen)
        case mi.StructType(cls=cls, fields=fields) if cls not in seen:
            seen.add(cls)
            for f in fields:
                yield from _naive_datetimes(f.type, f"{cls.__name__}.{f.encode_name}", seen)
        case mi.UnionType(types=types) | mi.TupleType(item_types=types):
            for inner in types:
                yield from _naive_datetimes(inner, path, seen)
        case mi.ListType(item_type=inner) | mi.VarTupleType(item_type=inner) | \
                mi.SetType(item_type=inner) | mi.FrozenSetType(item_type=inner):
            yield from _naive_datetimes(inner, path, seen)
        case mi.DictType(key_type=key, value_type=value):
            yield from _naive_datetimes(key, path, seen)
            yield from _naive_datetimes(value, path, seen)


def test_no_inbound_type_accepts_a_datetime_without_a_zone() -> None:
    """Query parameters (`since`, whose 400 test_http_api checks) already refused one; route
    commands and Evolution bodies carry no datetime today: a new one must say its zone too
    (use `contract.timestamps.AwareDatetime`)."""
    seen: set[type] = set()
    naive = [p for t in INBOUND for p in _naive_datetimes(mi.type_info(t), "", seen)]
    assert naive == []
    assert Cool in seen and PhoneAccount in seen and EventsQuery in seen
    assert all(cls in seen for cls in VERBS.values())
