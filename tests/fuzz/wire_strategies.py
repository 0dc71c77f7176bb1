"""Hypothesis strategies for wire bytes: arbitrary bytes, arbitrary JSON, and JSON shaped
like a msgspec type (from `msgspec.inspect`, so a new field is fuzzed without a test
change) with a few mutations: a value of the wrong type, a required field left out, an
unknown field added."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

# `JULIA_FUZZ_EXAMPLES=2000 pytest tests/fuzz` digs deeper (docs/testing.md).
FUZZ_EXAMPLES = int(os.environ.get("JULIA_FUZZ_EXAMPLES", "100"))

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | st.text(max_size=40))
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
# What arrives where a body is expected: anything at all, or JSON of any shape.
ANY_BYTES = st.binary(max_size=300) | ANY_JSON.map(msgspec.json.encode)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(t: mi.StrType) -> st.SearchStrategy[str]:
    if t.pattern is not None:
        strategy = st.from_regex(t.pattern)
    else:
        strategy = st.text(min_size=t.min_length or 0, max_size=min(t.max_length or 30, 30))
    low, high = t.min_length or 0, t.max_length
    return strategy.filter(lambda s: len(s) >= low and (high is None or len(s) <= high))


def _number(t: mi.IntType | mi.FloatType, kind: type[int] | type[float]) -> st.SearchStrategy[Any]:
    low = t.ge if t.ge is not None else (t.gt if t.gt is not None else None)
    high = t.le if t.le is not None else (t.lt if t.lt is not None else None)
    if kind is int:
        return st.integers(min_value=low, max_value=high)  # type: ignore[arg-type]
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


def _time() -> st.SearchStrategy[str]:
    stamps = st.integers(min_value=0, max_value=4_000_000_000).map(
        lambda s: (_EPOCH + timedelta(seconds=s)).isoformat())
    return stamps | stamps.map(lambda s: s[:19]) | st.text(max_size=30)  # naive, or nonsense


def _shaped(t: mi.Type, depth: int) -> st.SearchStrategy[Any]:
    """A value of JSON type `t`, within its bounds (mutations come from `shaped`)."""
    match t:
        case mi.StructType():
            return _struct(t, depth)
        case mi.UnionType():
            return st.one_of([_shaped(u, depth) for u in t.types])
        case mi.StrType():
            return _text(t)
        case mi.IntType():
            return _number(t, int)
        case mi.FloatType():
            return _number(t, float)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.LiteralType():
            return st.sampled_from(t.values)
        case mi.EnumType():
            return st.sampled_from([m.value for m in t.cls])
        case mi.DateTimeType():
            return _time()
        case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
            return st.lists(_shaped(t.item_type, depth + 1), max_size=3)
        case mi.DictType():
            return st.dictionaries(st.text(max_size=8), _shaped(t.value_type, depth + 1),
                                   max_size=3)
        case _:
            return ANY_JSON


def _struct(t: mi.StructType, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.encode_name: (f, _field(f.type, depth + 1)) for f in t.fields}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        if t.tag_field is not None and draw(st.integers(0, 9)):
            obj[t.tag_field] = t.tag if draw(st.integers(0, 9)) else draw(ANY_JSON)
        for name, (field, strategy) in fields.items():
            if field.required or draw(st.booleans()):
                if field.required and not draw(st.integers(0, 19)):
                    continue  # a required field left out
                obj[name] = draw(strategy)
        if not draw(st.integers(0, 9)):
            obj[draw(st.text(max_size=10))] = draw(ANY_JSON)  # an unknown field
        return obj

    return build()


def _field(t: mi.Type, depth: int) -> st.SearchStrategy[Any]:
    """Mostly a value within bounds; now and then any JSON at all in its place."""
    if depth > 4:
        return ANY_JSON
    return st.one_of(_shaped(t, depth), _shaped(t, depth), _shaped(t, depth), ANY_JSON)


def shaped(kind: Any) -> st.SearchStrategy[bytes]:
    """JSON bytes shaped like `kind` (a Struct or a union of them), mutated now and then."""
    return _shaped(mi.type_info(kind), 0).map(msgspec.json.encode)


def wire(kind: Any) -> st.SearchStrategy[bytes]:
    """What a decoder of `kind` must survive: plausible bodies, and anything at all."""
    return shaped(kind) | ANY_BYTES
