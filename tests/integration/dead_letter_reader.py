"""What the dead letters hold on a subject: each letter's body and its reason."""

from __future__ import annotations

from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import JuliaHeader


async def stored_dead_letters(js: JetStreamContext, subject: str, quiet: float = 1.0
                              ) -> list[tuple[bytes, str]]:
    """Every letter stored on `subject` (wildcards allowed), oldest first: read until none
    comes for `quiet` seconds."""
    sub = await js.subscribe(subject, ordered_consumer=True)
    found = []
    try:
        while True:
            msg = await sub.next_msg(timeout=quiet)
            found.append((msg.data, (msg.headers or {}).get(JuliaHeader.DLQ_REASON, "")))
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return found
