"""How the operator commands answer: rich tables for people, `--json` for scripts, and one
exit code per kind of outcome, so a script can tell a refusal from a system that is down.

Tables never show a phone number unmasked (`privacy.mask_phone`); `--json` carries what the
HTTP API carries.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from rich.console import Console
from rich.table import Table

T = TypeVar("T", bound=msgspec.Struct)
OK = 0
REFUSED = 1  # the system answered no (a rule, bad input, nothing there)
UNREACHABLE = 2  # no answer: the system is down, or not where the configuration points
PIPED_WIDTH = 200  # characters a table may take when stdout is not a terminal


def common_options() -> argparse.ArgumentParser:
    """The options every operator command takes, as an argparse parent."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the system's answer")
    return common


def aware_datetime(text: str) -> datetime:
    """An argparse type: ISO 8601 with a UTC offset (a bare time would be guessed at)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from err
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +00:00)")
    return value


def chip_id(text: str) -> str:
    """An argparse type: chips are named by UUID (`chip provision` prints it)."""
    try:
        return str(uuid.UUID(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a chip id (a UUID)") from err


def checked(command: T) -> T:
    """`command` through the bounds its receiver decodes with (building a Struct skips them):
    a bad `--phone` is refused here, naming the field, rather than by the receiver.

    :raises msgspec.ValidationError: naming the field.
    """
    return msgspec.convert(msgspec.to_builtins(command, builtin_types=(datetime,)),
                           type(command))


def shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


class Output:
    def __init__(self, as_json: bool, out: Console | None = None,
                 err: Console | None = None) -> None:
        self.as_json = as_json
        # Piped, rich would cut tables to 80 columns: ids would end in an ellipsis.
        self.out = out or Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
        self.err = err or Console(stderr=True, soft_wrap=True)

    def json(self, value: Any) -> None:
        """Plain stdout, no markup or wrapping: what `jq` reads."""
        print(msgspec.json.encode(value).decode(), flush=True)  # `tail` lines as they come

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")  # an id folds, never loses its tail
        for row in rows:
            table.add_row(*(shown(v) for v in row))
        self.out.print(table)

    def fields(self, title: str, pairs: Iterable[tuple[str, Any]]) -> None:
        self.table(title, ("field", "value"), pairs)

    def done(self, message: str) -> int:
        self.out.print(message, markup=False)
        return OK

    def refused(self, message: str) -> int:
        self.err.print(f"refused: {message}", markup=False, style="red")
        return REFUSED

    def unreachable(self, message: str) -> int:
        self.err.print(f"unreachable: {message}", markup=False, style="red")
        return UNREACHABLE
