"""Every decoder of outside bytes, fuzzed: arbitrary bytes, arbitrary JSON and JSON shaped
like the wire type (mutated) never raise anything but the decoder's own documented error.
A decoder that raised anything else would kill the loop reading it, or 500 at the edge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from julia_chips.contract import chip_commands, route
from julia_chips.contract.activation import AnyActivationEvent, decode_activation_event
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.codec import decode_command, decode_event, decode_reply
from julia_chips.contract.messages import AnyMessageEvent, decode_message_event
from julia_chips.contract.route import BadRouteCommand, decode_route_command, decode_route_event
from julia_chips.contract.subjects import JuliaHeader
from julia_chips.gateways.evolution.errors import GatewayError, error_from_response
from julia_chips.gateways.evolution.webhook import decode_evolution
from julia_chips.gateways.salvy.errors import SalvyError, salvy_error
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.ingest.observation_log import (
    AnyObserved,
    ObservationUnreadable,
    decode_observation,
)
from julia_chips.ingest.outcomes import WebhookRejected
from julia_chips.jetstream.dead_letters import reply_to_in
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES
from julia_chips.operations.desk import ROUTES as OPS_ROUTES
from tests.fuzz.counts import DECODER_CASES
from tests.fuzz.wire_strategies import ANY_BYTES, ANY_JSON, FUZZ_EXAMPLES, shaped, wire

UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError)
_FIXTURES = Path(__file__).parent.parent / "fixtures"
EVOLUTION_FIXTURES = [p.read_bytes() for p in sorted(_FIXTURES.glob("evolution_*.json"))]
SALVY_FIXTURES = [p.read_bytes() for p in sorted(_FIXTURES.glob("salvy_*.json"))]
NOW = datetime.now(UTC)
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _fixtures_mutated(paths: list[bytes]) -> st.SearchStrategy[bytes]:
    """Real bodies with one value swapped for any JSON: near misses of the real shape."""
    def swap(body: bytes, path: list[str], value: Any) -> bytes:
        obj = msgspec.json.decode(body)
        node = obj
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path:
            node[path[-1]] = value
        return msgspec.json.encode(obj)

    keys = st.lists(st.sampled_from(["event", "instance", "data", "state", "key", "message",
                                     "messageTimestamp", "remoteJid", "fromMe", "id", "type",
                                     "status", "date_time", "receivedAt", "phoneAccountId"]),
                    min_size=1, max_size=3)
    return st.builds(swap, st.sampled_from(paths), keys, ANY_JSON)


# name -> (strategy, decode, the errors it documents)
DECODERS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], object],
                          tuple[type[Exception], ...]]] = {
    "chip command": (wire(chip_commands.AnyChipCommand), decode_command, UNREADABLE),
    "command reply": (wire(chip_commands.CommandReply), decode_reply, UNREADABLE),
    "chip event": (st.tuples(wire(AnyChipEvent), st.dictionaries(
        st.sampled_from([JuliaHeader.EVENT_TYPE.value, JuliaHeader.EVENT_VERSION.value]),
        st.sampled_from(["", "0", "1", "2", "-1", "x", "TrafficObserved", "Cooled"])
        | st.text(max_size=8))),
        lambda a: decode_event(*a), (*UNREADABLE, LookupError)),
    "route command": (st.tuples(st.sampled_from([*route.VERBS, "nope", ""]),
                                wire(route.AnyRouteCommand)),
                      lambda a: decode_route_command(*a), (BadRouteCommand,)),
    "route event": (wire(route.AnyRouteEvent), decode_route_event, UNREADABLE),
    "message event": (wire(AnyMessageEvent), decode_message_event, UNREADABLE),
    "activation event": (wire(AnyActivationEvent), decode_activation_event, UNREADABLE),
    "observation": (wire(AnyObserved), decode_observation, (ObservationUnreadable,)),
    "evolution webhook": (ANY_BYTES | _fixtures_mutated(EVOLUTION_FIXTURES),
                          lambda b: decode_evolution(b, received_at=NOW), (WebhookRejected,)),
    "salvy webhook": (ANY_BYTES | _fixtures_mutated(SALVY_FIXTURES), decode_salvy,
                      (WebhookRejected,)),
    "evolution error answer": (st.tuples(st.integers(300, 599), ANY_BYTES),
                               lambda a: error_from_response(*a), ()),
    "salvy error answer": (st.tuples(st.integers(300, 599), ANY_BYTES),
                           lambda a: salvy_error(*a, None), ()),
    "dead letter reply_to": (ANY_BYTES | shaped(chip_commands.AnyChipCommand),
                             lambda b: reply_to_in(b, DEFAULT_REPLY_PREFIXES), ()),
    **{f"ops {subject}": (wire(kind), msgspec.json.Decoder(kind).decode, UNREADABLE)
       for subject, (kind, _) in OPS_ROUTES.items()},
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_a_decoder_raises_only_its_own_error(name: str) -> None:
    strategy, decode, documented = DECODERS[name]

    @FUZZ
    @given(strategy)
    def survives(data: Any) -> None:
        DECODER_CASES[name] += 1
        try:
            result = decode(data)
        except documented:
            return
        if name.endswith("error answer"):
            assert isinstance(result, GatewayError | SalvyError)

    survives()
