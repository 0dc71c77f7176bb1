"""Proof that a lease holder's connection is gone: its presence subscription is not there.

Every lease holder subscribes to `_JULIA.presence.<holder>` (core NATS) for as long as it
may hold a lease. A standby that finds a lease unrenewed sends a request there: the server
answers "no responders" at once when no connection subscribes, which after a SIGKILL (the
kernel closes the socket, the server drops its subscriptions) is proof the holder can no
longer renew, consume or append, and the standby takes the lease by CAS on the revision it
saw. Anything else (a late answer, a timeout, NATS trouble) proves nothing and the standby
waits for the TTL: a holder that is slow, paused or behind a slow network still has its
socket open, so its subscription stands and it is never taken over early.

The holder never answers: being subscribed is the answer, so no role needs to publish on
other roles' inboxes for this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

from julia_chips.contract.subjects import presence
from julia_chips.jetstream.leases.sightings import LeaseTiming


@contextlib.asynccontextmanager
async def present(nc: NATS, holder: str) -> AsyncIterator[None]:
    """Subscribed as `holder` for the block; the server knows it before the block starts."""
    subscription = await nc.subscribe(presence(holder), cb=_heard)
    await nc.flush()
    try:
        yield
    finally:
        with contextlib.suppress(NatsError, TimeoutError):  # closing: the server drops it
            await subscription.unsubscribe()


async def _heard(msg: Msg) -> None:
    """A probe: the subscription was the answer."""


async def holder_gone(nc: NATS, holder: str, timing: LeaseTiming) -> bool:
    """True only when the server said twice, `confirm_after` apart, that nobody is
    subscribed as `holder`."""
    for attempt in range(2):
        if attempt:
            await asyncio.sleep(timing.confirm_after)
        try:
            await nc.request(presence(holder), b"", timeout=timing.probe_timeout)
        except NoRespondersError:
            continue
        except (NatsError, TimeoutError):  # subscribed but silent, or we are cut off
            return False
        return False  # somebody answered for that name
    return True
