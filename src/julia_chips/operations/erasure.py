"""Erase a doctor's personal data (`ops.cmd.doctor.erase`, `julia-chips doctor erase`).

Streams are history and are not rewritten, so erasure works two ways (docs/privacy.md):
* what is kept for ever is sealed under the doctor's key (ROUTE_EVENTS' queued sends):
  the key is purged from `doctor_keys`, and the sealed copies open to nothing;
* what is kept in the clear for a while (raw webhooks, observations, dead letters, route
  events stored before sealing) is found by a scan and deleted by sequence: every message
  that holds the phone in any form (E.164, with or without Brazil's ninth digit, a WhatsApp
  JID: each run of digits is normalised and hashed like `phone_key`) or one of the texts.
First the balancer is told (`ForgetDoctor`): it drops the doctor's backlog, which it holds
in the clear, and records `DoctorErased`, which a rebuild of the read models folds again.
Opt-outs survive: they are keyed by `phone_key`, a keyed hash, not the phone.
Running it twice is safe: the second finds nothing left and says so in its counts.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from julia_chips.balancer.client import RouteClient
from julia_chips.balancer.model.decide import stranger_id
from julia_chips.contract import operations as ops
from julia_chips.contract import route as rt
from julia_chips.contract.subjects import Stream
from julia_chips.jetstream.follower import replay, with_headers
from julia_chips.phones import phone_key
from julia_chips.privacy import mask_phone
from julia_chips.privacy.doctor_keys import DoctorKeys

log = logging.getLogger(__name__)
READER = "erasure"
# Where phones and texts are kept in the clear for a while: scanned and deleted from.
SCANNED = (Stream.ROUTE_EVENTS, Stream.GATEWAY_IN, Stream.GATEWAY_OBS, Stream.DEAD_LETTER)
_DIGITS = re.compile(rb"\d{10,15}")  # as `Phone` allows; a JID's user part is one such run
MIN_TEXT = 12  # shorter texts ("ok", "sim") are not searched for: they would match anyone's


class _Doctor(msgspec.Struct, kw_only=True):
    """What ROUTE_EVENTS tells of one doctor: the keys of their phones, their queued sends."""

    phone_keys: set[str] = msgspec.field(default_factory=set)
    queued: list[rt.RequestQueued] = msgspec.field(default_factory=list)


class Traces:
    """What to look for: the phones' keys and the texts, bytes as stored (UTF-8 and the
    JSON-escaped form of each text)."""

    def __init__(self, secret: bytes, keys: Iterable[str], texts: Iterable[str]) -> None:
        self._secret, self.keys = secret, set(keys)
        self.texts = {form for text in texts if len(text) >= MIN_TEXT
                      for form in (text.encode(), msgspec.json.encode(text)[1:-1])}

    def found_in(self, data: bytes) -> bool:
        if any(text in data for text in self.texts):
            return True
        return any(phone_key(run.decode(), self._secret) in self.keys
                   for run in _DIGITS.findall(data))


async def _route_history(js: JetStreamContext) -> dict[str, _Doctor]:
    doctors: dict[str, _Doctor] = {}

    def apply(_seq: int, event: rt.AnyRouteEvent) -> None:
        doctor = doctors.setdefault(event.doctor_id, _Doctor())
        key = getattr(event, "phone_key", None)
        if key:
            doctor.phone_keys.add(key)
        if isinstance(event, rt.RequestQueued):
            doctor.queued.append(event)

    await replay(js, Stream.ROUTE_EVENTS, "route.evt.>", with_headers(rt.decode_route_event),
                 apply, reader=READER)
    return doctors


async def _matching(js: JetStreamContext, stream: Stream, traces: Traces) -> list[int]:
    """The sequences of `stream`'s messages (body or header values) holding a trace."""
    found: list[int] = []

    def apply(seq: int, msg: Msg) -> None:
        values = b"\n".join(v.encode() for v in (msg.headers or {}).values())
        if traces.found_in(msg.data) or (values and traces.found_in(values)):
            found.append(seq)

    await replay(js, stream, ">", lambda msg: msg, apply, reader=READER)
    return found


async def erase_doctor(nc: NATS, secret: bytes, request: ops.EraseDoctor,
                       timeout: float = 10.0) -> ops.DoctorErasedReport:
    """Erase, and say what was found where. `secret` is JULIA_PHONE_KEY; `timeout` is how
    long the balancer may take to answer (its part is done whenever it next leads)."""
    js = nc.jetstream()
    history = await _route_history(js)
    keys: set[str] = set()
    if request.phone is not None:
        key = phone_key(request.phone, secret)
        keys.add(key)
        named = [d for d, seen in history.items() if key in seen.phone_keys]
        doctor_ids = sorted({*named, *([stranger_id(key)] if stranger_id(key) in history
                                       else [])})
    else:
        assert request.doctor_id is not None  # EraseDoctor names exactly one
        doctor_ids = [request.doctor_id]
    store, texts = DoctorKeys(js), []
    for doctor_id in doctor_ids:
        seen = history.get(doctor_id, _Doctor())
        keys |= seen.phone_keys
        key_bytes = await store.fetch(doctor_id)
        for queued in (q.opened_with(key_bytes) for q in seen.queued):
            if queued.doctor_phone is not None:
                keys.add(phone_key(queued.doctor_phone, secret))
            if queued.text is not None:
                texts.append(queued.text)
    forgot = await _tell_balancer(nc, doctor_ids, timeout)
    purged = [await store.erase(d) for d in doctor_ids]
    traces = Traces(secret, keys, texts)
    deleted: dict[str, int] = {}
    for stream in SCANNED:
        seqs = await _matching(js, stream, traces)
        for seq in seqs:
            await js.delete_msg(stream, seq)
        deleted[str(stream)] = len(seqs)
    log.info("erased doctors %s%s: %d keys, %s", ", ".join(doctor_ids) or "(none)",
             f" (phone {mask_phone(request.phone)})" if request.phone else "", sum(purged),
             deleted)
    return ops.DoctorErasedReport(doctor_ids=doctor_ids, keys_deleted=sum(purged),
                                  balancer_forgot=forgot, deleted=deleted)


async def _tell_balancer(nc: NATS, doctor_ids: list[str], timeout: float) -> int:
    """`ForgetDoctor` to the balancer for each doctor; how many it answered in time (the
    rest stay stored in ROUTE_CMDS and are carried out when a leader reads them)."""
    client, answered = RouteClient(nc), 0
    try:
        for doctor_id in doctor_ids:
            try:
                reply = await client.forget(doctor_id, f"erase-{uuid.uuid4().hex}", timeout)
            except TimeoutError:
                log.warning("balancer did not answer the erasure of %s in %.0fs; it will "
                            "when it leads", doctor_id, timeout)
                continue
            answered += reply.ok
    finally:
        await client.close()
    return answered
