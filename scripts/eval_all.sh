#!/usr/bin/env bash
# Evaluates every shipped checkpoint with the numbers the README reports (IWAE k=1000 on
# the full 10,000-image test set, 10,000 prior samples), in two lanes; each lane waits for
# its checkpoints (and the data set's classifier) to exist. Results go into metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
wait_for() { while [ ! -f "$1/metrics.json" ]; do sleep 20; done; }
lane() {
  for name in "$@"; do
    wait_for "checkpoints/$name"
    wait_for "checkpoints/${name%%-*}-classifier"
    $py -m latentlab.evaluate "checkpoints/$name" --k 1000 --threads 1 --no-progress
  done
}
lane mnist-vae-z16 mnist-vae-z2 fashion-vae-z16 > /tmp/runs/evalA.log 2>&1 &
lane mnist-flow-z16 mnist-flow-z2 fashion-flow-z16 > /tmp/runs/evalB.log 2>&1 &
wait
