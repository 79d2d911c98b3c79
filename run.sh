#!/bin/bash
# Start lwr from the project directory, as the original LWR's run.sh:
#   ./run.sh                 in the foreground
#   ./run.sh --daemon        in the background (pid in lwr.pid, log in lwr.log)
#   ./run.sh --stop-daemon   stop the background server
#   ./run.sh --restart       replace the background server with a new one (new code, new
#                            server.ini) without refusing a request; starts it if none runs
# Uses server.ini, or server.ini.sample's defaults when there is none. Sources local_env.sh.
# On first use it creates .venv and installs lwr into it.
set -euo pipefail
cd "$(dirname "$0")"

if [ -f local_env.sh ]; then
    # shellcheck disable=SC1091
    . ./local_env.sh
fi

venv="${LWR_VENV:-.venv}"
if [ ! -x "$venv/bin/lwr" ]; then
    echo "run.sh: installing lwr into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e .
fi

config=server.ini
[ -f "$config" ] || config=server.ini.sample

args=()
for arg in "$@"; do
    if [ "$arg" = "--restart" ]; then
        args+=(--restart --daemon)  # the server it replaces runs in the background too
    else
        args+=("$arg")
    fi
done
exec "$venv/bin/lwr" serve -c "$config" ${args[@]+"${args[@]}"}
