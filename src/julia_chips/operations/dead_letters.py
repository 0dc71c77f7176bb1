"""List, show, replay and purge the dead letters (`dlq.<kind>.<key>` on DEAD_LETTER).

A letter is the original bytes with where they were consumed from (`Julia-Dlq-Subject`) and
why they were given up (`Julia-Dlq-Reason`, `jetstream/dead_letters.py`). A replay sends the
bytes back to that subject unchanged, so the consumer that refused them decides again, and
then removes the letter: a second "replay all" must not resend what the first one fixed.
The replay carries `Nats-Msg-Id` `dlq-replay:<seq>`, so a replay repeated within the
target stream's duplicate window (two operators, a crash before the removal) is stored once;
beyond it, the readers recognise a repeat themselves (chip and route commands by
`command_id`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client as NATS
from nats.js.api import Header, RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from julia_chips.contract import operations as ops
from julia_chips.contract.subjects import JuliaHeader, Stream, dead_letter
from julia_chips.jetstream.stream_purge import purge_subject

# Inputs whose reader decides again on a second delivery. Anything else (a projection's
# letter is an event of CHIP_EVENTS, MSG_EVENTS...) would be a second copy in a history.
REPLAYABLE = ("chip.cmd.", "route.cmd.", "gw.in.", "gw.obs.", "gw.sms.")
MAX_REFUSED_SHOWN = 100  # a reply must stay under max_payload however many were refused


class OperationRefused(ValueError):
    """An operator request that cannot be carried out; the message names the field."""


def letter_subject(request: ops.DeadLetterFilter) -> str:
    """The DEAD_LETTER subject filter a request names: `dlq.>`, `dlq.<kind>.>` or one key."""
    if request.kind is None:
        if request.key is not None:
            raise OperationRefused("key: needs a kind")
        return "dlq.>"
    if request.key is None:
        return f"dlq.{request.kind}.>"
    return dead_letter(request.kind, request.key)


def _letter(raw: RawStreamMsg, with_body: bool = False) -> ops.DeadLetter:
    headers, data = raw.headers or {}, raw.data or b""
    assert raw.seq is not None and raw.subject is not None and raw.time is not None
    return ops.DeadLetter(
        seq=raw.seq, subject=raw.subject, stored_at=raw.time, size=len(data),
        original_subject=headers.get(JuliaHeader.DLQ_SUBJECT, ""),
        reason=headers.get(JuliaHeader.DLQ_REASON, ""),
        body=data.decode(errors="replace") if with_body else None)


async def _next_letter(js: JetStreamContext, after: int, subject: str) -> RawStreamMsg | None:
    try:
        return await js.get_msg(Stream.DEAD_LETTER, seq=after + 1, subject=subject, next=True)
    except NotFoundError:
        return None


async def list_dead_letters(js: JetStreamContext, request: ops.ListDeadLetters
                            ) -> ops.DeadLettersListed:
    """Up to `limit` letters after `after_seq`, oldest first, without their bodies."""
    subject, after = letter_subject(request), request.after_seq
    found: list[ops.DeadLetter] = []
    while len(found) <= request.limit:
        raw = await _next_letter(js, after, subject)
        if raw is None:
            return ops.DeadLettersListed(letters=found)
        found.append(_letter(raw))
        after = found[-1].seq
    return ops.DeadLettersListed(letters=found[:-1], next_after=found[-2].seq)


async def show_dead_letter(js: JetStreamContext, seq: int) -> ops.DeadLetter:
    """One letter with its body (which may hold a phone or a text: shown, never logged)."""
    try:
        return _letter(await js.get_msg(Stream.DEAD_LETTER, seq=seq), with_body=True)
    except NotFoundError:
        raise OperationRefused(f"seq: no dead letter {seq}") from None


async def _replay_one(js: JetStreamContext, raw: RawStreamMsg) -> str | None:
    """Send one letter back; why not, or None when it went."""
    letter = _letter(raw)
    if not letter.original_subject.startswith(REPLAYABLE):
        return (f"{letter.original_subject or 'no original subject'} is not a command or an "
                "input a replay can put right: resending it would duplicate a history")
    await js.publish(letter.original_subject, raw.data or b"",
                     headers={Header.MSG_ID: f"dlq-replay:{letter.seq}"})
    with contextlib.suppress(NotFoundError):  # another replay removed it first; the msg id
        await js.delete_msg(Stream.DEAD_LETTER, letter.seq)  # kept the resend single
    return None


async def replay_dead_letters(js: JetStreamContext, request: ops.ReplayDeadLetters
                              ) -> ops.DeadLettersReplayed:
    """One letter (`seq`) or all the filter matches (`all`), as stored when the call began:
    a letter that fails again comes back with a new sequence and waits for the next replay."""
    if (request.seq is None) == (not request.all):
        raise OperationRefused("seq: name one letter, or set all: true (not both)")
    replayed, refused = 0, []
    async for raw in _letters_to_replay(js, request):
        why = await _replay_one(js, raw)
        if why is None:
            replayed += 1
        else:
            refused.append(ops.LetterRefused(seq=raw.seq or 0, reason=why))
    return ops.DeadLettersReplayed(replayed=replayed, refused=refused[:MAX_REFUSED_SHOWN],
                                   refused_count=len(refused))


async def _letters_to_replay(js: JetStreamContext, request: ops.ReplayDeadLetters
                             ) -> AsyncIterator[RawStreamMsg]:
    if request.seq is not None:
        try:
            yield await js.get_msg(Stream.DEAD_LETTER, seq=request.seq)
        except NotFoundError:
            raise OperationRefused(f"seq: no dead letter {request.seq}") from None
        return
    subject = letter_subject(request)
    last, after = (await js.stream_info(Stream.DEAD_LETTER)).state.last_seq, 0
    while (raw := await _next_letter(js, after, subject)) is not None:
        if raw.seq is None or raw.seq > last:
            return
        yield raw
        after = raw.seq


async def purge_dead_letters(nc: NATS, request: ops.PurgeDeadLetters) -> int:
    """Remove the letters of a kind (and key), or all with `all: true`; how many went."""
    if request.kind is None and not request.all:
        raise OperationRefused("kind: name a kind to purge, or set all: true")
    if request.all and request.kind is not None:
        raise OperationRefused("all: purges every kind; leave kind and key out")
    return await purge_subject(nc, Stream.DEAD_LETTER, letter_subject(request))
