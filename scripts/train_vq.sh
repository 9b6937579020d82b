#!/usr/bin/env bash
# Trains the two shipped VQ-VAEs, refits their code priors (128 wide, 4 layers; the final
# shipped settings are in scripts/train_protocol.sh and each metrics.json), then
# evaluates them (10,000 samples from each prior); one lane, one CPU thread each step.
# The training command fits the small default prior (fast enough for the Train tab); the
# shipped checkpoints then get a wider prior trained longer by latentlab.fit_prior, which
# keeps the auto-encoder bit for bit. Each metrics.json records both commands.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
for ds in mnist fashion; do
  $py -m latentlab.train --threads 1 --no-progress --dataset $ds --model vqvae --epochs 6 \
      --prior-epochs 3 --out checkpoints/$ds-vqvae
  $py -m latentlab.fit_prior checkpoints/$ds-vqvae --prior-dim 128 --prior-layers 4 \
      --prior-epochs 10 --threads 1 --no-progress
done
for ds in mnist fashion; do
  while [ ! -f checkpoints/$ds-classifier/metrics.json ]; do sleep 20; done
  $py -m latentlab.evaluate checkpoints/$ds-vqvae --threads 1 --no-progress
done
