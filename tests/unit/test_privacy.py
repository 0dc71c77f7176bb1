"""What logs may show of phone numbers and URLs."""

from __future__ import annotations

import pytest

from julia_chips.privacy import mask_phone, mask_phones_in, without_credentials


def test_a_phone_keeps_country_area_and_last_two_digits() -> None:
    assert mask_phone("+55 (11) 98765-4321") == "+55 11 *******21"
    assert mask_phone("1234") == "****"


def test_every_phone_in_a_body_is_masked_and_short_numbers_are_left_alone() -> None:
    body = '{"to":"+5511987654321","jid":"5521912345678@s.whatsapp.net","day":12,"n":123456789}'
    assert mask_phones_in(body) == ('{"to":"+55 11 *******21","jid":"+55 21 *******78'
                                    '@s.whatsapp.net","day":12,"n":123456789}')


@pytest.mark.parametrize(("url", "shown"), [
    ("nats://julia:s3cret@nats.internal:4222", "nats://***@nats.internal:4222"),
    ("nats://t0ken@10.0.0.5:4222", "nats://***@10.0.0.5:4222"),
    ("postgresql://u:p@db/julia?sslmode=require", "postgresql://***@db/julia?sslmode=require"),
    ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
    ("nats://a:s3cret@n1:4222,nats://a:s3cret@n2:4222", "nats://***@n1:4222,nats://***@n2:4222"),
])
def test_a_url_loses_its_credentials_and_keeps_the_rest(url: str, shown: str) -> None:
    assert without_credentials(url) == shown
    assert "s3cret" not in without_credentials(url) and "t0ken" not in without_credentials(url)
