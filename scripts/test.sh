#!/usr/bin/env bash
# Install what the tests need (in a venv cached by the requirements' hash) and run them:
# ruff, then pytest (unit, contract and doctests, the app through its API, and real-browser
# tests with Debian's Chromium driven by Playwright).
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
# the package itself, editable (console scripts latentlab-train / -evaluate / -fit-prior)
"$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
# the browser for the real-browser tests (Playwright's own browser download does not work here)
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then s=""; else s="sudo"; fi
  $s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $s apt-get install -y -qq chromium >/dev/null
fi
# the data sets: $LATENT_LAB_DATA, else ../shared/datasets beside this checkout, else beside the
# local repository this one was cloned from (so a throw-away clone in /tmp finds them too)
if [ -z "${LATENT_LAB_DATA:-}" ]; then
  LATENT_LAB_DATA="$(pwd)/../shared/datasets"
  origin=$(git remote get-url origin 2>/dev/null || true)
  if [ ! -d "$LATENT_LAB_DATA" ] && [ -n "$origin" ] && [ -d "$origin/../shared/datasets" ]; then
    LATENT_LAB_DATA=$(cd "$origin/../shared/datasets" && pwd)
  fi
fi
export LATENT_LAB_DATA
"$venv/bin/ruff" check .
exec "$venv/bin/python" -m pytest -q "$@"
