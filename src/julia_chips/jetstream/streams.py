"""Streams and KV buckets of DESIGN.md, created (or updated) idempotently at start-up."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from julia_chips.contract.replay import GATEWAY_DEDUPE
from julia_chips.contract.subjects import Bucket, Stream

log = logging.getLogger(__name__)
DAY = 24 * 3600.0
LIMITS, WORK_QUEUE = RetentionPolicy.LIMITS, RetentionPolicy.WORK_QUEUE


def stream_configs(replicas: int, msg_max_age_days: float = 90) -> list[StreamConfig]:
    """The streams this system owns; `replicas` is 1 in dev, 3 in a cluster."""

    def stream(name: Stream, subject: str, retention: RetentionPolicy, **extra: Any
               ) -> StreamConfig:
        return StreamConfig(name=str(name), subjects=[subject], retention=retention,
                            num_replicas=replicas, storage=StorageType.FILE, **extra)

    return [
        stream(Stream.CHIP_CMDS, "chip.cmd.>", WORK_QUEUE),
        # The audit log: no age limit, and nobody may delete or purge it.
        stream(Stream.CHIP_EVENTS, "chip.evt.>", LIMITS, deny_delete=True, deny_purge=True,
               allow_direct=True, duplicate_window=600.0),
        stream(Stream.ROUTE_CMDS, "route.cmd.>", WORK_QUEUE),
        stream(Stream.ROUTE_EVENTS, "route.evt.>", LIMITS, allow_direct=True),
        stream(Stream.MSG_EVENTS, "msg.evt.>", LIMITS, max_age=msg_max_age_days * DAY,
               allow_direct=True),
        # A replayed webhook is dropped here until its stamp is too old (contract/replay.py).
        stream(Stream.GATEWAY_IN, "gw.in.>", LIMITS, max_age=7 * DAY,
               duplicate_window=GATEWAY_DEDUPE.total_seconds()),
        stream(Stream.DEAD_LETTER, "dlq.>", LIMITS, discard=DiscardPolicy.OLD),
        stream(Stream.FLEET_EVENTS, "fleet.evt.>", LIMITS, allow_direct=True),
        # Typed signals the health monitor folds (gw.obs) and SMS the activator waits for
        # (gw.sms); a week, like the raw webhooks they come from.
        StreamConfig(name=str(Stream.GATEWAY_OBS), subjects=["gw.obs.>", "gw.sms.>"],
                     retention=LIMITS, num_replicas=replicas, storage=StorageType.FILE,
                     max_age=7 * DAY, allow_direct=True),
        # Saga steps: a crashed activator resumes from these, so they are kept like chip events.
        stream(Stream.ACTIVATIONS, "activation.evt.>", LIMITS, allow_direct=True,
               duplicate_window=600.0),
    ]


async def ensure_streams(js: JetStreamContext, replicas: int = 1, lease_ttl: float = 10.0,
                         ledger_max_age_days: float = 90) -> None:
    """Create what is missing and bring existing streams to the current config."""
    for config in stream_configs(replicas, ledger_max_age_days):
        try:
            stored = (await js.stream_info(str(config.name))).config
        except NotFoundError:
            await js.add_stream(config)
            continue
        config = _keep_replicas(config, stored.num_replicas)
        if not _differs(config, stored):
            continue  # a role that may only look (docs/security.md) starts against it as is
        # An immutable setting that differs (e.g. retention) keeps the stored stream.
        with contextlib.suppress(BadRequestError):
            await js.update_stream(config)
    await ensure_buckets(js, replicas, lease_ttl)


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
    """The buckets at `replicas` copies, raised to it when a first process made them with
    fewer, never lowered (like the streams)."""
    buckets: tuple[tuple[Bucket, float | None], ...] = (
        (Bucket.SHARD_LEASES, lease_ttl), (Bucket.CHIP_SNAPSHOTS, None),
        (Bucket.DOCTOR_KEYS, None))
    for bucket, ttl in buckets:
        try:
            await js.key_value(str(bucket))
        except Exception:  # nats-py raises BucketNotFoundError or NotFoundError by version
            await js.create_key_value(bucket=str(bucket), history=1, ttl=ttl, replicas=replicas)
            continue
        stored = (await js.stream_info(f"KV_{bucket}")).config
        if (stored.num_replicas or 1) < replicas:
            with contextlib.suppress(BadRequestError):  # a role that may only look
                await js.update_stream(dataclasses.replace(stored, num_replicas=replicas))
