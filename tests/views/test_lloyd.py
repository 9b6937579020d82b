"""Lloyd-Max panel: closed forms (uniform, Gaussian L=2), monotone distortion, exact steps."""

import json
import math

import numpy as np
import pytest

from latentlab.errors import InputError
from latentlab.views import lloyd as lv


def run_until_converged(kind, state, values=None):
    for _ in range(10):
        out = lv.lloyd_run(kind, state, values)
        if "not yet converged" not in out.summary:
            return out
        state = out.state
    raise AssertionError("Lloyd-Max did not converge")


@pytest.mark.parametrize("n_levels", [2, 3, 5, 8, 16])
def test_uniform_converges_to_the_closed_form(n_levels):
    out = run_until_converged("uniform", lv.lloyd_init("uniform", n_levels, seed=1).state)
    levels, thresholds, history = out.state
    expected = (2 * np.arange(1, n_levels + 1) - 1) / (2 * n_levels)
    np.testing.assert_allclose(levels, expected, atol=1e-6)
    np.testing.assert_allclose(thresholds, np.arange(1, n_levels) / n_levels, atol=1e-6)
    assert history[-1] == pytest.approx(1 / (12 * n_levels**2), rel=1e-5)
    assert lv.reference("uniform", n_levels) == pytest.approx(1 / (12 * n_levels**2))


@pytest.mark.parametrize("seed", [0, 3])
def test_gaussian_two_levels_converge_to_the_closed_form(seed):
    out = run_until_converged("gaussian", lv.lloyd_init("gaussian", 2, seed=seed).state)
    levels, thresholds, history = out.state
    np.testing.assert_allclose(levels, [-math.sqrt(2 / math.pi), math.sqrt(2 / math.pi)], atol=1e-6)
    assert thresholds[0] == pytest.approx(0.0, abs=1e-6)
    assert history[-1] == pytest.approx(1 - 2 / math.pi, abs=1e-6)


def test_gaussian_cell_moments_match_closed_forms():
    m0, m1, m2 = lv.make_density("gaussian").cell_moments(np.array([0.0]))
    np.testing.assert_allclose(m0, [0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(m1, [-1 / math.sqrt(2 * math.pi), 1 / math.sqrt(2 * math.pi)], atol=1e-7)
    np.testing.assert_allclose(m2, [0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "mixture", "uniform"])
def test_distortion_never_increases_step_by_step(kind):
    state = lv.lloyd_init(kind, 5, seed=2).state
    for action in ["centroid", "nn"] * 10:
        state = lv.lloyd_step(kind, state, action).state
    history = state[2]
    assert len(history) == 21
    assert np.all(np.diff(history) <= 1e-12)
    run = lv.lloyd_run(kind, state).state[2]
    assert np.all(np.diff(run) <= 1e-12) and run[-1] <= history[-1]


def test_nn_step_sets_midpoints_and_centroid_step_conditional_means():
    state = lv.lloyd_init("uniform", 3, seed=0).state
    state = lv.lloyd_step("uniform", state, "centroid").state        # levels move, thresholds stay
    moved = np.array(state[0])
    state = lv.lloyd_step("uniform", state, "nn").state
    np.testing.assert_allclose(state[1], (moved[:-1] + moved[1:]) / 2)
    b = np.array(state[1])
    state = lv.lloyd_step("uniform", state, "centroid").state
    cells = np.concatenate([[0.0], b, [1.0]])
    np.testing.assert_allclose(state[0], (cells[:-1] + cells[1:]) / 2, atol=1e-12)  # uniform: cell middles


def test_values_are_quantized_as_their_empirical_measure():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-2, 0.3, 300), rng.normal(1, 0.5, 200)])
    out = run_until_converged("vq-vae", lv.lloyd_init("vq-vae", 4, seed=0, values=values).state, values)
    levels, thresholds, history = (np.array(v) for v in out.state)
    cell = np.searchsorted(thresholds, values)                        # brute force: cell of each value
    means = np.array([values[cell == j].mean() for j in range(4)])
    np.testing.assert_allclose(levels, means, atol=1e-9)              # 1-D k-means fixed point
    brute = np.mean(np.min((values[:, None] - levels[None]) ** 2, axis=1))
    assert history[-1] == pytest.approx(brute, rel=1e-9)


def test_state_is_plain_json_and_the_figure_is_lean():
    out = lv.lloyd_init("mixture", 6, seed=0)
    json.dumps(out.state)
    assert [len(v) for v in out.state] == [6, 5, 1]
    assert len(out.figure.data) == 4
    assert len(out.figure.to_json()) < 60_000


@pytest.mark.parametrize("args", [("gaussian", 1, 0), ("gaussian", 17, 0), ("laplace", 4, 0),
                                  ("gaussian", 4, -1), ("gaussian", 4.5, 0), ("vq-vae", 4, 0)])
def test_bad_init_inputs_raise_input_error(args):
    with pytest.raises(InputError):
        lv.lloyd_init(*args)


@pytest.mark.parametrize("values", [np.arange(10.0), np.full(100, 2.0), np.r_[np.arange(99.0), np.nan]])
def test_bad_values_raise_input_error(values):
    with pytest.raises(InputError):
        lv.lloyd_init("vq-vae", 4, 0, values)


@pytest.mark.parametrize("state", [None, [], [[0.1], [], []], [[0.1, 0.2], [0.1, 0.2], []],
                                   [[0.1, float("nan")], [0.1], []], "abc"])
def test_bad_state_raises_input_error(state):
    with pytest.raises(InputError):
        lv.lloyd_step("gaussian", state, "nn")
    with pytest.raises(InputError):
        lv.lloyd_step("gaussian", lv.lloyd_init("gaussian", 3).state, "jump")
