"""The VPS hosts that run gateway instances, as the operator lists them.

Capacity is the operator's number (how many chips a host may carry), not the host's own
claim: a host that reports more free room than it was sized for still gets no more chips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec


class VpsHost(msgspec.Struct, frozen=True, kw_only=True):
    """One host. `host_key` (an OpenSSH public key line) pins its identity when set;
    otherwise the client's known_hosts must already know it: host keys are never skipped.
    """

    name: str
    address: str
    port: int = 22
    username: str = "julia"
    capacity: int  # gateway instances (chips) this host may run
    labels: frozenset[str] = frozenset()
    host_key: str | None = None


class HostHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One health probe. `error` says why a host is unusable (unreachable, gateway down, …)."""

    host: str
    reachable: bool
    gateway_up: bool
    capacity: int
    used_slots: int
    error: str | None = None

    @property
    def free_slots(self) -> int:
        """Chips this host can still take; zero whenever it cannot serve at all."""
        if not (self.reachable and self.gateway_up):
            return 0
        return max(0, self.capacity - self.used_slots)


class HostRegistry:
    """The configured hosts, by unique name."""

    def __init__(self, hosts: Iterable[VpsHost]) -> None:
        self._hosts: dict[str, VpsHost] = {}
        for host in hosts:
            if host.name in self._hosts:
                raise ValueError(f"VPS host {host.name!r} listed twice")
            if host.capacity < 0:
                raise ValueError(f"VPS host {host.name!r}: capacity must not be negative")
            self._hosts[host.name] = host

    @classmethod
    def from_json(cls, data: bytes) -> HostRegistry:
        """Read a JSON array of hosts; a bad entry raises msgspec.ValidationError with its path."""
        return cls(msgspec.json.decode(data, type=list[VpsHost], strict=True))

    def __iter__(self) -> Iterator[VpsHost]:
        return iter(self._hosts.values())

    def __len__(self) -> int:
        return len(self._hosts)

    def get(self, name: str) -> VpsHost:
        """The host called `name`; KeyError if it is not configured."""
        return self._hosts[name]

    def labelled(self, labels: frozenset[str]) -> list[VpsHost]:
        """Hosts carrying every one of `labels` (all hosts when `labels` is empty)."""
        return [host for host in self._hosts.values() if labels <= host.labels]
