"""Every subject, stream and bucket name in one place (DESIGN.md, "Subjects and streams")."""

from __future__ import annotations

import re
import uuid
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
    GATEWAY_OBS = "GATEWAY_OBS"  # not in DESIGN.md's table yet: typed signals for health
    ACTIVATIONS = "ACTIVATIONS"  # the activator saga's events (not in DESIGN.md yet)


class Bucket(StrEnum):
    SHARD_LEASES = "shard_leases"
    CHIP_SNAPSHOTS = "chip_snapshots"
    DOCTOR_KEYS = "doctor_keys"  # each doctor's key: deleting it erases what it sealed


class JuliaHeader(StrEnum):
    EVENT_TYPE = "Julia-Event-Type"
    EVENT_VERSION = "Julia-Event-Version"
    DLQ_REASON = "Julia-Dlq-Reason"
    DLQ_SUBJECT = "Julia-Dlq-Subject"
    REPLY_TO = "Julia-Reply-To"  # also in a header, so even a body that is not JSON gets an answer
    RECEIVED_AT = "Julia-Received-At"  # ISO 8601, UTC: our clock when a webhook was taken in
    RAW_SEQ = "Julia-Raw-Seq"  # on an observation: the GATEWAY_IN sequence it was derived from
    RAW_PART = "Julia-Raw-Part"  # `<n>/<of>`: its place among its body's observations, if many


def chip_command(chip_id: str) -> str:
    """Where clients publish; nats.conf maps it to `chip.cmd.<partition>.<chip_id>`."""
    return f"chip.cmd.{chip_id}"


def partition_commands(partition: int) -> str:
    """The filter of one partition's consumer."""
    return f"chip.cmd.{partition}.*"


def chip_events(chip_id: str) -> str:
    return f"chip.evt.{chip_id}"


def chip_id_of_event_subject(subject: str) -> str:
    """`chip.evt.<chip_id>` -> chip_id."""
    return subject.removeprefix("chip.evt.")


FLEET_BRAKE = "fleet.evt.brake"
FLEET_BRAKE_RELEASE = "fleet.cmd.brake.release"  # core request: an operator lifts the brake


class OpsSubject(StrEnum):
    """Core NATS requests an operator makes (`contract/operations.py`, `operations/desk.py`)."""

    DEAD_LETTERS_LIST = "ops.cmd.dlq.list"
    DEAD_LETTERS_SHOW = "ops.cmd.dlq.show"
    DEAD_LETTERS_REPLAY = "ops.cmd.dlq.replay"
    DEAD_LETTERS_PURGE = "ops.cmd.dlq.purge"
    UNKNOWN_SENDS_LIST = "ops.cmd.sends.unknown"
    UNKNOWN_SEND_SETTLE = "ops.cmd.sends.settle"
    DOCTOR_ERASE = "ops.cmd.doctor.erase"


OPS_COMMANDS = "ops.cmd.>"
GATEWAY_SIGNALS = "gw.obs.>"  # every typed gateway signal: what the health monitor reads


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class SubjectTokenInvalid(ValueError):
    """An outside name (instance, account) that cannot be one NATS subject token."""


def subject_token(name: str) -> str:
    """`name` unchanged if it is safe as one subject token; outsiders choose these names, and
    a `.`, `*` or `>` in them would let a webhook write under someone else's subject."""
    if not _TOKEN.match(name):
        raise SubjectTokenInvalid(f"{name[:40]!r} is not usable as a subject token")
    return name


def gateway_raw(source: str, key: str) -> str:
    """`gw.in.<source>.<instance|account>`: a raw webhook body, stored before the HTTP 200."""
    return f"gw.in.{source}.{subject_token(key)}"


def gateway_observation(instance: str) -> str:
    """`gw.obs.<instance>`: typed gateway signals, refusing (rather than rewriting) a name
    that is not one token: the webhook edge answers 400 rather than file it elsewhere."""
    return f"gw.obs.{subject_token(instance)}"


def sms_observation(account_id: str) -> str:
    """`gw.sms.<salvy account>`: SMS that reached one of our numbers (the activator waits here)."""
    return f"gw.sms.{subject_token(account_id)}"


def activation_events(chip_id: str) -> str:
    """`activation.evt.<chip_id>`: one activator saga's steps."""
    return f"activation.evt.{chip_id}"


def dead_letter(kind: str, key: str) -> str:
    return f"dlq.{kind}.{key}"


def is_uuid(value: str) -> bool:
    """Chip ids are UUIDs in the one form `str(uuid.UUID(...))` prints (lowercase, hyphens):
    another spelling of the same UUID would be another subject, so another chip's history
    beside the first; anything else cannot be a `julia_chips` row either."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def chip_id_of_command_subject(subject: str) -> str:
    """`chip.cmd.<partition>.<chip_id>` -> chip_id."""
    return subject.rsplit(".", 1)[-1]


def route_command(verb: str) -> str:
    """`route.cmd.send`, `route.cmd.optout`, `route.cmd.optin`, `route.cmd.inbound`."""
    return f"route.cmd.{verb}"


def route_verb(subject: str) -> str:
    """`route.cmd.<verb>` -> verb: the last token, as for chip commands."""
    return subject.rsplit(".", 1)[-1]


def route_events(doctor_id: str) -> str:
    return f"route.evt.{doctor_id}"


def message_events(chip_id: str) -> str:
    return f"msg.evt.{chip_id}"


BALANCER_LEASE = "balancer"  # key in `shard_leases`: whoever holds it leads the balancer
# Keys in `shard_leases` for the other singleton parts: whoever holds one runs that part.
DERIVER_LEASE = "observation-deriver"
HEALTH_MONITOR_LEASE = "health-monitor"
ACTIVATOR_LEASE = "activator"
PROJECTIONS_LEASE = "projections"

PRESENCE = "_JULIA.presence.>"  # core NATS, no stream: every lease holder's presence
_NOT_IN_A_TOKEN = re.compile(r"[^A-Za-z0-9_:-]")


def presence(holder: str) -> str:
    """`_JULIA.presence.<holder>`: a lease holder subscribes here while it lives, so a standby
    that gets "no responders" knows its connection is gone (`jetstream/leases/presence.py`).
    A character that cannot be in a token becomes `_`: two names that meet that way only look
    alive for each other, which makes a standby wait for the TTL, never take over early."""
    return f"_JULIA.presence.{_NOT_IN_A_TOKEN.sub('_', holder)[:128]}"
