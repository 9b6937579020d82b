#!/usr/bin/env bash
# Trains the lecture's extra models under the validation protocol (the last 10,000 training
# images held out; --val-size 10000 is the default and is spelled out here), in two lanes of
# one CPU thread each on a 2-core machine:
#   beta sweep      MNIST z=16, N(0, I) prior, beta = 0.5 / 1 / 2 / 4, the same 20-epoch budget
#   autoencoder     the same encoder and decoder with a deterministic code, z = 2 and z = 16
#   Gumbel-softmax  20 categorical latents of 10 classes, uniform prior, tau 1 -> 0.5
# Each checkpoint's metrics.json records its command, wall time and validation curve;
# scripts/eval_lecture.sh scores them on the test set once, afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
logs=${LOG_DIR:-/tmp/runs}
mkdir -p "$logs"
common="--threads 1 --no-progress --dataset mnist --model vae --val-size 10000"
sweep="--latent-dim 16 --prior normal --epochs 20 --kl-warmup-epochs 3"
lane() { for cmd in "$@"; do $py -m latentlab.train $common $cmd; done; }
lane "$sweep --beta 0.5 --out checkpoints/mnist-vae-z16-beta0.5" \
     "--posterior deterministic --latent-dim 2 --epochs 12 --out checkpoints/mnist-ae-z2" \
     "$sweep --beta 2 --out checkpoints/mnist-vae-z16-beta2" \
     "--posterior categorical --prior uniform --latent-dim 20 --categories 10 --epochs 20 --out checkpoints/mnist-gumbel-20x10" \
     > "$logs/lectureA.log" 2>&1 &
lane "$sweep --beta 1 --out checkpoints/mnist-vae-z16-beta1" \
     "$sweep --beta 4 --out checkpoints/mnist-vae-z16-beta4" \
     "--posterior deterministic --latent-dim 16 --epochs 20 --out checkpoints/mnist-ae-z16" \
     > "$logs/lectureB.log" 2>&1 &
wait
