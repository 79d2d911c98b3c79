#!/bin/bash
# Runs the whole test suite (unit and integration, against real processes and services).
set -euo pipefail
cd "$(dirname "$0")"
[ -f local_env.sh ] && . ./local_env.sh
exec .venv/bin/python -m pytest "$@"
