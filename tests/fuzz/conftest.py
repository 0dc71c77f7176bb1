"""The fuzzing's session-end line: cases run over decoders and over HTTP operations."""

from __future__ import annotations

import pytest

from tests.fuzz.counts import DECODER_CASES, HTTP_CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if DECODER_CASES or HTTP_CASES:
        terminalreporter.write_line(
            f"fuzz: {sum(DECODER_CASES.values())} cases over {len(DECODER_CASES)} decoders; "
            f"schemathesis: {sum(HTTP_CASES.values())} cases over {len(HTTP_CASES)} operations")
