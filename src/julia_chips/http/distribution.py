"""`/distribution`: doctors per chip and per chip state, from the doctor and chip read models."""

from __future__ import annotations

from aiohttp import web

from julia_chips.http.keys import POOL
from julia_chips.http.params import NoQuery, query
from julia_chips.http.responses import json
from julia_chips.projections.distribution import distribution


async def get_distribution(request: web.Request) -> web.Response:
    query(request, NoQuery)
    return json(await distribution(request.app[POOL]))
