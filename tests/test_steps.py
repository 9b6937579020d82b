"""Each model kind's training step: one scalar loss that trains the model, scalar logs."""

import pytest
import torch

from latentlab.steps import STEPS, VQ_KINDS
from models import MODEL_KINDS

TINY = {"vae": {"latent_dim": 2, "channels": 4, "hidden": 16},
        "classifier": {},
        "vqvae": {"num_codes": 16, "code_dim": 8, "channels": 8, "prior_dim": 16,
                  "prior_layers": 1, "prior_heads": 2},
        "vqvae2": {}}


def test_every_model_kind_has_a_step():
    assert set(STEPS) == set(MODEL_KINDS) and set(VQ_KINDS) <= set(STEPS)


@pytest.mark.parametrize("kind", sorted(STEPS))
def test_a_step_gives_a_finite_scalar_loss_with_gradients_and_scalar_logs(kind):
    torch.manual_seed(0)
    config_cls, model_cls = MODEL_KINDS[kind]
    model = model_cls(config_cls(**TINY[kind])).train()
    x = torch.rand(4, 1, 28, 28)
    x = x.round() if kind == "vae" else x                  # a Bernoulli decoder sees bits
    loss, logs = STEPS[kind](model, x, torch.arange(4), None)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert logs and all(v.dim() == 0 and torch.isfinite(v) for v in logs.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
