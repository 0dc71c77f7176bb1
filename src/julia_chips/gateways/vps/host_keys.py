"""Which key a VPS host may present: its pinned `host_key`, else its known_hosts entries.

asyncssh given `known_hosts=None` checks nothing, so a host with neither would be connected
to whoever answers at its address: an impostor there would be handed phone numbers and
WhatsApp codes. Such a host is refused at start-up (`check_host_keys`), and at connect.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncssh

from julia_chips.gateways.vps.hosts import VpsHost


class HostKeyUnknown(ValueError):
    """A host we could not tell from an impostor; the message names it."""


def trusted_keys(host: VpsHost, known_hosts: Path | None) -> Any:
    """What asyncssh's `known_hosts=` gets for `host`; never None.

    :param known_hosts: an OpenSSH known_hosts file, for hosts without a pinned key.
    :raises HostKeyUnknown: no pinned key, no known_hosts entry, or a pinned key that is no
        OpenSSH public key.
    """
    if host.host_key is not None:
        try:
            return ([asyncssh.import_public_key(host.host_key)], [], [])
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise HostKeyUnknown(f"VPS host {host.name!r}: host_key is not an OpenSSH public "
                                 f"key ({exc})") from None
    if known_hosts is not None:
        listed = _read(known_hosts)
        host_keys, ca_keys, *_ = listed.match(host.address, "", host.port)
        if host_keys or ca_keys:
            return listed
    raise HostKeyUnknown(f"VPS host {host.name!r} ({host.address}:{host.port}) has no pinned "
                         "host_key and no entry in VPS_KNOWN_HOSTS")


def check_host_keys(hosts: Iterable[VpsHost], known_hosts: Path | None) -> None:
    """Raise HostKeyUnknown for the first host whose key we could not check."""
    for host in hosts:
        trusted_keys(host, known_hosts)


def _read(known_hosts: Path) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.read_known_hosts(str(known_hosts))
    except (OSError, ValueError) as exc:
        raise HostKeyUnknown(f"VPS_KNOWN_HOSTS {str(known_hosts)!r} unreadable: {exc}") from None
