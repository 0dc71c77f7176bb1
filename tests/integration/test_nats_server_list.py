"""`NATS_URL` as a comma-separated list of servers, as NATS tools and other clients take it:
a connection gets through while the first server named is down, and fails over to another
when its own server dies."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.infrastructure import connect_nats, connect_nats_once, nats_servers


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        return f"nats://127.0.0.1:{sock.getsockname()[1]}"


def test_the_list_is_split_on_commas_and_spaces_are_dropped() -> None:
    assert nats_servers("nats://a:1, nats://b:2,") == ["nats://a:1", "nats://b:2"]


@pytest.mark.own_nats_server
async def test_a_list_whose_first_server_is_down_still_connects(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", 1)
    server.start()
    try:
        url = f"{_dead_url()},{server.url}"
        for connect in (connect_nats, connect_nats_once):
            nc = await asyncio.wait_for(connect(url), 10)
            assert nc.is_connected
            await nc.publish("list.check", b"x")
            await nc.flush()
            await nc.close()
    finally:
        server.stop()


@pytest.mark.own_nats_server
async def test_a_one_shot_connection_to_dead_servers_fails_soon() -> None:
    with pytest.raises(Exception):  # noqa: B017 (nats-py raises NoServersError or an OSError)
        await asyncio.wait_for(connect_nats_once(f"{_dead_url()},{_dead_url()}", timeout=1), 10)
