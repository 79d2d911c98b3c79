"""The manager contract, where manager modules import it from.

The contract itself lives in :mod:`lwr.core.manager`, beside the core that calls it, so the
core never imports anything above it.
"""

from lwr.core.manager import GALAXY_SLOTS_OPTION, LaunchSpec, Manager, ManagerListener, Option, as_bool

__all__ = ["GALAXY_SLOTS_OPTION", "LaunchSpec", "Manager", "ManagerListener", "Option", "as_bool"]
