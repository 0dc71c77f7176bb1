"""The Salvy adapter against the sandbox over real HTTP, and its Svix-signed SMS webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from julia_chips.contract.observations import SmsReceived
from julia_chips.gateways.backoff import Backoff
from julia_chips.gateways.salvy.client import SalvyClient
from julia_chips.gateways.salvy.errors import (
    AreaCodeUnavailable,
    IdempotencyMismatch,
    PhoneAccountMissing,
    PhoneAccountStatusInvalid,
    SalvyRateLimited,
    SalvyUnauthorized,
    SalvyUnavailable,
)
from julia_chips.gateways.salvy.svix import SignatureInvalid, verify
from julia_chips.gateways.salvy.webhook import decode_salvy
from julia_chips.sandbox.world import Sandbox, start_sandbox
from tests.integration.sandbox_fixtures import Receiver, SleepRecorder, receiver

__all__ = ["receiver"]  # the fixture, re-exported for pytest


@pytest.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[Sandbox]:
    world = await start_sandbox(doctors=0, hosts=0, seed=5, salvy_webhook_url=receiver.url)
    yield world
    await world.close()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def client(sandbox: Sandbox, sleeps: SleepRecorder) -> AsyncIterator[SalvyClient]:
    async with aiohttp.ClientSession() as session:
        yield SalvyClient(
            session, sandbox.salvy_url, sandbox.salvy_token, sleep=sleeps,
            backoff=Backoff(attempts=3, base_delay=0.1, max_delay=5.0),
        )  # fmt: skip


async def test_list_area_codes(client: SalvyClient) -> None:
    available = await client.list_area_codes()
    assert [(a.area_code, a.available) for a in available] == [(11, True), (21, True), (41, True)]
    everything = await client.list_area_codes(available_only=False)
    assert 31 in [a.area_code for a in everything]


async def test_create_get_list(client: SalvyClient) -> None:
    account = await client.create_mobile_did(11, idempotency_key="prov-1", name="chip-1")
    assert account.phone_number.startswith("+55119")
    assert len(account.phone_number) == 14
    assert account.status == "available"
    assert await client.get(account.id) == account
    page = await client.list_accounts(statuses=["available"])
    assert page.accounts == (account,)
    assert (page.page, page.total_pages, page.total_count) == (1, 1, 1)


async def test_retried_create_buys_one_number(client: SalvyClient, sandbox: Sandbox) -> None:
    first = await client.create_mobile_did(21, idempotency_key="prov-2")
    again = await client.create_mobile_did(21, idempotency_key="prov-2")
    assert again.id == first.id
    assert len(sandbox.salvy.accounts) == 1


async def test_reused_key_with_other_params(client: SalvyClient) -> None:
    await client.create_mobile_did(21, idempotency_key="prov-3")
    with pytest.raises(IdempotencyMismatch) as caught:
        await client.create_mobile_did(11, idempotency_key="prov-3")
    assert caught.value.code == "idempotency-parameters-mismatch-error"


@pytest.mark.parametrize("ddd", [31, 99])
async def test_area_code_out_of_stock_or_invalid(client: SalvyClient, ddd: int) -> None:
    with pytest.raises(AreaCodeUnavailable):
        await client.create_mobile_did(ddd, idempotency_key=f"prov-{ddd}")


async def test_cancel(client: SalvyClient) -> None:
    account = await client.create_mobile_did(11, idempotency_key="prov-4")
    await client.cancel(account.id, "whatsapp-blocked", detail="banned on day 3")
    cancelled = await client.get(account.id)
    assert (cancelled.status, cancelled.cancel_reason) == ("canceled", "whatsapp-blocked")
    assert cancelled.canceled_at is not None
    with pytest.raises(PhoneAccountStatusInvalid):
        await client.cancel(account.id, "other")


async def test_missing_account(client: SalvyClient) -> None:
    with pytest.raises(PhoneAccountMissing):
        await client.get("pa_nope")


async def test_bad_token(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        stranger = SalvyClient(session, sandbox.salvy_url, "salvy_test_wrong")
        with pytest.raises(SalvyUnauthorized):
            await stranger.list_area_codes()


async def test_429_honours_retry_after(
    client: SalvyClient, sandbox: Sandbox, sleeps: SleepRecorder
) -> None:
    sandbox.salvy.throttle(2, retry_after=3)
    account = await client.create_mobile_did(11, idempotency_key="prov-5")
    assert sleeps.delays == [3.0, 3.0]
    assert len(sandbox.salvy.accounts) == 1 and account.id in sandbox.salvy.accounts


async def test_429_retries_are_bounded(
    client: SalvyClient, sandbox: Sandbox, sleeps: SleepRecorder
) -> None:
    sandbox.salvy.throttle(10, retry_after=30)
    with pytest.raises(SalvyRateLimited) as caught:
        await client.list_area_codes()
    assert caught.value.retry_after == 30
    assert sleeps.delays == [5.0, 5.0]  # capped by max_delay
    assert sandbox.salvy.throttled_requests == 7


async def test_unreachable(sleeps: SleepRecorder) -> None:
    async with aiohttp.ClientSession() as session:
        dead = SalvyClient(session, "http://127.0.0.1:9", "t", sleep=sleeps,
                           backoff=Backoff(attempts=2, base_delay=0.1))  # fmt: skip
        with pytest.raises(SalvyUnavailable):
            await dead.get("pa_1")
        with pytest.raises(SalvyUnavailable):
            await dead.cancel("pa_1", "other")
    assert sleeps.delays == [0.1]  # get retried once; cancel not at all


async def test_sms_webhook_is_signed_and_carries_the_code(
    client: SalvyClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    account = await client.create_mobile_did(11, idempotency_key="prov-6")
    code = sandbox.salvy.send_whatsapp_code(account.phone_number)
    headers, body = await receiver.next()
    lowered = {k.lower(): v for k, v in headers.items()}
    verify(sandbox.salvy_webhook_secret, lowered, body, now=datetime.now(UTC))
    sms = decode_salvy(body)
    assert isinstance(sms, SmsReceived)
    assert (sms.phone_account_id, sms.destination_phone) == (account.id, account.phone_number)
    assert sms.code == code and code is not None and len(code) == 6
    with pytest.raises(SignatureInvalid):
        verify("whsec_" + "QUJD" * 8, lowered, body, now=datetime.now(UTC))
