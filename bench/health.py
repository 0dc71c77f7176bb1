"""Health monitor throughput: signals folded per second vs the raw JetStream consume rate.

1,000 chips (Activated events appended straight to CHIP_EVENTS, no worker), N signals on
`gw.obs.<instance>` (receipts, replies, a few connection drops and bans). Then, on the same
stream in the same run: a bare durable pull consumer that only fetches and acks (the
baseline), and the real HealthMonitor (decode, fold, decide, batch ObserveTraffic, ack).
Commands are stored on CHIP_CMDS; no worker consumes them, so the fold is measured alone.

    python bench/health.py [--chips 1000] [--signals 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
import uvloop
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig

from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.clock import FixedClock
from julia_chips.contract import chip as ev
from julia_chips.contract.observations import (
    ConnectionUpdate,
    HealthSignal,
    InboundMessage,
    MessageStatus,
)
from julia_chips.contract.subjects import GATEWAY_SIGNALS, Stream
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.health.monitor import HealthMonitor, HealthMonitorSettings
from julia_chips.ingest.observation_log import encode_observation, observation_subject
from julia_chips.jetstream.streams import ensure_streams

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


async def activate(nc: NATS, chips: int) -> None:
    log = JetStreamChipEventLog(nc.jetstream())

    async def one(n: int) -> None:
        chip = f"chip-{n:05d}"
        base = {"chip_id": chip, "command_id": "bench", "occurred_at": NOW}
        await log.append(chip, [
            ev.Provisioned(event_id=f"{chip}:p", **base),  # type: ignore[arg-type]
            ev.ActivationStarted(event_id=f"{chip}:s", **base),  # type: ignore[arg-type]
            ev.Activated(event_id=f"{chip}:a", instance=f"inst-{n:05d}", host="vps",
                         daily_cap=20, **base)], 0)  # type: ignore[arg-type]
    for start in range(0, chips, 100):
        await asyncio.gather(*(one(n) for n in range(start, min(chips, start + 100))))


def signal(i: int, chips: int) -> HealthSignal:
    """Round-robin over chips; per message: sent, delivered, read, and every 4th a reply."""
    chip, k = i % chips, i // chips
    instance, msg, phone = f"inst-{chip:05d}", k // 4, f"+5511{chip:04d}{k // 4:05d}"
    if chip < 5 and k == 50:  # a handful of bans: ReportBan and the brake on the way
        return ConnectionUpdate(instance=instance, state="close", status_reason=403,
                                observed_at=NOW)
    if k % 97 == 96:
        return ConnectionUpdate(instance=instance, state="connecting", status_reason=428,
                                observed_at=NOW)
    step = k % 4
    if step == 3:
        return InboundMessage(instance=instance, message_id=f"in{msg}", from_phone=phone,
                              text="ok", sent_at=NOW)
    status = ("SERVER_ACK", "DELIVERY_ACK", "READ")[step]
    return MessageStatus(instance=instance, message_id=f"m{msg}", remote_phone=phone,
                         status=status, observed_at=NOW)  # type: ignore[arg-type]


async def publish(nc: NATS, chips: int, count: int) -> None:
    """Core publishes (the stream stores them) in chunks, then wait for the stream count."""
    js = nc.jetstream()
    for i in range(count):
        s = signal(i, chips)
        await nc.publish(observation_subject(s), encode_observation(s))
        if i % 20_000 == 19_999:
            await nc.flush()
            while (await js.stream_info(Stream.GATEWAY_OBS)).state.messages < i - 50_000:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    await nc.flush()
    while (await js.stream_info(Stream.GATEWAY_OBS)).state.messages < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def raw_rate(nc: NATS, count: int, batch: int) -> float:
    """Fetch and ack only: the most any consumer of this stream can do from Python."""
    sub = await nc.jetstream().pull_subscribe(
        GATEWAY_SIGNALS, durable="bench-raw", stream=Stream.GATEWAY_OBS,
        config=ConsumerConfig(ack_policy=AckPolicy.ALL, max_ack_pending=100_000))
    seen, started = 0, time.perf_counter()
    while seen < count:
        msgs = await sub.fetch(batch, timeout=5)
        seen += len(msgs)
        await msgs[-1].ack()
    return count / (time.perf_counter() - started)


async def monitor_rate(nc: NATS, count: int, batch: int) -> tuple[float, HealthMonitor]:
    settings = HealthMonitorSettings(fetch_batch=batch, flush_interval=1.0, tick=1.0)
    monitor = HealthMonitor(nc, FixedClock(NOW), settings)
    task = asyncio.create_task(monitor.run())
    await monitor.feed.caught_up.wait()
    started = time.perf_counter()
    while monitor.folded + monitor.rejected < count:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    monitor.stop()
    await task
    return count / elapsed, monitor


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-health-"))
    server = EmbeddedNats(workdir / "nats", 16)
    server.start()
    try:
        nc = await nats.connect(server.url)
        await ensure_streams(nc.jetstream(), 1)
        await activate(nc, args.chips)
        t0 = time.perf_counter()
        await publish(nc, args.chips, args.signals)
        print(f"published {args.signals:,} signals for {args.chips:,} chips "
              f"in {time.perf_counter() - t0:.1f} s")
        raw = await raw_rate(nc, args.signals, args.batch)
        print(f"raw JetStream consume (fetch {args.batch} + ack): {raw:,.0f} msg/s")
        folded, monitor = await monitor_rate(nc, args.signals, args.batch)
        print(f"health monitor: {folded:,.0f} signals/s folded; {monitor.folded:,} folded, "
              f"{monitor.rejected:,} rejected, {monitor.commands_sent:,} commands issued, "
              f"brake engaged: {monitor.brake.engaged}")
        await nc.close()
    finally:
        server.stop()
    print(f"result: health value={folded:.0f} baseline={raw:.0f} ratio={folded / raw:.2f} "
          "target=0.5")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    uvloop.run(main(parser.parse_args()))
