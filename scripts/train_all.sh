#!/usr/bin/env bash
# Trains every shipped continuous model and the two classifiers, in two lanes (one CPU
# thread each on a 2-core machine). Each checkpoint's metrics.json records its command.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
lane() { for cmd in "$@"; do $py -m latentlab.train --threads 1 --no-progress $cmd; done; }
lane "--dataset mnist --model vae --prior normal --latent-dim 16 --epochs 40 --kl-warmup-epochs 3 --out checkpoints/mnist-vae-z16" \
     "--dataset mnist --model classifier --epochs 4 --lr 1e-3 --out checkpoints/mnist-classifier" \
     "--dataset mnist --model vae --prior normal --latent-dim 2 --epochs 12 --kl-warmup-epochs 3 --out checkpoints/mnist-vae-z2" \
     "--dataset fashion --model vae --prior normal --latent-dim 16 --epochs 25 --kl-warmup-epochs 3 --out checkpoints/fashion-vae-z16" \
     > /tmp/runs/laneA.log 2>&1 &
lane "--dataset mnist --model vae --prior realnvp --latent-dim 16 --epochs 40 --kl-warmup-epochs 3 --out checkpoints/mnist-flow-z16" \
     "--dataset fashion --model classifier --epochs 8 --lr 1e-3 --out checkpoints/fashion-classifier" \
     "--dataset mnist --model vae --prior realnvp --latent-dim 2 --epochs 12 --kl-warmup-epochs 3 --out checkpoints/mnist-flow-z2" \
     "--dataset fashion --model vae --prior realnvp --latent-dim 16 --epochs 25 --kl-warmup-epochs 3 --out checkpoints/fashion-flow-z16" \
     > /tmp/runs/laneB.log 2>&1 &
wait
