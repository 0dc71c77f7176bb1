"""Local stand-ins for the outside world (Evolution API, Salvy, VPS hosts, doctors).

They speak real HTTP and SSH on 127.0.0.1 only, so the real adapters run against them
unchanged. `start_sandbox` starts them all.
"""

from julia_chips.sandbox.world import Sandbox, start_sandbox

__all__ = ["Sandbox", "start_sandbox"]
