"""One chip's failure stays that chip's: logged with its id, counted, and the loop goes on.

The health monitor, the warmer scheduler and the activator each run one loop for the whole
fleet. An exception from one chip's data (an event this version folds wrong, a bug on a rare
path) must not stop the others being cooled, banned or closed: a loop wedged on one chip
keeps its lease, so no standby takes over, and the whole fleet goes unwatched.
"""

from __future__ import annotations

import logging

from julia_chips.prometheus import CHIP_FAILURES

log = logging.getLogger(__name__)


def chip_failed(part: str, chip_id: str, work: str) -> None:
    """Log (with the traceback) and count that `work` for `chip_id` raised; call it from the
    `except` block that skips the chip.

    :param part: the loop's name, the counter's label (`health_monitor`, `activator`, ...).
    :param work: what was being done, for the log (`deciding`, `following Cooled`, ...).
    """
    log.exception("%s: %s for chip %s failed; skipped, the other chips go on", part, work,
                  chip_id)
    CHIP_FAILURES.labels(part=part).inc()
