"""Find the WhatsApp verification code in an SMS that reached one of our numbers.

Rule, in order:

1. Salvy's own detector (`detections.whatsapp.verificationCode`) wins when present.
2. Otherwise the text must name WhatsApp, and then we take
   a. the first `123-456` group (WhatsApp always hyphenates its codes), or
   b. six digits right after a WhatsApp-code phrase ("código do WhatsApp: 123456",
      "WhatsApp code is 123456").
3. Anything else yields no code.

Why so strict: Salvy delivers *every* SMS to the number, spam and other services' codes
included, and every wrong code we submit burns one of WhatsApp's few registration attempts
for the number (and can lock it for hours). A bank token or a Google code that merely sits
next to the word "WhatsApp" ("nunca pedimos códigos por WhatsApp") must not be taken.
"""

from __future__ import annotations

import re

_NAMES_WHATSAPP = re.compile(r"whats\s?app", re.IGNORECASE)
_HYPHENATED = re.compile(r"(?<![\d-])(\d{3})-(\d{3})(?![\d-])")
_AFTER_PHRASE = re.compile(
    r"(?:c[óo]digo\s+(?:do|de|da)\s+whats\s?app(?:\s+business)?"
    r"|whats\s?app(?:\s+business)?\s+(?:code|c[óo]digo))"
    r"\s*(?::|é|e|is|-)?\s*(\d{6})(?!\d)",
    re.IGNORECASE,
)


def whatsapp_code(text: str, detected: str | None = None) -> str | None:
    """The six-digit code (digits only, `123456`) or None when this SMS carries none.

    :param detected: Salvy's `detections.whatsapp.verificationCode`, if it sent one.
    """
    if detected:
        digits = "".join(ch for ch in detected if ch.isdigit())
        if digits:
            return digits
    if not _NAMES_WHATSAPP.search(text):
        return None
    hyphenated = _HYPHENATED.search(text)
    if hyphenated:
        return hyphenated.group(1) + hyphenated.group(2)
    phrased = _AFTER_PHRASE.search(text)
    return phrased.group(1) if phrased else None
