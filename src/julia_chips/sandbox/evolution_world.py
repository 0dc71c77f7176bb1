"""State and fault injection behind the sandbox Evolution API.

Behaviour follows Evolution v2.3.6 as documented in the reference notes: a close with a
terminal code (401, 402, 403, 406) emits `connection.update` `close`; any other code is
reconnected silently (`connecting`, then `open`). Webhooks go to each instance's own URL
with its own headers, as configured at create.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec

from julia_chips.clock import Clock
from julia_chips.gateways.evolution.jid import jid_from_phone
from julia_chips.sandbox.cloud_api import CloudApiWorld
from julia_chips.sandbox.doctors import DoctorPopulation
from julia_chips.sandbox.webhook_poster import WebhookPoster

TERMINAL_CLOSE_CODES = frozenset({401, 402, 403, 406})
_ENCODER = msgspec.json.Encoder()


@dataclass
class SandboxInstance:
    """One gateway instance; mutable because the sandbox is a simulator, not the domain."""

    name: str
    integration: str
    token: str
    webhook_url: str | None
    webhook_headers: dict[str, str]
    events: frozenset[str]  # upper-case config names; empty = all
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "close"
    number: str | None = None
    banned: bool = False
    rate_limited_sends: int = 0
    connect_error: str | None = None
    pairing_code: str | None = None  # the last one `connect` gave, until it is entered
    qr: str | None = None
    host: str | None = None  # the host whose gateway listener created it (`fetchInstances`)


class EvolutionWorld:
    """Instances, doctors and the faults a test can inject, shared by the HTTP handlers."""

    def __init__(
        self,
        *,
        api_key: str,
        doctors: DoctorPopulation,
        poster: WebhookPoster,
        clock: Clock,
        link_delay: float | None = 0.05,
    ) -> None:
        """:param link_delay: seconds from connect to `open`; None = only `link()` opens it.
        :param clock: dates the webhooks (`date_time`, `messageTimestamp`), so an edge on the
            same clock finds them fresh."""
        self.api_key = api_key
        self.clock = clock
        self.doctors = doctors
        self.instances: dict[str, SandboxInstance] = {}
        self.server_url = ""
        self.cloud_api: CloudApiWorld | None = None  # where WHATSAPP-BUSINESS numbers live
        self.outage_requests = 0
        self._poster = poster
        self.link_delay = link_delay  # None: links wait for `link()` or `enter_pairing_code()`
        self._message_ids = itertools.count(1)
        self._timers: list[asyncio.TimerHandle] = []

    def close(self) -> None:
        """Cancel pending links so nothing fires after the sandbox stops."""
        for timer in self._timers:
            timer.cancel()

    # Fault injection -----------------------------------------------------------------------

    def disconnect(self, name: str, code: int) -> None:
        """Drop the socket with a Baileys DisconnectReason code (401, 403, 428, 515, …)."""
        instance = self.instances[name]
        if code in TERMINAL_CLOSE_CODES:
            instance.state = "close"
            self._emit(instance, "connection.update", lambda: _state(instance, "close", code))
            return
        self._emit(instance, "connection.update", lambda: _state(instance, "connecting", 200))
        instance.state = "open"
        self._emit(instance, "connection.update", lambda: self._open_data(instance))

    def ban(self, name: str) -> None:
        """WhatsApp bans the number: closes with 403 and the instance can never link again."""
        self.instances[name].banned = True
        self.disconnect(name, 403)

    def rate_limit(self, name: str, sends: int) -> None:
        """The next `sends` sendText calls fail with Baileys' `rate-overlimit`."""
        self.instances[name].rate_limited_sends = sends

    def fail_connect(self, name: str, message: str) -> None:
        """The next connect answers HTTP 200 with `{"error": true}`, as Evolution does."""
        self.instances[name].connect_error = message

    def outage(self, requests: int) -> None:
        """The next `requests` API calls get a 503, like a gateway behind a restarting proxy."""
        self.outage_requests = requests

    # Lifecycle ------------------------------------------------------------------------------

    def start_linking(self, instance: SandboxInstance, number: str | None) -> None:
        """connect on a closed instance: now `connecting`; opens after `link_delay`."""
        instance.state = "connecting"
        instance.number = number or instance.number
        self._emit(instance, "connection.update", lambda: _state(instance, "connecting", 200))
        if self.link_delay is not None and not instance.banned:
            self._emit_open_later(instance, self.link_delay)

    def link_codes(self, instance: SandboxInstance, number: str | None) -> dict[str, Any]:
        """A fresh QR, and a pairing code when linking by number; the instance keeps the
        last ones so a person (a test) can enter the code on the phone."""
        instance.pairing_code = secrets.token_hex(4).upper() if number else None
        instance.qr = f"2@{secrets.token_urlsafe(24)}"
        return {"pairingCode": instance.pairing_code, "code": instance.qr,
                "base64": "data:image/png;base64,iVBORw0KGgo=", "count": 1}

    def enter_pairing_code(self, name: str, code: str) -> bool:
        """Someone typed `code` on the phone (Linked devices > Link with phone number): the
        instance opens if it is the code last given and the number is not banned."""
        instance = self.instances[name]
        if instance.banned or instance.pairing_code is None or code != instance.pairing_code:
            return False
        instance.pairing_code = instance.qr = None
        self.link(name)
        return True

    def link(self, name: str) -> None:
        """The operator finished pairing on the phone: the instance opens now."""
        instance = self.instances[name]
        instance.state = "open"
        instance.pairing_code = instance.qr = None
        self._emit(instance, "connection.update", lambda: self._open_data(instance))

    def logout(self, instance: SandboxInstance) -> None:
        instance.state = "close"
        self._emit(instance, "connection.update", lambda: _state(instance, "close", 401))

    def send_text(self, instance: SandboxInstance, phone: str, text: str) -> dict[str, Any]:
        """Store an outgoing message and schedule WhatsApp's server receipt, then the doctor's
        receipts and reply: as Evolution webhooks (Baileys: `sender` → SERVER_ACK, none →
        DELIVERY_ACK, `read`), or as the Cloud API's when the instance sends through a number
        registered there (WHATSAPP-BUSINESS; the id is then Meta's `wamid.`)."""
        jid = jid_from_phone(phone)
        number = (self.cloud_api.registered(instance.number)
                  if self.cloud_api is not None and instance.integration == "WHATSAPP-BUSINESS"
                  else None)
        if number is not None:
            message_id = f"wamid.{next(self._message_ids):032X}"
            assert self.cloud_api is not None
            self.cloud_api.react(number, phone, message_id, self.doctors.react(phone))
            return self._sent(instance, jid, message_id, text)
        message_id = f"3EB0{next(self._message_ids):016X}"
        self._emit(instance, "messages.update",
                   partial(self._receipt, instance, message_id, jid, "SERVER_ACK"))
        for reaction in self.doctors.react(phone):
            if reaction.kind == "reply":
                self._emit(instance, "messages.upsert",
                           partial(self._inbound, instance, jid, reaction.text or ""),
                           delay=reaction.after)
            else:
                status = "DELIVERY_ACK" if reaction.kind == "delivered" else "READ"
                self._emit(instance, "messages.update",
                           partial(self._receipt, instance, message_id, jid, status),
                           delay=reaction.after)
        return self._sent(instance, jid, message_id, text)

    def _sent(self, instance: SandboxInstance, jid: str, message_id: str,
              text: str) -> dict[str, Any]:
        return {
            "key": {"remoteJid": jid, "fromMe": True, "id": message_id},
            "pushName": "",
            "status": "PENDING",
            "message": {"conversation": text},
            "contextInfo": None,
            "messageType": "conversation",
            "messageTimestamp": int(self.clock.now().timestamp()),
            "instanceId": instance.instance_id,
            "source": "web",
        }

    # Webhooks --------------------------------------------------------------------------------

    def _emit_open_later(self, instance: SandboxInstance, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self._open_if_linking, instance.name))

    def _open_if_linking(self, name: str) -> None:
        instance = self.instances.get(name)
        if instance is not None and instance.state == "connecting":
            self.link(name)

    def _emit(
        self, instance: SandboxInstance, event: str, data: Callable[[], Any], *,
        delay: float = 0.0,
    ) -> None:
        """Post `event` after `delay` real seconds; `data` and the stamps are written when
        it leaves (its `date_time` is then fresh on the receiver's clock)."""
        config_name = event.upper().replace(".", "_")
        url = instance.webhook_url
        if url is None:
            return
        if instance.events and config_name not in instance.events:
            return

        def body() -> bytes:
            return _ENCODER.encode({
                "event": event,
                "instance": instance.name,
                "data": data(),
                "destination": url,
                "date_time": self.clock.now().isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "sender": f"{instance.number}@s.whatsapp.net" if instance.number else None,
                "server_url": self.server_url,
                "apikey": None,
            })

        self._poster.post(url, body, instance.webhook_headers, delay=delay)

    def _open_data(self, instance: SandboxInstance) -> dict[str, Any]:
        return {
            "instance": instance.name,
            "wuid": f"{instance.number or '0'}@s.whatsapp.net",
            "profileName": "Julia",
            "profilePictureUrl": None,
            "state": "open",
            "statusReason": 200,
        }

    def _receipt(self, instance: SandboxInstance, message_id: str, jid: str, status: str) -> Any:
        return {
            "keyId": message_id, "remoteJid": jid, "fromMe": True, "participant": None,
            "status": status, "pollUpdates": None, "instanceId": instance.instance_id,
            "messageId": secrets.token_hex(12),
        }  # fmt: skip

    def _inbound(self, instance: SandboxInstance, jid: str, text: str) -> Any:
        return {
            "key": {"remoteJid": jid, "fromMe": False, "id": f"3A5F{secrets.token_hex(8).upper()}",
                    "participant": None, "addressingMode": "pn"},
            "pushName": "", "status": "DELIVERY_ACK", "message": {"conversation": text},
            "contextInfo": None, "messageType": "conversation",
            "messageTimestamp": int(self.clock.now().timestamp()),
            "instanceId": instance.instance_id,
            "source": "android",
        }  # fmt: skip


def _state(instance: SandboxInstance, state: str, reason: int) -> dict[str, Any]:
    return {"instance": instance.name, "state": state, "statusReason": reason}
