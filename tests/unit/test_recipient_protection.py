from datetime import UTC, datetime

import pytest

from julia_chips.balancer.model.protection import (
    is_opt_out,
    prospecting_in_week,
    within_prospecting_hours,
)


@pytest.mark.parametrize("text", ["PARAR", "parar", "Parar", " SAIR ", "stop", "Stop!",
                                  "cancelar", "DESCADASTRAR", "descadastrar.", "Párar",
                                  "SAÍR", "sáir", "cancelár", "DESCADASTRÁR"])
def test_opt_out_keywords_in_any_case_and_accent(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["não vou parar", "parar de receber?", "STOP please", "",
                                  "sair amanhã", "plantão", "PARARR"])
def test_only_the_whole_message_counts(text: str) -> None:
    assert not is_opt_out(text)


@pytest.mark.parametrize(("utc", "allowed"), [
    (datetime(2026, 11, 25, 11, 0, tzinfo=UTC), True),  # Wed 08:00 local: opens
    (datetime(2026, 11, 25, 10, 59, tzinfo=UTC), False),  # Wed 07:59 local
    (datetime(2026, 11, 25, 22, 59, tzinfo=UTC), True),  # Wed 19:59 local
    (datetime(2026, 11, 25, 23, 0, tzinfo=UTC), False),  # Wed 20:00 local: closed
    (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), True),  # Saturday noon
    (datetime(2026, 11, 29, 15, 0, tzinfo=UTC), False),  # Sunday noon
])
def test_prospecting_hours_are_sao_paulo_business_hours(utc: datetime, allowed: bool) -> None:
    assert within_prospecting_hours(utc) is allowed


def test_week_is_rolling() -> None:
    now = datetime(2026, 11, 25, 15, tzinfo=UTC)
    sent = [datetime(2026, 11, 18, 14, tzinfo=UTC), datetime(2026, 11, 18, 16, tzinfo=UTC)]
    assert prospecting_in_week(sent, now) == 1
