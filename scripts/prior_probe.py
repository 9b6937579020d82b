"""A quick probe of what moves a code prior that is still improving at its last epoch.

A full MNIST prior fit takes most of an hour, so levers are first compared on a small proxy:
a fresh prior fit on the first N training grids of a shipped VQ-VAE for a few epochs (AdamW,
weight decay 0.1, batch 128, cosine decay to 5 %, as ``latentlab.fit_prior``), judged on the
first 5,000 validation grids (the last 10,000 training images). Printed per epoch: the
validation bits per code; at the end: the bits on the clean training grids and the gap.

Variants (``VARIANT`` is ``base``, ``corrupt:P`` or ``softvq:TAU``):

- ``base``: plain maximum likelihood on the grids;
- ``corrupt:P``: each context code (what a cell is predicted from, never its target) is
  replaced by a random code with probability P, the sequence models' "word dropout";
- ``softvq:TAU``: each epoch every cell's training code is drawn from
  softmax(-||z_e - e_k||^2 / TAU) over the codebook instead of the nearest code (TAU = 0.01
  changes about 14 % of MNIST's codes), new grids of nearly the same images.

    PYTHONPATH=. python scripts/prior_probe.py VARIANT [--n 10000] [--epochs 8]
        [--layers 4] [--lr 0.002] [--checkpoint checkpoints/mnist-vqvae] [--threads 2]

Not a test and not part of a model: the numbers it gives are quoted in the README's prior
section, measured on two threads (about 5 minutes per run for the defaults).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from latentlab.checkpoint import load_checkpoint
from latentlab.data import train_val_split
from latentlab.fit_prior import _cosine, prior_optimizer
from models.code_prior import CELLS, TransformerCodePrior, sample_categorical

N_VAL = 5000


def squared_distances(model, x: torch.Tensor) -> torch.Tensor:
    """Each cell's squared distance to every code: images (N, 1, 28, 28) -> (N, 49, K)."""
    with torch.no_grad():
        z = torch.cat([model.encode(b) for b in x.split(1000)])             # (N, D, 7, 7)
        z = z.permute(0, 2, 3, 1).reshape(len(x), CELLS, -1)                # (N, 49, D)
        book = model.codebook.unsqueeze(0).expand(len(x), -1, -1)           # (N, K, D)
        return torch.cdist(z, book) ** 2                                     # (N, 49, K)


def nll_bits(prior: TransformerCodePrior, grids: torch.Tensor) -> float:
    """Mean -log2 p(c) per code over grids (N, 7, 7), in eval mode."""
    prior.eval()
    with torch.no_grad():
        nats = sum(-prior.log_prob(b).sum().item() for b in grids.split(500))
    prior.train()
    return nats / (len(grids) * CELLS) / math.log(2)


def soft_codes(d2: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Codes drawn from softmax(-d2 / tau) by Gumbel-max: (N, 49, K) -> (N, 7, 7)."""
    return sample_categorical(-d2 / tau, gen).view(len(d2), 7, 7)


def corrupted_context(seq: torch.Tensor, p: float, k: int, gen: torch.Generator) -> torch.Tensor:
    """Grids (B, 49) whose cells 0..47, the context of cells 1..48, are each replaced by a
    random code with probability p (cell 48 is never anyone's context)."""
    flip = torch.rand(seq.shape, generator=gen) < p                          # (B, 49)
    flip[:, 0] = False  # input position 0 is the start token, never replaced
    fresh = torch.randint(k, seq.shape, generator=gen)                       # (B, 49)
    ctx = seq.clone()
    ctx[:, :-1] = torch.where(flip[:, 1:], fresh[:, 1:], seq[:, :-1])
    return ctx


def probe(variant: str, n: int, epochs: int, layers: int, lr: float, checkpoint: str) -> dict:
    kind, _, value = variant.partition(":")
    if kind not in ("base", "corrupt", "softvq") or (kind != "base") != bool(value):
        raise SystemExit(f"variant must be base, corrupt:P or softvq:TAU, not {variant!r}")
    p = float(value or 0)
    model, _ = load_checkpoint(checkpoint)
    (x, _), (x_val, _) = train_val_split(model.config.dataset, 10000)
    x = x[:n]
    grids, val_grids = model.encode_dataset(x), model.encode_dataset(x_val[:N_VAL])
    d2 = squared_distances(model, x) if kind == "softvq" else None
    k = model.config.num_codes
    torch.manual_seed(0)
    prior = TransformerCodePrior(k, 128, layers, 4, 0.0).train()
    gen = torch.Generator().manual_seed(1)
    opt = prior_optimizer(prior, lr, 0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(epochs * math.ceil(n / 128)))
    start, val = time.time(), float("nan")
    for epoch in range(1, epochs + 1):
        targets = soft_codes(d2, p, gen) if kind == "softvq" else grids       # (N, 7, 7)
        changed = (targets != grids).float().mean().item()
        for idx in torch.randperm(n, generator=gen).split(128):
            seq = targets[idx].flatten(1)                                    # (B, 49)
            ctx = corrupted_context(seq, p, k, gen) if kind == "corrupt" else seq
            logits = prior.logits(ctx.view(-1, 7, 7))                        # (B, 49, K)
            loss = F.cross_entropy(logits.reshape(-1, k), seq.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val = nll_bits(prior, val_grids)
        print(f"{variant} epoch {epoch}: codes changed {changed:.3f}, val {val:.4f} bits "
              f"({time.time() - start:.0f} s)", flush=True)
    train = nll_bits(prior, grids)
    return {"variant": variant, "lr": lr, "n": n, "epochs": epochs, "layers": layers,
            "train_bits": round(train, 4), "val_bits": round(val, 4), "gap": round(val - train, 4)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variant")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--checkpoint", default="checkpoints/mnist-vqvae")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(probe(args.variant, args.n, args.epochs, args.layers, args.lr, args.checkpoint))


if __name__ == "__main__":
    main()
