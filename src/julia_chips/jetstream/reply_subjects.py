"""Which subjects a worker may answer on: inboxes only.

A worker publishes its answers with the permissions of a worker, which reach the audit log
(`chip.evt.*`), the JetStream API and the operators' subjects. A `reply_to` or
`Julia-Reply-To` chosen by whoever sent the command must therefore never name one of those,
or any sender could write into another chip's history through us. Inboxes are what
request/reply clients listen on (nats-py: `_INBOX.<nuid>`, or `<inbox_prefix>.<nuid>` for a
client that sets its own prefix), so only those are answered.
"""

from __future__ import annotations

from collections.abc import Iterable

INBOX_PREFIX = "_INBOX."  # nats-py's default; always allowed
DEFAULT_REPLY_PREFIXES: tuple[str, ...] = (INBOX_PREFIX,)
MAX_REPLY_SUBJECT = 255  # characters; `Subject` in contract/chip_commands.py has the same bound


class ReplyPrefixInvalid(ValueError):
    """A configured reply prefix that is not whole subject tokens (config, at start-up)."""


def _tokens_unsafe(subject: str) -> str | None:
    """Why `subject` (or a prefix without its final dot) is not plain subject tokens."""
    if any(c.isspace() or not c.isprintable() for c in subject):
        return "contains whitespace"
    if "*" in subject or ">" in subject:
        return "contains a wildcard"
    if "" in subject.split("."):
        return "has an empty token"
    return None


def reply_prefix(raw: str) -> str:
    """`raw` as a prefix of whole tokens ending in `.`; `_INBOX_app` and `_INBOX_app.` are
    the same prefix (nats-py's `inbox_prefix` is written without the dot).

    :raises ReplyPrefixInvalid: naming what is wrong with it.
    """
    name = raw.strip().removesuffix(".")
    why = "is empty" if not name else _tokens_unsafe(name)
    if why is None and name.startswith("$"):
        why = "is a system subject ($JS, $SYS, $KV...)"
    if why is not None:
        raise ReplyPrefixInvalid(f"reply prefix {raw[:60]!r} {why}")
    return f"{name}."


def reply_prefixes(configured: Iterable[str]) -> tuple[str, ...]:
    """The default inbox prefix plus `configured` ones, each checked, without repeats."""
    found = [INBOX_PREFIX, *(reply_prefix(p) for p in configured)]
    return tuple(dict.fromkeys(found))


def reply_refusal(subject: str, prefixes: Iterable[str], field: str = "reply_to") -> str | None:
    """Why an answer may not go to `subject`, naming `field`; None when it may.

    The one decision for every reply a worker publishes (chip and route commands, the
    `Julia-Reply-To` header, a reply found in a body that did not decode).
    """
    shown = f"{field} {subject[:80]!r}"
    if len(subject) > MAX_REPLY_SUBJECT:
        return f"{shown} is longer than {MAX_REPLY_SUBJECT} characters"
    why = "is empty" if not subject else _tokens_unsafe(subject)
    if why is not None:
        return f"{shown} {why}"
    allowed = tuple(prefixes)
    if not any(subject.startswith(p) and len(subject) > len(p) for p in allowed):
        return f"{shown} is not an inbox subject (under {' or '.join(allowed)})"
    return None
