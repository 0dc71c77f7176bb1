"""A NATS user per role (nats_auth/roles.py) against a real nats-server started with those
permissions: each role does its job, and is refused what it must not do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from julia_chips.chip.client import ChipClient
from julia_chips.chip.event_log import JetStreamChipEventLog
from julia_chips.contract import chip_commands as cmd
from julia_chips.contract.subjects import (
    FLEET_BRAKE,
    FLEET_BRAKE_RELEASE,
    Stream,
    chip_command,
    chip_events,
    gateway_raw,
    sms_observation,
)
from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.infrastructure import NatsIdentity, connect_nats
from julia_chips.jetstream.leases.presence import holder_gone, present
from julia_chips.jetstream.leases.sightings import LeaseTiming
from julia_chips.jetstream.streams import ensure_streams
from julia_chips.nats_auth.roles import ROLES
from tests.conftest import LEASE_TTL, PARTITIONS, new_chip_id
from tests.integration.workers import running_worker

REFUSED = 0.5  # seconds to wait for the answer a refused request never gets
Connect = Callable[[str], Awaitable[NATS]]


@pytest.fixture
async def as_role(tmp_path: Path) -> AsyncIterator[Connect]:
    """Connections to a server with JULIA_NATS_AUTH=on's users, streams made by admin."""
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS, auth=True)
    await asyncio.to_thread(server.start)
    opened: list[NATS] = []

    async def connect(role: str) -> NATS:
        opened.append(await connect_nats(server.url_for(role), NatsIdentity(role=role)))
        return opened[-1]

    await ensure_streams((await connect("admin")).jetstream(), lease_ttl=LEASE_TTL)
    yield connect
    for nc in opened:
        await nc.close()
    await asyncio.to_thread(server.stop)


async def _answered(action: Awaitable[object]) -> bool:
    """Whether the server answered `action`; a refused publish is dropped, unanswered."""
    try:
        await asyncio.wait_for(action, REFUSED)
    except (TimeoutError, NotFoundError):
        return False
    return True


async def test_a_stranger_or_a_wrong_password_is_not_let_in(as_role: Connect) -> None:
    admin = await as_role("admin")
    url = f"nats://reader:wrong@{admin.connected_url.netloc.rpartition('@')[2]}"
    for stranger in (url, url.replace("reader:wrong@", "")):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await asyncio.wait_for(NATS().connect(stranger, allow_reconnect=False), 5)


async def test_a_worker_answers_a_command_sent_by_the_operator_and_the_reader_reads_it(
        as_role: Connect) -> None:
    worker, operator, reader = [await as_role(r) for r in ("worker", "operator", "reader")]
    chip = new_chip_id()
    async with running_worker(worker):
        reply = await ChipClient(operator).send(chip, cmd.Provision(command_id="p"), timeout=10)
    assert reply.ok, reply
    events = await JetStreamChipEventLog(reader.jetstream()).load(chip)
    assert [type(e.event).__name__ for e in events] == ["Provisioned"]


async def test_only_the_webhook_edge_and_admin_may_store_a_raw_webhook_and_the_edge_nothing_else(
        as_role: Connect) -> None:
    edge = (await as_role("edge")).jetstream()
    assert await _answered(edge.publish(gateway_raw("evolution", "inst-1"), b"{}"))
    for subject in (chip_command(new_chip_id()), chip_events(new_chip_id()), "route.cmd.send"):
        assert not await _answered(edge.publish(subject, b"{}")), subject
    assert not await _answered(edge.stream_info(Stream.CHIP_EVENTS))
    reader = (await as_role("reader")).jetstream()
    assert not await _answered(reader.publish(gateway_raw("evolution", "inst-1"), b"{}"))


async def test_no_role_but_the_worker_and_admin_appends_chip_events(as_role: Connect) -> None:
    chip = new_chip_id()

    async def append_as(role: str) -> bool:
        return await _answered((await as_role(role)).jetstream().publish(chip_events(chip), b"{}"))

    others = sorted(ROLES.keys() - {"worker", "system", "admin"})
    assert await asyncio.gather(*map(append_as, others)) == [False] * len(others)
    admin = (await as_role("admin")).jetstream()
    with pytest.raises(NotFoundError):
        await admin.get_last_msg(Stream.CHIP_EVENTS, chip_events(chip))


async def test_only_admin_deletes_or_purges_a_stream(as_role: Connect) -> None:
    async def refused_as(role: str) -> None:
        js = (await as_role(role)).jetstream()
        for stream in (Stream.CHIP_EVENTS, Stream.ACTIVATIONS, Stream.ROUTE_EVENTS):
            assert not await _answered(js.delete_stream(stream)), (role, stream)
            assert not await _answered(js.purge_stream(stream)), (role, stream)

    await asyncio.gather(*map(refused_as, ROLES.keys() - {"admin"}))
    admin = (await as_role("admin")).jetstream()
    assert (await admin.stream_info(Stream.CHIP_EVENTS)).config.name == "CHIP_EVENTS"
    assert await admin.delete_stream(Stream.ROUTE_EVENTS)  # admin may


async def test_only_the_operator_asks_the_health_monitor_to_release_the_brake(
        as_role: Connect) -> None:
    """The operator asks (fleet.cmd.brake.release), the health monitor alone records it
    (fleet.evt.brake): no other role can lift the brake either way."""
    monitor = await as_role("health-monitor")
    asked: list[bytes] = []

    async def answer(msg: Msg) -> None:
        asked.append(msg.data)
        await monitor.publish(msg.reply, b'{"ok": true}')

    await monitor.subscribe(FLEET_BRAKE_RELEASE, cb=answer)
    await monitor.flush()
    askers, recorders = {"operator", "admin"}, {"health-monitor", "system", "admin"}

    async def release_as(role: str) -> None:
        nc = await as_role(role)
        asking = nc.request(FLEET_BRAKE_RELEASE, role.encode(), timeout=REFUSED)
        assert await _answered(asking) is (role in askers), role
        recording = nc.jetstream().publish(FLEET_BRAKE, b"{}")
        assert await _answered(recording) is (role in recorders), role

    await asyncio.gather(*map(release_as, ROLES))
    assert sorted(asked) == sorted(r.encode() for r in askers)


async def test_sms_codes_are_read_by_the_activator_and_no_other_part(as_role: Connect) -> None:
    deriver = (await as_role("deriver")).jetstream()
    await deriver.publish(sms_observation("acct-1"), b'{"code": "123456"}')
    # The deriver writes them; `system` is every part in one process (docs/security.md).
    readers = {"activator", "deriver", "system", "admin"}

    async def read_as(role: str) -> None:
        js = (await as_role(role)).jetstream()
        by_subject = js.get_msg(Stream.GATEWAY_OBS, subject="gw.sms.acct-1", direct=True)
        assert await _answered(by_subject) is (role in readers), role
        assert await _answered(js.get_msg(Stream.GATEWAY_OBS, seq=1)) is (role in readers), role

    await asyncio.gather(*map(read_as, ROLES))
    monitor = (await as_role("health-monitor")).jetstream()
    feed = monitor.pull_subscribe("gw.sms.>", durable="peek", stream=Stream.GATEWAY_OBS)
    assert not await _answered(feed)


async def test_a_role_hears_neither_another_roles_inbox_nor_raw_traffic(as_role: Connect) -> None:
    """No one answers the operator's requests (publish acks, dead letters shown) first, or
    listens in on SMS codes, but the operator on its own inbox."""
    reader, operator, admin = [await as_role(r) for r in ("reader", "operator", "admin")]
    snooped = [await reader.subscribe(s) for s in ("_INBOX.>", "_INBOX.operator.>", "gw.sms.>")]
    own = await operator.subscribe("_INBOX.operator.>")
    await asyncio.gather(reader.flush(), operator.flush())
    await admin.publish("_INBOX.operator.abc", b"an answer")
    await admin.publish(sms_observation("acct-1"), b'{"code": "123456"}')
    await admin.flush()
    assert (await own.next_msg(timeout=5)).data == b"an answer"
    for sub in snooped:
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=REFUSED)


LEASE_ROLES = ("worker", "projections", "balancer", "activator", "health-monitor", "deriver",
               "system")


async def test_every_role_that_holds_leases_is_present_and_probes_another(
        as_role: Connect) -> None:
    """A holder's presence subscription and a standby's probe pass the permissions: refused,
    a slow holder would look gone (no subscriber) and lose its lease early, or a standby
    never prove a death. The reader holds no lease: its subscription is refused."""
    timing = LeaseTiming.for_ttl(LEASE_TTL)
    conns = {role: await as_role(role) for role in LEASE_ROLES}
    async with AsyncExitStack() as stack:
        for role, nc in conns.items():
            await stack.enter_async_context(present(nc, f"holder-{role}"))
        for n, (role, nc) in enumerate(conns.items()):
            other = LEASE_ROLES[(n + 1) % len(LEASE_ROLES)]
            assert not await holder_gone(nc, f"holder-{other}", timing), (role, other)
            assert await holder_gone(nc, "holder-nobody", timing), role
    async with present(await as_role("reader"), "holder-reader"):
        assert await holder_gone(conns["worker"], "holder-reader", timing)
