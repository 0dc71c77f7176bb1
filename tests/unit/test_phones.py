"""One form per phone: E.164 with Brazil's ninth digit, for sends and inbound alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from julia_chips.gateways.evolution.jid import phone_from_jid
from julia_chips.phones import normalise_phone, phone_key

SECRET = b"test-phone-secret"
ddds = st.integers(11, 99).filter(lambda d: "0" not in str(d))
subscribers = st.integers(6_000_0000, 9_999_9999).map(str)  # eight digits, a mobile's first


@given(ddds, subscribers)
def test_both_ninth_digit_forms_are_one_e164_number(ddd: int, eight: str) -> None:
    old, new = f"55{ddd}{eight}", f"+55{ddd}9{eight}"
    assert normalise_phone(old) == normalise_phone(new) == new
    assert phone_from_jid(f"{old}@s.whatsapp.net") == new
    assert phone_key(old, SECRET) == phone_key(new, SECRET)


@given(ddds, st.integers(2_000_0000, 5_999_9999).map(str))
def test_a_landline_keeps_its_eight_digits(ddd: int, eight: str) -> None:
    assert normalise_phone(f"55{ddd}{eight}") == f"+55{ddd}{eight}"


def test_punctuation_goes_and_other_countries_are_left_alone() -> None:
    assert normalise_phone("(55) 11 98765-4321") == "+5511987654321"
    assert normalise_phone("+1 415 876 5432") == "+14158765432"
    assert normalise_phone("351912345678") == "+351912345678"  # 12 digits, not Brazil


def test_the_key_depends_on_the_secret_and_does_not_show_the_number() -> None:
    key = phone_key("+5511987654321", SECRET)
    assert key != phone_key("+5511987654321", b"another secret")
    assert "987654321" not in key and len(key) == 32
