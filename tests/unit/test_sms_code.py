"""The WhatsApp code rule: take WhatsApp's code, never a bank's or another service's."""

from __future__ import annotations

import pytest

from julia_chips.gateways.salvy.sms_code import whatsapp_code

SAMPLES = [
    ("Seu código do WhatsApp: 123-456", "123456"),
    ("WhatsApp code 123-456", "123456"),
    (
        "<#> Seu código do WhatsApp: 482-913\n"
        "Não compartilhe este código com ninguém.\n4sgLq1p5sV6",
        "482913",
    ),
    (
        "<#> Your WhatsApp code: 731-026\nYou can also tap on this link to verify your phone: "
        "v.whatsapp.com/731026\nDon't share this code with others\n4sgLq1p5sV6",
        "731026",
    ),
    ("Seu código do WhatsApp Business: 904-117. Não compartilhe.", "904117"),
    ("Your WhatsApp Business code: 220-381", "220381"),
    ("Tu código de WhatsApp es 555-012", "555012"),
    ("Seu código do WhatsApp é 654321", "654321"),
    ("WhatsApp code is 318204. Don't share it.", "318204"),
    # Not WhatsApp codes: no code may be taken.
    ("Seu código do Facebook é 123456. Não compartilhe.", None),
    ("G-448213 é seu código de verificação do Google.", None),
    ("BANCO: seu token de segurança é 550123. Nunca pedimos códigos por telefone.", None),
    ("Itaú: nunca pedimos códigos por WhatsApp. Seu código é 482913", None),
    ("Promoção! Chame no WhatsApp (11) 98765-4321 e ganhe 50% off", None),
    ("Seu pedido 123-456 saiu para entrega.", None),
    ("Olá! Sua fatura vence amanhã. Pague pelo app.", None),
    ("Your Uber code: 4821. Never share this code.", None),
    ("Você foi adicionado a um grupo de WhatsApp.", None),
]


@pytest.mark.parametrize(("text", "expected"), SAMPLES)
def test_code_from_text(text: str, expected: str | None) -> None:
    assert whatsapp_code(text) == expected


def test_salvy_detection_wins_over_text() -> None:
    assert whatsapp_code("anything at all 111-222 WhatsApp", "987654") == "987654"


def test_detection_is_normalised_to_digits() -> None:
    assert whatsapp_code("", "123-456") == "123456"


def test_empty_detection_falls_back_to_text() -> None:
    assert whatsapp_code("WhatsApp code 246-810", "") == "246810"
