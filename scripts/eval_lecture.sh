#!/usr/bin/env bash
# Scores the models of scripts/train_lecture.sh on the test set, once, after every choice was
# made on validation: IWAE with k=100 on the full 10,000 test images (k=1000 costs an hour per
# z=16 model on one core; the tables name the k), 10,000 prior samples judged by the
# classifier. Two lanes; each waits for its checkpoint. Pass names to score only those.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
logs=${LOG_DIR:-/tmp/runs}
mkdir -p "$logs"
wait_for() { while [ ! -f "$1/metrics.json" ]; do sleep 20; done; }
lane() {
  for name in "$@"; do
    wait_for "checkpoints/$name"
    $py -m latentlab.evaluate "checkpoints/$name" --k 100 --threads 1 --no-progress
  done
}
if [ $# -gt 0 ]; then names=("$@"); else
  names=(mnist-vae-z16-beta0.5 mnist-vae-z16-beta1 mnist-vae-z16-beta2 mnist-vae-z16-beta4
         mnist-gumbel-20x10 mnist-ae-z2 mnist-ae-z16)
fi
a=() b=()
for i in "${!names[@]}"; do if (( i % 2 == 0 )); then a+=("${names[$i]}"); else b+=("${names[$i]}"); fi; done
lane "${a[@]}" > "$logs/evalA.log" 2>&1 &
if [ ${#b[@]} -gt 0 ]; then lane "${b[@]}" > "$logs/evalB.log" 2>&1 & fi
wait
