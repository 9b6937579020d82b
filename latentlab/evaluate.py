"""Evaluation: ``python -m latentlab.evaluate checkpoints/NAME`` fills ``metrics.json``."""

from __future__ import annotations

import torch
from torch import nn

from latentlab import data


@torch.no_grad()
def quick_metrics(model: nn.Module, dataset: str, kind: str, batch_size: int = 1000) -> dict:
    """Cheap test-set numbers written right after training (the full CLI adds the rest)."""
    device = next(model.parameters()).device
    if kind == "vae":
        x = data.binarized_test_set(dataset)
        elbo = torch.cat([model(xb.to(device)).elbo.cpu() for xb in x.split(batch_size)])
        return {"test_elbo": round(elbo.mean().item(), 3)}
    if kind == "classifier":
        x, y = data.load_split(dataset, train=False)
        pred = torch.cat([model(xb.to(device)).argmax(-1).cpu() for xb in x.split(batch_size)])
        return {"test_accuracy": round((pred == y).float().mean().item(), 5)}
    quick = getattr(model, "quick_metrics", None)
    return quick(dataset) if quick else {}
