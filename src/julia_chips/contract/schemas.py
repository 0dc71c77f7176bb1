"""JSON Schemas of the wire types, generated into docs/schemas/, and `docs/events.md` made
from them (`python -m` this module).

A unit test compares the files with what the code generates, so they cannot drift: a field
added to an event shows in its schema and in the catalog a reader of the streams looks at.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from julia_chips.contract.activation import AnyActivationEvent
from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.chip_commands import AnyChipCommand, CommandReply
from julia_chips.contract.fleet import AnyFleetEvent, BrakeReleaseReply
from julia_chips.contract.messages import AnyMessageEvent
from julia_chips.contract.route import AnyRouteCommand, AnyRouteEvent, RouteReply


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    """One schema file: the wire type, where it travels, and what it is for."""

    file: str
    kind: Any
    title: str
    where: str


CATALOGS = (
    Catalog(file="chip-commands.json", kind=AnyChipCommand, title="Chip commands",
            where="published on `chip.cmd.<chip_id>` (stream CHIP_CMDS, a work queue); the "
            "server maps it to `chip.cmd.<partition>.<chip_id>`"),
    Catalog(file="command-reply.json", kind=CommandReply, title="Chip command reply",
            where="the answer on the command's reply inbox"),
    Catalog(file="chip-events.json", kind=AnyChipEvent, title="Chip events",
            where="`chip.evt.<chip_id>` (stream CHIP_EVENTS: the audit log, never deleted)"),
    Catalog(file="route-commands.json", kind=AnyRouteCommand, title="Route commands",
            where="`route.cmd.send|optout|optin|inbound` (stream ROUTE_CMDS, a work queue), "
            "answered by the balancer"),
    Catalog(file="route-reply.json", kind=RouteReply, title="Route reply",
            where="the balancer's answer on the request's reply inbox"),
    Catalog(file="route-events.json", kind=AnyRouteEvent, title="Route events",
            where="`route.evt.<doctor_id>` (stream ROUTE_EVENTS): conversations, consent, "
            "quarantines, the backlog"),
    Catalog(file="message-events.json", kind=AnyMessageEvent, title="Message ledger",
            where="`msg.evt.<chip_id>` (stream MSG_EVENTS, kept `JULIA_LEDGER_MAX_AGE_DAYS`): "
            "each send attempt and what became of it"),
    Catalog(file="fleet-events.json", kind=AnyFleetEvent, title="Fleet events",
            where="`fleet.evt.brake` (stream FLEET_EVENTS): the fleet brake"),
    Catalog(file="brake-release-reply.json", kind=BrakeReleaseReply,
            title="Brake release reply", where="the answer to `fleet.cmd.brake.release`"),
    Catalog(file="activation-events.json", kind=AnyActivationEvent, title="Activation steps",
            where="`activation.evt.<chip_id>` (stream ACTIVATIONS): the activation and "
            "retirement sagas, step by step"),
)
SCHEMA_FILES = tuple(c.file for c in CATALOGS)
EVENTS_DOC = "events.md"


def render_schemas() -> dict[str, str]:
    return {c.file: json.dumps(msgspec.json.schema(c.kind), indent=2, sort_keys=True) + "\n"
            for c in CATALOGS}


def _type(schema: dict[str, Any]) -> str:
    """A field's schema as a short phrase: `string ≤ 64`, `integer | null`, `"a" | "b"`."""
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    if "anyOf" in schema:
        return " \\| ".join(_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f'`"{v}"`' if isinstance(v, str) else f"`{v}`"
                            for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    bounds = [f"{schema['format']}"] if "format" in schema else []
    for key, shown in (("minLength", "≥ {} chars"), ("maxLength", "≤ {} chars"),
                       ("minimum", "≥ {}"), ("maximum", "≤ {}"), ("pattern", "`{}`")):
        if key in schema:
            bounds.append(shown.format(str(schema[key]).replace("|", "\\|")))
    return f"{kind} ({', '.join(bounds)})" if bounds else str(kind)


def _members(schema: dict[str, Any]) -> list[str]:
    if "anyOf" in schema:
        return [option["$ref"].rsplit("/", 1)[-1] for option in schema["anyOf"]]
    return [schema["$ref"].rsplit("/", 1)[-1]]


def render_events_doc() -> str:
    lines = ["# Events and commands on the wire", "",
             "Generated from the JSON Schemas in `schemas/` (`python -m "
             "julia_chips.contract.schemas`); do not edit by hand. Every message is JSON; a "
             "union's members are told apart by `type`. `contract.md` says how they travel "
             "(headers, ids, replies).", ""]
    for catalog in CATALOGS:
        schema = msgspec.json.schema(catalog.kind)
        defs = schema.get("$defs", {})
        lines += [f"## {catalog.title}", "",
                  f"{catalog.where}. Schema: [`schemas/{catalog.file}`](schemas/{catalog.file}).",
                  ""]
        for name in _members(schema):
            definition = defs[name]
            lines += [f"### {name}", ""]
            if definition.get("description"):
                lines += [" ".join(definition["description"].split()), ""]
            required = set(definition.get("required", []))
            lines += ["| field | type | |", "|---|---|---|"]
            for field, prop in definition.get("properties", {}).items():
                default = ("required" if field in required
                           else f"default `{json.dumps(prop.get('default'))}`")
                lines.append(f"| `{field}` | {_type(prop)} | {default} |")
            lines.append("")
    return "\n".join(lines)


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_schemas().items():
        (target / name).write_text(text)
    (target.parent / EVENTS_DOC).write_text(render_events_doc())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/schemas"))
