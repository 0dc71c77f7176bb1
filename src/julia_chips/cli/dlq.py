"""`julia-chips dlq list|show|replay|purge`: the dead letters, through the operations desk.

Lists leave bodies out (they may hold a phone or a text); `show` prints the body, which is
what an operator asks for by sequence, with phone numbers masked in the table. Replays and
purges are explicit: one `SEQ`, or a kind (and key), or `--all`, as the desk requires.
"""

from __future__ import annotations

import argparse

import msgspec

from julia_chips.cli.desk import ask, settled
from julia_chips.cli.output import OK, Output
from julia_chips.cli.system import System
from julia_chips.contract import operations as ops
from julia_chips.contract.subjects import OpsSubject
from julia_chips.privacy import mask_phones_in

COLUMNS = ("seq", "subject", "from", "reason", "stored at", "bytes")


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=[k.value for k in ops.DeadLetterKind], default=None,
                        help="who gave up on the message")
    parser.add_argument("--key", default=None, help="with --kind: one chip, doctor or source")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge").add_subparsers(
        dest="dlq", required=True)
    listing = dlq.add_parser("list", parents=[common], help="letters, oldest first")
    _filter_options(listing)
    listing.add_argument("--after", type=int, default=0, help="page on after this seq")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(act=_list)
    show = dlq.add_parser("show", parents=[common], help="one letter, with its body")
    show.add_argument("seq", type=int)
    show.set_defaults(act=_show)
    replay = dlq.add_parser("replay", parents=[common],
                            help="send letters back where they came from (then remove them)")
    replay.add_argument("seq", type=int, nargs="?", default=None)
    _filter_options(replay)
    replay.add_argument("--all", action="store_true", help="every letter the filter matches")
    replay.set_defaults(act=_replay)
    purge = dlq.add_parser("purge", parents=[common], help="delete letters for good")
    _filter_options(purge)
    purge.add_argument("--all", action="store_true", help="the whole dead-letter stream")
    purge.set_defaults(act=_purge)


async def _list(system: System, out: Output, args: argparse.Namespace) -> int:
    request = {"kind": args.kind, "key": args.key, "after_seq": args.after, "limit": args.limit}
    reply = await ask(system, OpsSubject.DEAD_LETTERS_LIST,
                      request,
                      ops.DeadLettersListed, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    out.table(f"dead letters: {len(reply.letters)}", COLUMNS, (
        (d.seq, d.subject, d.original_subject, d.reason, d.stored_at, d.size)
        for d in reply.letters))
    if reply.next_after is not None:
        out.out.print(f"more follow: --after {reply.next_after}", markup=False)
    return OK


async def _show(system: System, out: Output, args: argparse.Namespace) -> int:
    reply = await ask(system, OpsSubject.DEAD_LETTERS_SHOW, {"seq": args.seq},
                      ops.DeadLetterShown, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    if reply.letter is None:
        return out.refused(f"no dead letter {args.seq}")
    letter = reply.letter
    if letter.body is not None:  # phones masked in the table; `--json` has the body as stored
        letter = msgspec.structs.replace(letter, body=mask_phones_in(letter.body))
    out.fields(f"dead letter {letter.seq}", [(name, getattr(letter, name))
                                            for name in letter.__struct_fields__])
    return OK


def _chosen(args: argparse.Namespace, extra: dict[str, object]) -> dict[str, object]:
    chosen = {"kind": args.kind, "key": args.key, **extra}
    return {k: v for k, v in chosen.items() if v is not None and v is not False}


async def _replay(system: System, out: Output, args: argparse.Namespace) -> int:
    reply = await ask(system, OpsSubject.DEAD_LETTERS_REPLAY,
                      _chosen(args, {"seq": args.seq, "all": args.all}),
                      ops.DeadLettersReplayed, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    for refused in reply.refused:
        out.err.print(f"kept {refused.seq}: {refused.reason}", markup=False)
    return out.done(f"replayed {reply.replayed}; kept {reply.refused_count}")


async def _purge(system: System, out: Output, args: argparse.Namespace) -> int:
    reply = await ask(system, OpsSubject.DEAD_LETTERS_PURGE, _chosen(args, {"all": args.all}),
                      ops.DeadLettersPurged, args.timeout)
    if (code := settled(out, reply)) is not None:
        return code
    return out.done(f"purged {reply.purged}")
