"""An opt-out word opts the phone out: under any doctor id, in either ninth-digit form."""

from __future__ import annotations

import msgspec
import pytest

from julia_chips.balancer.model.decide import RouteRefused, stranger_id
from julia_chips.balancer.model.state import BalancerState, evolve
from julia_chips.contract import route as rt
from julia_chips.contract.chip import Status
from julia_chips.contract.route import RefusalReason
from julia_chips.phones import phone_key
from tests.unit.balancer_builders import add_chip, run, send

SECRET = b"unit-secret"
NEW, OLD = "+5511987654321", "551187654321"  # one mobile, with and without the ninth digit


def fleet(cap: int = 10) -> BalancerState:
    state = BalancerState(SECRET)
    add_chip(state, "a", Status.ACTIVE, cap)
    return state


def to(doctor_id: str, phone: str, command_id: str | None = None, consented: bool = True
       ) -> rt.SendRequest:
    return msgspec.structs.replace(send(doctor_id, command_id=command_id, consented=consented),
                                   doctor_phone=phone)


def inbound(text: str, phone: str = NEW, command_id: str = "in-1") -> rt.InboundMessage:
    return rt.InboundMessage(command_id=command_id, doctor_phone=phone, text=text,
                             chip_id="a", message_id="3A5F01")


def test_parar_from_a_phone_refuses_it_under_any_doctor_id_and_either_form() -> None:
    state = fleet()
    run(state, to("d1", NEW))
    events = run(state, inbound("PARAR", phone=OLD))
    assert [(type(e), e.doctor_id) for e in events] == [(rt.DoctorOptedOut, "d1")]
    assert events[0].phone_key == phone_key(NEW, SECRET)  # type: ignore[union-attr]
    for doctor_id, phone in (("d1", NEW), ("d2", NEW), ("d3", OLD), ("d4", "+55 11 8765-4321")):
        with pytest.raises(RouteRefused) as refused:
            run(state, to(doctor_id, phone))
        assert refused.value.reason is RefusalReason.OPTED_OUT
    run(state, to("d5", "+5511912345678"))  # another phone still gets its message


def test_a_phone_never_sent_to_is_opted_out_all_the_same() -> None:
    state = fleet()
    events = run(state, inbound("Sair"))
    assert [e.doctor_id for e in events] == [stranger_id(phone_key(NEW, SECRET))]
    with pytest.raises(RouteRefused):
        run(state, to("d9", OLD))


def test_waiting_sends_to_the_phone_are_cancelled_whoever_they_were_for() -> None:
    state = fleet(cap=0)
    run(state, to("d1", NEW, "q1"))
    run(state, to("d2", OLD, "q2"))
    run(state, to("d3", "+5511912345678", "q3"))
    events = run(state, inbound("stop"))
    assert sorted(e.request_id for e in events if isinstance(e, rt.RequestCancelled)) == [
        "q1", "q2"]
    assert list(state.backlog) == ["q3"]


def test_a_reply_from_the_phone_consents_the_doctors_it_was_sent_for() -> None:
    state = fleet()
    run(state, to("d1", NEW, "p1", consented=False))
    run(state, to("d2", OLD, "p2", consented=False))
    events = run(state, inbound("Tenho interesse, qual o valor?", phone=OLD))
    assert [(type(e), e.doctor_id) for e in events] == [
        (rt.DoctorReplied, "d1"), (rt.DoctorReplied, "d2")]
    assert all(e.chip_id == "a" for e in events)  # type: ignore[union-attr]
    assert run(state, inbound("sim", command_id="in-2")) == []  # consented already


def test_the_phones_are_rebuilt_from_the_route_events() -> None:
    state = fleet()
    history = [*run(state, to("d1", NEW)), *run(state, inbound("PARAR"))]
    rebuilt = fleet()
    for event in history:
        evolve(rebuilt, event)
    with pytest.raises(RouteRefused):
        run(rebuilt, to("d7", OLD))


def test_an_opt_in_with_the_phone_lifts_the_phone_too() -> None:
    state = fleet()
    run(state, inbound("PARAR"))
    run(state, rt.OptIn(command_id="back", doctor_id="d1", source="crm", doctor_phone=OLD))
    assert run(state, to("d1", NEW))
    assert run(state, to("d2", OLD))


def test_an_inbound_names_a_doctor_or_a_phone() -> None:
    with pytest.raises(rt.BadRouteCommand, match="doctor_id or doctor_phone"):
        rt.decode_route_command("inbound", b'{"command_id":"c","text":"oi"}')
    old = rt.decode_route_command("inbound", b'{"command_id":"c","doctor_id":"d1","text":"oi"}')
    assert isinstance(old, rt.InboundMessage) and old.doctor_phone is None
