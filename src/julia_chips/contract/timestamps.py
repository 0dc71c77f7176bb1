"""The one datetime type of the wire contract: a time that comes in must say its zone.

`2030-01-01T00:00:00` names no instant (whose midnight?), and Python cannot compare it with
our clock's readings (UTC, aware): the `TypeError` comes far from the input, in whichever
loop compares it first. A `Cool` carrying one once wedged the health monitor for the whole
fleet. Decoding refuses it instead, naming the field ("Expected `datetime` with a timezone
component - at `$.until`"). Every inbound struct (chip commands, observations, webhook and
API bodies, query parameters) uses this alias, so no path lets a naive time in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

AwareDatetime = Annotated[datetime, msgspec.Meta(
    tz=True, description="ISO 8601 / RFC 3339 with a zone: `Z` or an offset such as `-03:00`")]
