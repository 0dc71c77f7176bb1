"""Every subject, stream and bucket name in one place (DESIGN.md, "Subjects and streams")."""

from __future__ import annotations

from enum import StrEnum


class Stream(StrEnum):
    CHIP_CMDS = "CHIP_CMDS"
    CHIP_EVENTS = "CHIP_EVENTS"
    ROUTE_CMDS = "ROUTE_CMDS"
    ROUTE_EVENTS = "ROUTE_EVENTS"
    MSG_EVENTS = "MSG_EVENTS"
    GATEWAY_IN = "GATEWAY_IN"
    DEAD_LETTER = "DEAD_LETTER"
    FLEET_EVENTS = "FLEET_EVENTS"  # not in DESIGN.md's table yet: the fleet brake's history


class Bucket(StrEnum):
    SHARD_LEASES = "shard_leases"
    CHIP_SNAPSHOTS = "chip_snapshots"


class JuliaHeader(StrEnum):
    EVENT_TYPE = "Julia-Event-Type"
    EVENT_VERSION = "Julia-Event-Version"
    DLQ_REASON = "Julia-Dlq-Reason"
    DLQ_SUBJECT = "Julia-Dlq-Subject"
    REPLY_TO = "Julia-Reply-To"  # also in a header, so even a body that is not JSON gets an answer


def chip_command(chip_id: str) -> str:
    """Where clients publish; nats.conf maps it to `chip.cmd.<partition>.<chip_id>`."""
    return f"chip.cmd.{chip_id}"


def partition_commands(partition: int) -> str:
    """The filter of one partition's consumer."""
    return f"chip.cmd.{partition}.*"


def chip_events(chip_id: str) -> str:
    return f"chip.evt.{chip_id}"


FLEET_BRAKE = "fleet.evt.brake"


def dead_letter(kind: str, key: str) -> str:
    return f"dlq.{kind}.{key}"


def chip_id_of_command_subject(subject: str) -> str:
    """`chip.cmd.<partition>.<chip_id>` -> chip_id."""
    return subject.rsplit(".", 1)[-1]
