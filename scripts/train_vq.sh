#!/usr/bin/env bash
# Trains the two shipped VQ-VAEs and their code priors, then evaluates them (10,000 samples
# from each prior); one lane, one CPU thread. Each metrics.json records its commands.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
for ds in mnist fashion; do
  $py -m latentlab.train --threads 1 --no-progress --dataset $ds --model vqvae --epochs 6 \
      --prior-epochs 3 --out checkpoints/$ds-vqvae
done
for ds in mnist fashion; do
  while [ ! -f checkpoints/$ds-classifier/metrics.json ]; do sleep 20; done
  $py -m latentlab.evaluate checkpoints/$ds-vqvae --threads 1 --no-progress
done
