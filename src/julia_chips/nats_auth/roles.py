"""The NATS roles and the least permissions each needs (docs/security.md).

Every subject here was found in the code that role runs: its own subjects, the JetStream API
calls nats-py makes for them (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`,
`$JS.API.DIRECT.GET.<stream>`, `$JS.ACK.<stream>.>`...), KV (`$KV.<bucket>.>`) and its own
inbox. A role subscribes to `_INBOX.<role>.>` only (clients set `inbox_prefix` from
JULIA_NATS_ROLE), so no role reads the answers meant for another (publish acks, dead letters
shown to an operator). Only `admin` may delete or purge a stream; `system`, the union of the
parts that `julia-chips run` holds in one process, may create and update streams and purge
dead letters (the operations desk), never delete a stream or purge another one.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from julia_chips.contract.subjects import (
    FLEET_BRAKE_RELEASE,
    GATEWAY_SIGNALS,
    OPS_COMMANDS,
    PRESENCE,
    Bucket,
    Stream,
)

ROLE_INBOX = "_INBOX.{role}"  # nats-py `inbox_prefix` of a client connected as `role`


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def __or__(self, other: Permissions) -> Permissions:
        return Permissions(publish=_unique(self.publish, other.publish),
                           subscribe=_unique(self.subscribe, other.subscribe))


def _unique(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for group in groups for s in group))


def _pub(*subjects: str) -> Permissions:
    return Permissions(publish=subjects, subscribe=())


def _sub(*subjects: str) -> Permissions:
    return Permissions(publish=(), subscribe=subjects)


JS_INFO = _pub("$JS.API.INFO", "$JS.API.STREAM.INFO.*")  # ensure_streams looks, never writes


def reads(stream: str, *filters: str) -> Permissions:
    """Reading `stream`: consumers (limited to `filters` when given; rewound to their ack
    floor at start-up, consumer_reset.py), direct and message gets, acks and flow control.
    A stream whose consumers are filtered gets no direct get, since one by sequence would
    reach every subject in it."""
    consumers = ((f"$JS.API.CONSUMER.CREATE.{stream}.*.{f}" for f in filters) if filters else
                 (f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.API.CONSUMER.CREATE.{stream}.>",
                  f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
                  f"$JS.API.DIRECT.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>",
                  f"$JS.API.STREAM.MSG.GET.{stream}"))
    return _pub(*consumers, f"$JS.API.CONSUMER.INFO.{stream}.*",
                f"$JS.API.CONSUMER.RESET.{stream}.*",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*", f"$JS.API.CONSUMER.DELETE.{stream}.*",
                f"$JS.ACK.{stream}.>", f"$JS.FC.{stream}.>")


def kv(bucket: Bucket) -> Permissions:
    """A KV bucket: its keys, and its stream read as any other."""
    return _pub(f"$KV.{bucket}.>") | reads(f"KV_{bucket}")


def inbox(role: str) -> Permissions:
    return _sub(f"{ROLE_INBOX.format(role=role)}.>")


ANSWERS = _pub("_INBOX.>")  # replies to requesters, each under its own role's inbox
# A lease holder subscribes to its presence subject; a standby probes another's (publish).
# Any holder may subscribe to any name: one that posed as another would only make it look
# alive, so its standbys wait for the TTL (jetstream/leases/presence.py).
LEASES = kv(Bucket.SHARD_LEASES) | _pub(PRESENCE) | _sub(PRESENCE)

EDGE = _pub("gw.in.>") | inbox("edge")
WORKER = (JS_INFO | reads(Stream.CHIP_CMDS) | reads(Stream.CHIP_EVENTS) | _pub("chip.evt.>")
          | LEASES | kv(Bucket.CHIP_SNAPSHOTS) | _pub("dlq.>") | ANSWERS | inbox("worker"))
PROJECTIONS = (JS_INFO | LEASES | reads(Stream.CHIP_EVENTS) | reads(Stream.ROUTE_EVENTS)
               | reads(Stream.MSG_EVENTS) | reads(Stream.FLEET_EVENTS)
               | reads(Stream.ACTIVATIONS) | reads(Stream.DEAD_LETTER) | inbox("projections"))
BALANCER = (JS_INFO | LEASES | reads(Stream.ROUTE_CMDS) | reads(Stream.ROUTE_EVENTS)
            | reads(Stream.MSG_EVENTS) | reads(Stream.CHIP_EVENTS) | reads(Stream.FLEET_EVENTS)
            | kv(Bucket.DOCTOR_KEYS) | _pub("route.evt.>", "msg.evt.>", "dlq.>") | ANSWERS
            | inbox("balancer"))
ACTIVATOR = (JS_INFO | LEASES | reads(Stream.CHIP_EVENTS) | reads(Stream.ACTIVATIONS)
             | reads(Stream.GATEWAY_OBS) | _pub("activation.evt.>", "chip.cmd.>")
             | inbox("activator"))
HEALTH_MONITOR = (JS_INFO | LEASES | reads(Stream.GATEWAY_OBS, GATEWAY_SIGNALS)
                  | reads(Stream.CHIP_EVENTS) | reads(Stream.FLEET_EVENTS)
                  | _pub("chip.cmd.>", "fleet.evt.>") | _sub(FLEET_BRAKE_RELEASE) | ANSWERS
                  | inbox("health-monitor"))
DERIVER = (JS_INFO | LEASES | reads(Stream.GATEWAY_IN) | reads(Stream.GATEWAY_OBS)
           | _pub("gw.obs.>", "gw.sms.>", "dlq.>") | inbox("deriver"))
READER = JS_INFO | reads(Stream.CHIP_EVENTS) | reads(Stream.FLEET_EVENTS) | inbox("reader")
OPERATOR = (READER | reads(Stream.ACTIVATIONS) | reads(Stream.MSG_EVENTS)
            | _pub("chip.cmd.>", "route.cmd.>", FLEET_BRAKE_RELEASE, OPS_COMMANDS)
            | inbox("operator"))
# The parts `run` holds besides those above: the warmer scheduler, doctor feedback, the
# operations desk (which answers ops.cmd.> and replays or purges dead letters) and HTTP.
RUN_ONLY = (reads(Stream.GATEWAY_OBS) | reads(Stream.DEAD_LETTER) | _sub(OPS_COMMANDS)
            | _pub("chip.cmd.>", "route.cmd.>", "gw.obs.>", "msg.evt.>",
                   f"$JS.API.STREAM.PURGE.{Stream.DEAD_LETTER}",
                   f"$JS.API.STREAM.MSG.DELETE.{Stream.DEAD_LETTER}",
                   # the erasure deletes what holds an erased doctor's phone or texts
                   *(f"$JS.API.STREAM.MSG.DELETE.{s}" for s in (
                       Stream.ROUTE_EVENTS, Stream.GATEWAY_IN, Stream.GATEWAY_OBS)),
                   "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*"))
SYSTEM = (EDGE | WORKER | PROJECTIONS | BALANCER | ACTIVATOR | HEALTH_MONITOR | DERIVER
          | RUN_ONLY | inbox("system"))
ADMIN = Permissions(publish=(">",), subscribe=(">",))

ROLES: dict[str, Permissions] = {
    "edge": EDGE, "worker": WORKER, "projections": PROJECTIONS, "balancer": BALANCER,
    "activator": ACTIVATOR, "health-monitor": HEALTH_MONITOR, "deriver": DERIVER,
    "operator": OPERATOR, "reader": READER, "system": SYSTEM, "admin": ADMIN,
}
