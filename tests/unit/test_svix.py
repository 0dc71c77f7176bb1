"""Svix signatures: the scheme Salvy's webhooks are signed with."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from julia_chips.gateways.salvy.svix import SignatureInvalid, check_headers, sign, verify

SECRET = "whsec_" + base64.b64encode(b"a shared secret of 24 b!").decode()
NOW = datetime(2025, 11, 27, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'{"type":"sms.received","data":{"id":"sms_1"}}'


def headers(signature: str, *, ts: int = TS, msg_id: str = "msg_1") -> dict[str, str]:
    return {"svix-id": msg_id, "svix-timestamp": str(ts), "svix-signature": signature}


def test_sign_matches_an_independent_hmac() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"msg_1.{TS}.".encode() + BODY, hashlib.sha256).digest()
    assert sign(SECRET, "msg_1", TS, BODY) == "v1," + base64.b64encode(mac).decode()


def test_valid_signature_passes() -> None:
    verify(SECRET, headers(sign(SECRET, "msg_1", TS, BODY)), BODY, now=NOW)


def test_any_of_several_signatures_may_match() -> None:
    good = sign(SECRET, "msg_1", TS, BODY)
    verify(SECRET, headers(f"v1,AAAA {good} v2,whatever"), BODY, now=NOW)


def test_secret_without_prefix_is_accepted() -> None:
    bare = SECRET.removeprefix("whsec_")
    verify(bare, headers(sign(SECRET, "msg_1", TS, BODY)), BODY, now=NOW)


def test_tampered_body_fails() -> None:
    with pytest.raises(SignatureInvalid, match="no matching"):
        verify(SECRET, headers(sign(SECRET, "msg_1", TS, BODY)), BODY + b" ", now=NOW)


def test_other_message_id_fails() -> None:
    sig = sign(SECRET, "msg_1", TS, BODY)
    with pytest.raises(SignatureInvalid):
        verify(SECRET, headers(sig, msg_id="msg_2"), BODY, now=NOW)


def test_wrong_secret_fails() -> None:
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    with pytest.raises(SignatureInvalid):
        verify(SECRET, headers(sign(other, "msg_1", TS, BODY)), BODY, now=NOW)


@pytest.mark.parametrize("skew", [timedelta(minutes=5, seconds=1), timedelta(minutes=-6)])
def test_stale_or_future_timestamp_fails(skew: timedelta) -> None:
    sig = sign(SECRET, "msg_1", TS, BODY)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        verify(SECRET, headers(sig), BODY, now=NOW + skew)


def test_inside_tolerance_passes() -> None:
    verify(SECRET, headers(sign(SECRET, "msg_1", TS, BODY)), BODY, now=NOW + timedelta(minutes=4))


def test_missing_header_fails() -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        verify(SECRET, {"svix-id": "msg_1", "svix-timestamp": str(TS)}, BODY, now=NOW)


def test_non_numeric_timestamp_fails() -> None:
    bad = {"svix-id": "m", "svix-timestamp": "yesterday", "svix-signature": "v1,x"}
    with pytest.raises(SignatureInvalid, match="Unix"):
        verify(SECRET, bad, BODY, now=NOW)


@pytest.mark.parametrize("stamp", ["9" * 400, "-5", "1e9", "99999999999999"])
def test_a_timestamp_out_of_any_range_is_refused_not_a_crash(stamp: str) -> None:
    bad = headers(sign(SECRET, "msg_1", TS, BODY)) | {"svix-timestamp": stamp}
    with pytest.raises(SignatureInvalid, match="svix-timestamp"):
        verify(SECRET, bad, BODY, now=NOW)


def test_the_headers_are_judged_without_the_body() -> None:
    """What the edge checks before it reads a byte of the body."""
    found = check_headers(headers("v1,anything"), now=NOW)
    assert (found.msg_id, found.timestamp) == ("msg_1", TS)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        check_headers(headers("v1,anything"), now=NOW + timedelta(minutes=6))


def test_secret_that_is_not_base64_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not*base64!", "msg_1", TS, BODY)
