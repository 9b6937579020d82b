#!/usr/bin/env bash
# A cheaper evaluation (IWAE k=100, 4 ELBO samples) for when k=1000 does not fit the time
# at hand; the k used is recorded in metrics.json and shown in the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
for name in "$@"; do
  while [ ! -f "checkpoints/$name/metrics.json" ]; do sleep 20; done
  $py -m latentlab.evaluate "checkpoints/$name" --k 100 --elbo-samples 4 --threads 1 --no-progress
done
