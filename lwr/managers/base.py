"""The manager contract, where manager modules import it from.

The contract itself lives in :mod:`lwr.core.manager`, beside the core that calls it, so the
core never imports anything above it.
"""

from lwr.core.manager import LaunchSpec, Manager, ManagerListener, Option, as_bool

__all__ = ["LaunchSpec", "Manager", "ManagerListener", "Option", "as_bool"]
