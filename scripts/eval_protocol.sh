#!/usr/bin/env bash
# Scores the models of scripts/train_protocol.sh on the test set, once, after every choice was
# made on validation:
#   priors  the two refitted VQ-VAEs (two lanes): reconstructions, codebook, the prior's test
#           bits per code, 10,000 samples per prior and temperature judged by the classifier
#   vqvae2  the two-level VQ-VAE: the same, per level
#   flow    the z=16 flow-prior VAE (default mnist-flow-z16) with IWAE k=1000 (18.5 min on one
#           thread beside one other job)
#   flow-k5000  the same model's -L_5000 alone (--nll-only), kept as test_nll_iwae_k5000 beside
#           the k=1000 figures: a tighter bound on the same -log p(x), the k published MNIST
#           likelihoods are estimated with (the IWAE paper's among them); 96 min on two
#           threads, most of it beside a one-thread job (about 51 min alone, from a 500-image
#           timing)
# Usage: scripts/eval_protocol.sh priors | vqvae2 | flow|flow-k5000 [NAME] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
evaluate() { $py -m latentlab.evaluate "checkpoints/$1" --threads 1 --no-progress "${@:2}"; }
case "${1:-}" in
  priors) evaluate mnist-vqvae & a=$!; evaluate fashion-vqvae & b=$!; wait $a; wait $b ;;
  vqvae2) evaluate mnist-vqvae2 ;;
  flow)   evaluate "${2:-mnist-flow-z16}" --k 1000 --threads "${3:-1}" ;;
  flow-k5000) evaluate "${2:-mnist-flow-z16}" --nll-only --k 5000 --threads "${3:-1}" ;;
  *) echo "usage: $0 priors | vqvae2 | flow|flow-k5000 [NAME] [THREADS]" >&2; exit 2 ;;
esac
