"""scripts/prior_probe.py: the proxy's two regularisers change what they claim to and nothing
else (the context, never a target; the codes near a boundary, never far ones)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from models.code_prior import TransformerCodePrior

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prior_probe.py"
spec = importlib.util.spec_from_file_location("prior_probe", SCRIPT)
prior_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prior_probe)


def _seq(b: int = 64) -> torch.Tensor:
    return torch.randint(16, (b, 49), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_corruption_touches_the_context_cells_at_about_its_rate(p: float):
    seq = _seq(400)
    ctx = prior_probe.corrupted_context(seq, p, 16, torch.Generator().manual_seed(1))
    assert torch.equal(ctx[:, -1], seq[:, -1])  # the last cell is no one's context
    changed = (ctx[:, :-1] != seq[:, :-1]).float().mean().item()
    # a replacement draws the old code again 1 time in 16
    assert changed == pytest.approx(p * 15 / 16, abs=0.02)


def test_corrupted_context_predicts_the_clean_targets():
    """Cell i's logits depend on the corrupted cells before it only: corrupting cell j moves
    the logits of cells after j and leaves cells up to j as they were."""
    torch.manual_seed(0)
    prior = TransformerCodePrior(16, dim=32, layers=1, heads=2).eval()
    seq = _seq(2)
    ctx = seq.clone()
    ctx[:, 20] = (seq[:, 20] + 1) % 16
    a, b = prior.logits(seq.view(-1, 7, 7)), prior.logits(ctx.view(-1, 7, 7))
    assert torch.allclose(a[:, :21], b[:, :21])
    assert not torch.allclose(a[:, 21:], b[:, 21:])


def test_soft_codes_are_the_nearest_at_a_small_temperature_and_spread_at_a_large_one():
    gen = torch.Generator().manual_seed(0)
    d2 = 1 + torch.rand(50, 49, 16, generator=gen)                          # (N, 49, K)
    nearest = torch.randint(16, (50, 49), generator=gen)
    d2.scatter_(-1, nearest.unsqueeze(-1), 0.0)  # each cell's nearest code by a margin of 1
    nearest = nearest.view(50, 7, 7)
    cold = prior_probe.soft_codes(d2, 0.01, torch.Generator().manual_seed(1))
    hot = prior_probe.soft_codes(d2, 10.0, torch.Generator().manual_seed(1))
    assert torch.equal(cold, nearest)
    assert (hot != nearest).float().mean() > 0.8  # near uniform over 16 codes: 15/16 differ


def test_a_bad_variant_is_refused_before_anything_loads():
    with pytest.raises(SystemExit, match="variant must be"):
        prior_probe.probe("dropout:0.1", 10, 1, 1, 1e-3, "no-such-folder")
    with pytest.raises(SystemExit, match="variant must be"):
        prior_probe.probe("corrupt", 10, 1, 1, 1e-3, "no-such-folder")
