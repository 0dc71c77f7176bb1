"""`/doctors/{id}`: where a doctor's conversation stands, from the doctor read models.

Phone numbers never reach this route: the projections do not copy them out of the streams.
"""

from __future__ import annotations

from aiohttp import web

from julia_chips.http.errors import ApiProblem
from julia_chips.http.keys import CLOCK, POOL
from julia_chips.http.params import NoQuery, doctor_id, query
from julia_chips.http.responses import json
from julia_chips.projections.doctors import doctor_view


async def get_doctor(request: web.Request) -> web.Response:
    doctor = doctor_id(request)
    query(request, NoQuery)
    view = await doctor_view(request.app[POOL], doctor, request.app[CLOCK].now())
    if view is None:
        raise ApiProblem(404, "no such doctor: never routed by the balancer", "id")
    return json(view)
