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
        d = min(decay, step / (9 + step))  # the warm-up: (1 + t) / (10 + t) after t updates
        expected = d * expected + (1 - d) * step
    assert avg.state_dict(m)["weight"].item() == pytest.approx(expected, rel=1e-5)
    assert m.weight.item() == 29.0  # the live weights are untouched


def test_the_warm_up_forgets_the_initial_weights_within_a_short_fit():
    m, steps = _scalar_model(-100.0), 2000  # a random init far from where the fit goes
    avg = WeightAverage(m, 0.999)
    m.weight.fill_(1.0)
    for _ in range(steps):
        avg.update(m)
    # a constant 0.999 would still hold 0.999^2000 = 13.5 % of the init: -12.5 here
    assert abs(avg.state_dict(m)["weight"].item() - 1.0) < 0.2
    assert avg.current_decay() < 0.999  # (1 + t) / (10 + t) reaches 0.999 after ~9,000 updates


def test_state_round_trips_the_count_and_the_averages():
    m = _scalar_model(0.0)
    a, b = WeightAverage(m, 0.9), WeightAverage(m, 0.9)
    for v in (1.0, 2.0, 3.0):
        m.weight.fill_(v)
        a.update(m)
    b.load_state(a.state())
    m.weight.fill_(5.0)
    a.update(m)
    b.update(m)
    assert b.updates == a.updates == 4
    assert b.state_dict(m)["weight"].item() == a.state_dict(m)["weight"].item()


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
    assert state["stat"].item() == 7.0
    assert state["weight"].item() == pytest.approx(0.1 * 1.0 + 0.9 * 3.0)  # d_0 = 0.1


def test_the_swap_puts_the_live_weights_back_even_after_an_error():
    m = _scalar_model(0.0)
    avg = WeightAverage(m, 0.5)
    m.weight.fill_(4.0)
    avg.update(m)
    with pytest.raises(RuntimeError), avg.swapped_into(m):
        assert m.weight.item() == pytest.approx(3.6)  # d_0 = 0.1: 0.1 * 0 + 0.9 * 4
        raise RuntimeError("validation failed")
    assert m.weight.item() == 4.0


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, float("nan")])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_scalar_model(0.0), decay)
