"""The transformer blocks the code priors share (``models/blocks.py``)."""

import math

import torch

from models.blocks import attention
from models.code_prior import TransformerCodePrior


def test_attention_under_cpu_bf16_autocast_runs_in_fp32_and_passes_gradients():
    """The CPU's bf16 attention backward is slow, so under autocast attention runs in fp32;
    the rest of a block still computes in bf16 and every weight gets a gradient."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 49, 8).unbind(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True)
    assert out.dtype == torch.float32
    exact = attention(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(),
                      is_causal=True)
    assert torch.allclose(out, exact, atol=1e-6)
    prior = TransformerCodePrior(num_codes=16, dim=32, layers=2, heads=2).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = prior.nll_per_code(torch.randint(16, (4, 7, 7)))
    nll.backward()
    assert nll.dtype == torch.float32 and math.isfinite(nll.item())
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in prior.parameters())
