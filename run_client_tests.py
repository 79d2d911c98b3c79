#!/usr/bin/env python3
"""Run one representative job against a live lwr or Pulsar server: ``run_client_tests.py --url=URL``.

The same as ``lwr check`` (see ``lwr/client/check.py`` and docs/client.md); exits non-zero naming
the failed step.
"""

import sys

from lwr.client.check import main

if __name__ == "__main__":
    sys.exit(main())
