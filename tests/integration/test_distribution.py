"""Doctors per chip over the real servers: `/chips/{id}` lists the doctors a chip holds,
`/distribution` counts them per chip and per state, `/metrics` has `chip_doctors`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from julia_chips.contract import route as rt
from julia_chips.contract.codec import ENCODER
from julia_chips.contract.subjects import route_events
from tests.integration.test_http_api import PHONE, Fleet, fleet, get  # noqa: F401 (fixture)
from tests.integration.test_projections_lifecycles import T0, caught_up


async def assign(js: JetStreamContext, served: Fleet) -> tuple[str, str, str]:
    """Three doctors on chip a, one of them moved there from chip b; one left on b; one
    quarantined off b. Returns the chip ids a, b and one holding nobody."""
    a, b, idle = served.chips[:3]
    d: dict[str, Any] = {"command_id": "c", "occurred_at": T0}
    events: list[rt.RouteEvent] = [
        rt.ConversationAssigned(event_id="d1", doctor_id="dr-c1", chip_id=a, consented=False,
                                **d),
        rt.ConversationAssigned(event_id="d2", doctor_id="dr-c2", chip_id=a, consented=True, **d),
        rt.ConversationAssigned(event_id="d3", doctor_id="dr-moved", chip_id=b, consented=True,
                                **d),
        rt.ConversationReassigned(event_id="d4", doctor_id="dr-moved", from_chip_id=b,
                                  chip_id=a, consented=True, reason="b cooling", **d),
        rt.ConversationAssigned(event_id="d5", doctor_id="dr-c3", chip_id=b, consented=False,
                                **d),
        rt.ConversationAssigned(event_id="d6", doctor_id="dr-q", chip_id=b, consented=False,
                                **d),
        rt.DoctorQuarantined(event_id="d7", doctor_id="dr-q", chip_id=b, reason="b banned",
                             until=T0 + timedelta(days=30), **d),
    ]
    for event in events:
        await js.publish(route_events(event.doctor_id), ENCODER.encode(event))
    await caught_up(js, served.database_url)
    return a, b, idle


async def test_chips_show_their_doctors_and_the_distribution_counts_them(
        fleet: Fleet, nc: NATS, js: JetStreamContext) -> None:  # noqa: F811
    a, b, idle = await assign(js, fleet)
    _, chip_a = await get(f"{fleet.base}/chips/{a}")
    assert chip_a["doctors"] == {"count": 3, "doctor_ids": ["dr-c1", "dr-c2", "dr-moved"]}
    _, chip_b = await get(f"{fleet.base}/chips/{b}")
    assert chip_b["doctors"] == {"count": 1, "doctor_ids": ["dr-c3"]}
    _, nobody = await get(f"{fleet.base}/chips/{idle}")
    assert nobody["doctors"] == {"count": 0, "doctor_ids": []}

    status, body = await get(f"{fleet.base}/distribution")
    assert status == 200, body
    per_chip = {c["chip_id"]: (c["status"], c["doctors"]) for c in body["chips"]}
    assert per_chip[a] == (chip_a["status"], 3) and per_chip[b] == (chip_b["status"], 1)
    assert per_chip[idle] == (nobody["status"], 0)
    assert per_chip["chip-x"] == (None, 1)  # dr-ana, on a chip julia_chips does not know
    assert set(per_chip) == set(fleet.chips) | {"chip-x"}
    expected = {chip_a["status"]: 0, chip_b["status"]: 0}
    expected[chip_a["status"]] += 3
    expected[chip_b["status"]] += 1
    assert {s: n for s, n in body["by_status"].items() if n} == expected
    assert (body["unassigned"], body["on_unknown_chips"], body["doctors_total"]) == (2, 1, 7)

    _, text = await get(f"{fleet.base}/metrics")
    assert f'chip_doctors{{chip_id="{a}"}} 3.0' in text
    assert f'chip_doctors{{chip_id="{idle}"}} 0.0' in text
    for path in (f"/chips/{a}", "/distribution", "/metrics"):  # LGPD: ids, never phones
        _, got = await get(f"{fleet.base}{path}")
        assert PHONE[-9:] not in str(got), path
    assert (await get(f"{fleet.base}/distribution", token=None))[0] == 401
    assert (await get(f"{fleet.base}/distribution?chip=1"))[1]["field"] == "chip"
    _, doc = await get(f"{fleet.base}/openapi.json")
    assert "doctors" in doc["components"]["schemas"]["ChipView"]["required"]
    assert "/distribution" in doc["paths"]
