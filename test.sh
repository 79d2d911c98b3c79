#!/bin/bash
# Runs lwr's whole test suite against real services, installing what it needs first:
# a .venv with lwr and its test dependencies (pulsar-app among them), RabbitMQ, chromium, and the batch
# systems of the cluster tests (.ci/backends.sh: Slurm, Grid Engine + DRMAA, a loopback sshd).
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstalled when pyproject.toml changed since the last install (a dependency added), too.
stamp=.venv/.lwr-pyproject.sha256
if ! .venv/bin/python -c "import pytest, pulsar.client, lwr, hypothesis, schemathesis" 2>/dev/null \
    || [ "${LWR_REINSTALL:-0}" = 1 ] || ! sha256sum --status -c "$stamp" 2>/dev/null; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test]'
    sha256sum pyproject.toml > "$stamp"
fi

# RabbitMQ (message-queue tests): started if it is not listening.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    if ! command -v rabbitmq-server >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    rabbitmq-server -detached || true
    for _ in $(seq 1 90); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
fi

# A headless browser for the status-page test (tests/ops/test_status_page.py): Debian's chromium.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Batch systems for the cluster tests.
if [ -f .ci/backends.sh ] && [ "${LWR_SKIP_BACKENDS:-0}" != 1 ]; then
    bash .ci/backends.sh
fi

# The real Galaxy of tests/galaxy/: a virtualenv outside the repository, built on the first run
# and reused after (${LWR_GALAXY_VENV:-$HOME/.cache/lwr-test/galaxy-26.1.2}).
bash tests/galaxy/install_galaxy.sh >/dev/null

[ -f local_env.sh ] && . ./local_env.sh
[ -f .ci/backends.env ] && . ./.ci/backends.env
exec .venv/bin/python -m pytest "$@"
