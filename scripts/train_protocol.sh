#!/usr/bin/env bash
# Retrains / refits under the validation protocol (the last 10,000 training images held out,
# every choice made on them, the test set scored once afterwards by scripts/eval_protocol.sh):
#   flow    MNIST z=16 VAE with the RealNVP prior, 64 epochs (about 50 min on one core),
#           the epoch with the lowest validation loss kept
#   priors  the two shipped VQ-VAEs' code priors refitted (their epochs had been chosen on
#           test): 8 epochs with dropout 0.1, the epoch with the lowest validation NLL kept;
#           about 35 min per lane (the auto-encoder's 13 min + this stay within the hour).
#           A 12-epoch run on randomly shifted images (--prior-augment-shift 1) was stopped:
#           it needed about 65 min for the prior alone
#   vqvae2  the two-level VQ-VAE (2x2 top, 7x7 bottom) on MNIST, 8 epochs with the best
#           validation epoch kept, then its hierarchical code prior (8 epochs, chosen on
#           validation); about 45 min on one core
# Usage: scripts/train_protocol.sh flow|vqvae2|priors [mnist-vqvae|fashion-vqvae ...]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
case "${1:-}" in
  flow)
    $py -m latentlab.train --threads 1 --no-progress --dataset mnist --model vae --prior realnvp \
        --latent-dim 16 --epochs 64 --kl-warmup-epochs 3 --val-size 10000 --keep-best true \
        --out checkpoints/mnist-flow-z16-val ;;
  vqvae2)
    $py -m latentlab.train --threads 1 --no-progress --dataset mnist --model vqvae2 --epochs 8 \
        --val-size 10000 --keep-best true --prior-epochs 8 --out checkpoints/mnist-vqvae2 ;;
  priors)  # one lane of one thread per named VQ-VAE (default both), side by side
    names=("${@:2}"); [ ${#names[@]} -gt 0 ] || names=(mnist-vqvae fashion-vqvae)
    for name in "${names[@]}"; do
      $py -m latentlab.fit_prior checkpoints/$name --threads 1 --no-progress --val-size 10000 \
          ${PRIOR_ARGS:---prior-dim 128 --prior-layers 4 --prior-dropout 0.1 --prior-epochs 8} &
    done
    wait ;;
  *) echo "usage: $0 flow|priors|vqvae2" >&2; exit 2 ;;
esac
