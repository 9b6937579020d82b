"""Polyak (EMA) weight averaging: the formula, the swap, and what it leaves alone."""

import pytest
import torch
from torch import nn

from latentlab.averaging import WeightAverage


def _scalar_model(value: float) -> nn.Module:
    m = nn.Linear(1, 1, bias=False).requires_grad_(False)
    m.weight.fill_(value)
    m.register_buffer("stat", torch.tensor(value))
    return m


def test_the_average_follows_the_ema_recursion():
    m, decay = _scalar_model(0.0), 0.9
    avg = WeightAverage(m, decay)
    expected = 0.0
    for step in range(1, 30):
        m.weight.fill_(float(step))
        avg.update(m)
        expected = decay * expected + (1 - decay) * step
    assert avg.state_dict(m)["weight"].item() == pytest.approx(expected, rel=1e-5)
    assert m.weight.item() == 29.0  # the live weights are untouched


def test_a_constant_model_averages_to_itself():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    avg = WeightAverage(m, 0.99)
    for _ in range(5):
        avg.update(m)
    for k, v in m.state_dict().items():
        assert torch.allclose(avg.state_dict(m)[k], v), k


def test_buffers_stay_the_live_models():
    m = _scalar_model(1.0)
    avg = WeightAverage(m, 0.5)
    m.stat.fill_(7.0)
    m.weight.fill_(3.0)
    avg.update(m)
    state = avg.state_dict(m)
    assert state["stat"].item() == 7.0 and state["weight"].item() == 2.0


def test_the_swap_puts_the_live_weights_back_even_after_an_error():
    m = _scalar_model(0.0)
    avg = WeightAverage(m, 0.5)
    m.weight.fill_(4.0)
    avg.update(m)
    with pytest.raises(RuntimeError), avg.swapped_into(m):
        assert m.weight.item() == 2.0
        raise RuntimeError("validation failed")
    assert m.weight.item() == 4.0


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, float("nan")])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_scalar_model(0.0), decay)
