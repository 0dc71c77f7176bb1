"""How many fuzz cases ran, per decoder and per HTTP operation, for the session summary
(`tests/fuzz/conftest.py`): a fuzz run that quietly ran nothing should show it."""

from __future__ import annotations

from collections import Counter

DECODER_CASES: Counter[str] = Counter()
HTTP_CASES: Counter[str] = Counter()
