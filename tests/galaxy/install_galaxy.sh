#!/bin/bash
# Installs the Galaxy that tests/galaxy/ runs, into a virtualenv outside the repository that
# later runs reuse: ${LWR_GALAXY_VENV:-$HOME/.cache/lwr-test/galaxy-26.1.2}.
#
# galaxy-app + galaxy-web-apps, not the `galaxy` metapackage: `pip install galaxy==26.1.2`
# silently resolves to 26.1.1 (it pins a certifi release the registry lacks).
# Does nothing when the venv is already complete (its marker file names the same version);
# a half-built or broken one is removed and built again. Prints the venv's path last.
set -euo pipefail

GALAXY_VERSION=26.1.2
VENV="${LWR_GALAXY_VENV:-$HOME/.cache/lwr-test/galaxy-$GALAXY_VERSION}"
MARKER="$VENV/.lwr-galaxy-installed"
PYTHON="${LWR_GALAXY_PYTHON:-python3}"

complete() {
    [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$GALAXY_VERSION" ] \
        && [ -x "$VENV/bin/galaxy-web" ] \
        && "$VENV/bin/python" -c "import sys, uvicorn, galaxy.version as v; sys.exit(v.VERSION != '$GALAXY_VERSION')" 2>/dev/null
}

if ! complete; then
    echo "installing Galaxy $GALAXY_VERSION into $VENV" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "galaxy-app==$GALAXY_VERSION" "galaxy-web-apps==$GALAXY_VERSION"
    echo "$GALAXY_VERSION" > "$MARKER"
    complete || { echo "Galaxy $GALAXY_VERSION did not install cleanly into $VENV" >&2; exit 1; }
fi
echo "$VENV"
