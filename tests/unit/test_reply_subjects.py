"""The one decision on where answers may go, and JULIA_REPLY_PREFIXES checked at start-up."""

from __future__ import annotations

import pytest

from julia_chips.config import ConfigError, load_config
from julia_chips.jetstream.reply_subjects import DEFAULT_REPLY_PREFIXES, reply_refusal

PREFIXES = ("_INBOX.", "_INBOX_ops.")


@pytest.mark.parametrize("subject", [
    "_INBOX.Xy12ab.0", "_INBOX.a", "_INBOX_ops.nuid.17",
])
def test_inbox_subjects_may_be_answered(subject: str) -> None:
    assert reply_refusal(subject, PREFIXES) is None


@pytest.mark.parametrize(("subject", "why"), [
    ("chip.evt.3f6c", "is not an inbox subject"),
    ("$JS.API.STREAM.INFO.CHIP_EVENTS", "is not an inbox subject"),
    ("fleet.cmd.brake.release", "is not an inbox subject"),
    ("_INBOX", "is not an inbox subject"),  # the prefix alone is no inbox
    ("_INBOXES.x", "is not an inbox subject"),
    ("_INBOX_ops_evil.x", "is not an inbox subject"),  # a prefix is whole tokens
    ("_INBOX.>", "wildcard"),
    ("_INBOX.*.x", "wildcard"),
    ("_INBOX.a b", "whitespace"),
    ("_INBOX.a\tb", "whitespace"),
    ("_INBOX.a\x00b", "whitespace"),
    ("_INBOX..a", "empty token"),
    ("_INBOX.a.", "empty token"),
    ("", "is empty"),
    ("_INBOX." + "a" * 300, "longer than 255"),
])
def test_anything_else_is_refused_naming_the_field(subject: str, why: str) -> None:
    refusal = reply_refusal(subject, PREFIXES)
    assert refusal is not None and refusal.startswith("reply_to ") and why in refusal
    named = reply_refusal(subject, PREFIXES, "Julia-Reply-To")
    assert named is not None and named.startswith("Julia-Reply-To ")


def test_prefixes_default_to_nats_py_inboxes_and_add_the_configured_ones() -> None:
    assert load_config({}).reply_prefixes == DEFAULT_REPLY_PREFIXES == ("_INBOX.",)
    config = load_config({"JULIA_REPLY_PREFIXES": " _INBOX_ops, app.replies., _INBOX."})
    assert config.reply_prefixes == ("_INBOX.", "_INBOX_ops.", "app.replies.")


@pytest.mark.parametrize("raw", ["_INBOX.*", "app.>", "my inbox", "app..x", ".", "$JS.API"])
def test_a_bad_prefix_stops_start_up_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="JULIA_REPLY_PREFIXES"):
        load_config({"JULIA_REPLY_PREFIXES": raw})
