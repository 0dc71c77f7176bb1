"""JSON Schemas of the wire types, generated into docs/schemas/ (`python -m` this module).

A unit test compares the files with what the code generates, so they cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from julia_chips.contract.chip import AnyChipEvent
from julia_chips.contract.chip_commands import AnyChipCommand, CommandReply

SCHEMA_FILES = ("chip-commands.json", "chip-events.json", "command-reply.json")


def render_schemas() -> dict[str, str]:
    types: dict[str, object] = {
        "chip-commands.json": AnyChipCommand,
        "chip-events.json": AnyChipEvent,
        "command-reply.json": CommandReply,
    }
    return {name: json.dumps(msgspec.json.schema(t), indent=2, sort_keys=True) + "\n"
            for name, t in types.items()}


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_schemas().items():
        (target / name).write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/schemas"))
