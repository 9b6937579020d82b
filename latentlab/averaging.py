"""Polyak averaging: an exponential moving average (EMA) of a model's parameters.

The averaged weights sit near the centre of the region the last few thousand SGD steps
wander through, which usually gives a lower validation loss than the last iterate. Only
parameters are averaged: buffers (the flow's masks, a VQ codebook kept by its own EMA) stay
the live model's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """An EMA of ``model``'s parameters: ``avg <- d_t * avg + (1 - d_t) * param``.

    ``d_t = min(decay, (1 + t) / (10 + t))`` after ``t`` updates: a short warm-up, so that
    the random initial weights are forgotten within a few steps. With a constant 0.999 a
    fit of 2,346 steps still kept 0.999^2346 = 10 % of them, and its average was far worse
    than its last iterate (a VQ-VAE code prior: 3.39 against 3.23 bits per code).

    >>> m = nn.Linear(1, 1, bias=False).requires_grad_(False)
    >>> _ = m.weight.fill_(0.0)
    >>> avg = WeightAverage(m, decay=0.5)
    >>> _ = m.weight.fill_(4.0); avg.update(m)     # d_0 = min(0.5, 1 / 10) = 0.1
    >>> round(avg.state_dict(m)["weight"].item(), 4), m.weight.item()
    (3.6, 4.0)
    >>> with avg.swapped_into(m):
    ...     round(m.weight.item(), 4)
    3.6
    >>> m.weight.item()
    4.0
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1 - d)
        self.updates += 1

    def state(self) -> dict:
        """What resuming needs: copies of the averages and the update count."""
        return {"shadow": {k: v.detach().clone() for k, v in self.shadow.items()},
                "updates": self.updates}

    def load_state(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.shadow = {k: v.to(device) for k, v in state["shadow"].items()}
        self.updates = int(state["updates"])

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``model``'s state dict (CPU copies) with the averaged parameters in place."""
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state.update({k: v.detach().cpu().clone() for k, v in self.shadow.items()})
        return state

    @contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Run a block (validation) on the averaged weights; the live ones come back after."""
        params = dict(model.named_parameters())
        live = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.shadow[n])
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(live[n])


def kept_weights(model: nn.Module, average: WeightAverage | None) -> dict[str, torch.Tensor]:
    """CPU copies of the weights a run keeps: the average when there is one, else the live ones."""
    if average is not None:
        return average.state_dict(model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
