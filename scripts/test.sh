#!/usr/bin/env bash
# Install what the tests need (in a venv cached by the requirements' hash) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
hash=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
venv="${LATENT_LAB_VENV:-$HOME/.cache/latent-lab/venv-$hash}"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r requirements-dev.txt
  touch "$venv/.complete"
fi
export LATENT_LAB_DATA="${LATENT_LAB_DATA:-$(pwd)/../shared/datasets}"
"$venv/bin/ruff" check .
exec "$venv/bin/python" -m pytest -q "$@"
