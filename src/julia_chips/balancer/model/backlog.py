"""The backlog: requests no chip could take when they came, in arrival order.

A doctor with an entry here holds their later requests too (they are queued behind it), so
a doctor never receives messages out of order; `waiting` answers that for each new request
without walking the backlog, and is kept in step by `add` and `remove`, the only writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from julia_chips.contract import route as rt


class Backlog(Mapping[str, rt.RequestQueued]):
    """Entries by request id, oldest first."""

    def __init__(self) -> None:
        self._entries: dict[str, rt.RequestQueued] = {}
        self._waiting: dict[str, int] = {}  # doctor_id -> their entries here (never 0)

    def __getitem__(self, request_id: str) -> rt.RequestQueued:
        return self._entries[request_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._entries  # not Mapping's, which raises and catches

    def waiting(self, doctor_id: str) -> int:
        return self._waiting.get(doctor_id, 0)

    def add(self, entry: rt.RequestQueued) -> None:
        """Queue `entry`; the same request queued twice (a replay) is one entry."""
        if entry.request_id in self._entries:
            return
        self._entries[entry.request_id] = entry
        self._waiting[entry.doctor_id] = self._waiting.get(entry.doctor_id, 0) + 1

    def remove(self, request_id: str) -> None:
        """Served or cancelled; a request not (or no longer) here is left alone."""
        entry = self._entries.pop(request_id, None)
        if entry is None:
            return
        left = self._waiting.pop(entry.doctor_id, 1) - 1
        if left:
            self._waiting[entry.doctor_id] = left
