"""`connect_nats` as a client with an nkey seed file over TLS (NATS_NKEY_SEED, NATS_TLS_CA,
NATS_TLS_CERT, NATS_TLS_KEY), against a real nats-server that requires both."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import nats.errors
import nkeys
import pytest

from julia_chips.embedded.nats_server import EmbeddedNats
from julia_chips.infrastructure import NatsIdentity, connect_nats
from tests.conftest import PARTITIONS
from tests.tls_certificates import self_signed


def _user_seed(path: Path) -> str:
    """A user nkey seed written to `path` (0600); its public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path.touch(mode=0o600)
    path.write_bytes(seed)
    return str(nkeys.from_seed(bytearray(seed)).public_key.decode())


async def test_an_nkey_user_over_verified_tls_connects_and_a_plain_client_does_not(
        tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    public = _user_seed(tmp_path / "reader.nk")
    conf = tmp_path / "nats.conf"
    conf.write_text(f"""
jetstream {{ store_dir: "{tmp_path / 'js'}" }}
tls {{ cert_file: "{cert}", key_file: "{key}", ca_file: "{cert}", verify: true }}
authorization {{ users = [ {{ nkey: {public},
  permissions: {{ publish: ["chip.evt.>"], subscribe: ["chip.evt.>", "_INBOX.reader.>"] }} }} ] }}
""")
    server = EmbeddedNats(tmp_path / "nats", PARTITIONS, conf=conf)
    await asyncio.to_thread(server.start)
    try:
        url = server.url.replace("nats://", "tls://")
        identity = NatsIdentity(role="reader", nkey_seed=tmp_path / "reader.nk", tls_ca=cert,
                                tls_cert=cert, tls_key=key)
        nc = await connect_nats(url, identity)
        try:
            sub = await nc.subscribe("chip.evt.x")
            await nc.publish("chip.evt.x", b"seen")
            assert (await sub.next_msg(timeout=5)).data == b"seen"
            assert nc.new_inbox().startswith("_INBOX.reader.")
        finally:
            await nc.close()
        tls = ssl.create_default_context(cafile=cert)
        tls.load_cert_chain(cert, key)
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await asyncio.wait_for(nats.connect(url, tls=tls, allow_reconnect=False), 5)
    finally:
        await asyncio.to_thread(server.stop)

