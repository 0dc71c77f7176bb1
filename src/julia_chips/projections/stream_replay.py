"""Read a stream once from its first event to the last one stored when the read began.

What a rebuild does with a projection's own stream, and what a projection does with another
stream whose history it needs on a rebuild (`bought_numbers.py`). An ordered consumer: no
durable is left behind, and the messages come in stream order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from julia_chips.contract.subjects import Stream


async def replay_stream(js: JetStreamContext, stream: Stream, subjects: str,
                        on_msg: Callable[[Msg], None]) -> tuple[int, int]:
    """Hand every message up to the stream's current last sequence to `on_msg`, in order;
    returns (messages handed, that last sequence). `subjects` must cover the whole stream,
    or a last message outside it would never be seen and the read never end."""
    last = int((await js.stream_info(str(stream))).state.last_seq or 0)
    if last == 0:
        return 0, 0
    done = asyncio.get_running_loop().create_future()
    count = 0

    async def handle(msg: Msg) -> None:
        nonlocal count
        seq = msg.metadata.sequence.stream
        if seq > last:
            return
        on_msg(msg)
        count += 1
        if seq >= last and not done.done():
            done.set_result(None)

    sub = await js.subscribe(subjects, stream=str(stream), cb=handle, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL, pending_msgs_limit=-1,
                             pending_bytes_limit=-1)
    try:
        await done
    finally:
        await sub.unsubscribe()
    return count, last
