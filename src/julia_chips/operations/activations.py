"""An operator's way out of an abandoned activation, as a function the CLI can call.

The request is a chip command (`RetryActivation` on `chip.cmd.<chip_id>`, answered on the
client's own inbox like every command): the chip records `ActivationRetried` in its history,
and the activator, following chip events, resumes the saga from its first step not done with
the number it already bought, so Salvy is never asked for a second one.
"""

from __future__ import annotations

import uuid

from julia_chips.chip.client import ChipClient
from julia_chips.contract.chip_commands import CommandReply, RetryActivation


async def retry_activation(chips: ChipClient, chip_id: str, *, command_id: str | None = None,
                           timeout: float = 10.0) -> CommandReply:
    """Ask for `chip_id`'s abandoned activation to run again; refused unless it is activating.

    :param command_id: fixed for a retried request, so it is recorded once (default: new).
    :param timeout: seconds to wait for the chip's reply.
    """
    command = RetryActivation(command_id=command_id or f"retry-activation-{uuid.uuid4().hex}")
    return await chips.send(chip_id, command, timeout)
