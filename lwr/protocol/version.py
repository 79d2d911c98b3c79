"""The protocol level lwr implements, as Galaxy reads it from replies (``pulsar_version``).

Galaxy's Pulsar runners compare this against the minimum Pulsar they support (0.7.0.dev3 for
setup; 0.14.0 for dataset collector descriptions) and assume 0.6.0 when it is missing, so every
setup and status reply must carry it.
"""

from __future__ import annotations

from typing import Any

from lwr import __version__

#: The Pulsar release whose protocol lwr speaks.
PULSAR_PROTOCOL_VERSION = "0.16.0"


def version_fields() -> dict[str, Any]:
    """The version keys of every setup and status reply."""
    return {"pulsar_version": PULSAR_PROTOCOL_VERSION, "lwr_version": __version__}
