#!/usr/bin/env bash
# Creates tests/clients/.venv with the pinned official `authzed` Python client (requirements.txt).
#
# Idempotent and quick when already done: a stamp inside the venv records the requirements it
# was built from, and nothing is installed again while they are unchanged. Safe to run from
# several tests at once (serialised with a lock). Needs python3 with the venv module and, on the
# first run only, access to PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
requirements="$here/requirements.txt"
stamp="$venv/.tessera-requirements"

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: \`$python\` not found; install Python 3 (with its venv module) to run the client tests" >&2
    exit 1
fi

mkdir -p "$venv"
exec 9>"$venv/.setup.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$requirements" "$stamp"; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -m venv "$venv"; then
        echo "setup.sh: creating the virtualenv failed; on Debian/Ubuntu install python3-venv" >&2
        exit 1
    fi
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --requirement "$requirements"
cp "$requirements" "$stamp"
echo "setup.sh: installed $(grep -v '^#' "$requirements" | paste -sd ' ') into $venv"
