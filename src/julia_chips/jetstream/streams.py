"""Streams and KV buckets of DESIGN.md, created (or updated) idempotently at start-up.

Every stream is bounded (`STREAM_LIMITS`): a size, a largest message and, where the data is
transient, an age. A full stream refuses what comes next (discard `new`): the publisher
sees the error, instead of a work queue silently dropping an accepted command or an event
stream its oldest history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from julia_chips.contract.replay import GATEWAY_DEDUPE
from julia_chips.contract.subjects import Bucket, Stream

log = logging.getLogger(__name__)
DAY = 24 * 3600.0
KiB, MiB, GiB = 1024, 1024**2, 1024**3
LIMITS, WORK_QUEUE = RetentionPolicy.LIMITS, RetentionPolicy.WORK_QUEUE


class StreamLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How much one stream may hold; `JULIA_STREAM_MAX_*_<STREAM>` override each (config.py).

    :param max_age_days: None: kept for ever (history), or the stream's age comes from
        elsewhere (MSG_EVENTS: `JULIA_LEDGER_MAX_AGE_DAYS`).
    """

    max_bytes: int
    max_msg_size: int
    max_age_days: float | None = None


# The defaults. JetStream reserves each stream's max_bytes on every server holding a replica
# (their sum, ~10.6 GiB, must fit the server's `max_file_store`, by default 75% of the free
# disk), so they are what a fleet of a few hundred chips fills in years, not the disk.
# Message sizes: a command or an event is a few hundred bytes (an inbound text at most 64 Ki
# characters); a webhook body is at most `ingest/webhooks.py` MAX_BODY (256 KiB); the dead
# letters take the largest of any of them, with their reason.
STREAM_LIMITS: Mapping[Stream, StreamLimits] = {
    Stream.CHIP_CMDS: StreamLimits(max_bytes=128 * MiB, max_msg_size=64 * KiB),
    Stream.CHIP_EVENTS: StreamLimits(max_bytes=4 * GiB, max_msg_size=64 * KiB),
    Stream.ROUTE_CMDS: StreamLimits(max_bytes=128 * MiB, max_msg_size=512 * KiB),
    Stream.ROUTE_EVENTS: StreamLimits(max_bytes=2 * GiB, max_msg_size=64 * KiB),
    Stream.MSG_EVENTS: StreamLimits(max_bytes=2 * GiB, max_msg_size=64 * KiB),
    # At least the dedupe window it serves (contract/replay.py: a day and 5 minutes, the
    # Cloud API's), checked by config.py.
    Stream.GATEWAY_IN: StreamLimits(max_bytes=1 * GiB, max_msg_size=512 * KiB,
                                    max_age_days=2.0),
    Stream.GATEWAY_OBS: StreamLimits(max_bytes=512 * MiB, max_msg_size=512 * KiB,
                                     max_age_days=7.0),
    Stream.DEAD_LETTER: StreamLimits(max_bytes=512 * MiB, max_msg_size=1 * MiB,
                                     max_age_days=14.0),
    Stream.FLEET_EVENTS: StreamLimits(max_bytes=64 * MiB, max_msg_size=64 * KiB),
    Stream.ACTIVATIONS: StreamLimits(max_bytes=256 * MiB, max_msg_size=64 * KiB),
}


def stream_configs(replicas: int, msg_max_age_days: float = 90,
                   limits: Mapping[Stream, StreamLimits] = STREAM_LIMITS) -> list[StreamConfig]:
    """The streams this system owns; `replicas` is 1 in dev, 3 in a cluster."""

    def stream(name: Stream, subjects: list[str], retention: RetentionPolicy, **extra: Any
               ) -> StreamConfig:
        bound = limits[name]
        if bound.max_age_days is not None:
            extra["max_age"] = bound.max_age_days * DAY
        return StreamConfig(name=str(name), subjects=subjects, retention=retention,
                            num_replicas=replicas, storage=StorageType.FILE,
                            max_bytes=bound.max_bytes, max_msg_size=bound.max_msg_size,
                            discard=DiscardPolicy.NEW, **extra)

    return [
        stream(Stream.CHIP_CMDS, ["chip.cmd.>"], WORK_QUEUE),
        # The audit log: no age limit, and nobody may delete or purge it.
        stream(Stream.CHIP_EVENTS, ["chip.evt.>"], LIMITS, deny_delete=True, deny_purge=True,
               allow_direct=True, duplicate_window=600.0),
        stream(Stream.ROUTE_CMDS, ["route.cmd.>"], WORK_QUEUE),
        stream(Stream.ROUTE_EVENTS, ["route.evt.>"], LIMITS, allow_direct=True),
        stream(Stream.MSG_EVENTS, ["msg.evt.>"], LIMITS, max_age=msg_max_age_days * DAY,
               allow_direct=True),
        # A replayed webhook is dropped here until its stamp is too old (contract/replay.py).
        stream(Stream.GATEWAY_IN, ["gw.in.>"], LIMITS,
               duplicate_window=GATEWAY_DEDUPE.total_seconds()),
        stream(Stream.DEAD_LETTER, ["dlq.>"], LIMITS),
        stream(Stream.FLEET_EVENTS, ["fleet.evt.>"], LIMITS, allow_direct=True),
        # Typed signals the health monitor folds (gw.obs) and SMS the activator waits for
        # (gw.sms); a week (STREAM_LIMITS): the evidence the monitor scores.
        stream(Stream.GATEWAY_OBS, ["gw.obs.>", "gw.sms.>"], LIMITS, allow_direct=True),
        # Saga steps: a crashed activator resumes from these, so they are kept like chip events.
        stream(Stream.ACTIVATIONS, ["activation.evt.>"], LIMITS, allow_direct=True,
               duplicate_window=600.0),
    ]


async def ensure_streams(js: JetStreamContext, replicas: int = 1, lease_ttl: float = 10.0,
                         ledger_max_age_days: float = 90,
                         limits: Mapping[Stream, StreamLimits] = STREAM_LIMITS) -> None:
    """Create what is missing and bring existing streams to the current config."""
    for config in stream_configs(replicas, ledger_max_age_days, limits):
        try:
            info = await js.stream_info(str(config.name))
        except NotFoundError:
            await js.add_stream(config)
            continue
        config = _keep_replicas(kept_from_deletion(config, info),
                                info.config.num_replicas)
        if not _differs(config, info.config):
            continue  # a role that may only look (docs/security.md) starts against it as is
        # An immutable setting that differs (e.g. retention) keeps the stored stream.
        with contextlib.suppress(BadRequestError):
            await js.update_stream(config)
    await ensure_buckets(js, replicas, lease_ttl)


def kept_from_deletion(wanted: StreamConfig, info: StreamInfo) -> StreamConfig:
    """`wanted`, but never a max_bytes below what the stream holds (the server would delete
    its oldest messages to fit): that one stays as stored, with a warning. A shorter age is
    applied (that is what lowering it asks), with a warning that older messages go."""
    stored, name = info.config, wanted.name
    held = info.state.bytes if info.state else 0
    if wanted.max_bytes is not None and 0 < wanted.max_bytes < held:
        log.warning("stream %s holds %d bytes, more than its new max_bytes %d: kept at %s "
                    "(raise JULIA_STREAM_MAX_BYTES_%s, or free the stream)", name, held,
                    wanted.max_bytes, stored.max_bytes, name)
        wanted = dataclasses.replace(wanted, max_bytes=stored.max_bytes)
    if wanted.max_age and (not stored.max_age or wanted.max_age < stored.max_age):
        log.warning("stream %s: max age lowered from %s to %.0f s; older messages are deleted",
                    name, f"{stored.max_age:.0f} s" if stored.max_age else "none",
                    wanted.max_age)
    return wanted


def _differs(wanted: StreamConfig, stored: StreamConfig) -> bool:
    """Whether a setting we give differs from the stored one; those left at nats-py's
    default are the server's to fill in (a 0 duplicate window is stored as 2 minutes)."""
    defaults = dataclasses.asdict(StreamConfig())
    return any(value != defaults[name] and getattr(stored, name) != value
               for name, value in dataclasses.asdict(wanted).items())


def _keep_replicas(wanted: StreamConfig, stored: int | None) -> StreamConfig:
    """Never fewer copies than the stream has: a process started with the dev default of 1
    (a worker whose unit forgot `JULIA_REPLICAS`) must not strip a cluster's redundancy;
    it says so instead. More is fine: a cluster grows its streams by restarting with 3."""
    if stored is None or (wanted.num_replicas or 1) >= stored:
        return wanted
    log.warning("stream %s keeps its %d replicas (this process was started with "
                "JULIA_REPLICAS=%d; lowering them is an operator's decision: `nats stream edit`)",
                wanted.name, stored, wanted.num_replicas)
    return dataclasses.replace(wanted, num_replicas=stored)


async def ensure_buckets(js: JetStreamContext, replicas: int, lease_ttl: float) -> None:
    """Bounded at creation (an existing bucket keeps its bounds): a lease is a few bytes, a
    snapshot a chip's state and its last 100 replies, a doctor's key 32 bytes. Their copies
    are raised to `replicas` when a first process made them with fewer, never lowered (like
    the streams)."""
    buckets: tuple[tuple[Bucket, float | None, StreamLimits], ...] = (
        (Bucket.SHARD_LEASES, lease_ttl, StreamLimits(max_bytes=16 * MiB, max_msg_size=4 * KiB)),
        (Bucket.CHIP_SNAPSHOTS, None, StreamLimits(max_bytes=1 * GiB, max_msg_size=1 * MiB)),
        (Bucket.DOCTOR_KEYS, None, StreamLimits(max_bytes=1 * GiB, max_msg_size=4 * KiB)))
    for bucket, ttl, bound in buckets:
        try:
            await js.key_value(str(bucket))
        except Exception:  # nats-py raises BucketNotFoundError or NotFoundError by version
            await js.create_key_value(bucket=str(bucket), history=1, ttl=ttl, replicas=replicas,
                                      max_bytes=bound.max_bytes,
                                      max_value_size=bound.max_msg_size)
            continue
        stored = (await js.stream_info(f"KV_{bucket}")).config
        if (stored.num_replicas or 1) < replicas:
            with contextlib.suppress(BadRequestError):  # a role that may only look
                await js.update_stream(dataclasses.replace(stored, num_replicas=replicas))
