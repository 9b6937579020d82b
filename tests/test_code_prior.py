"""Code priors: causality and cached decoding of the transformer, the distribution interface
(log_prob = sum of per-cell terms, sample shapes/range), and region regeneration that keeps
the kept cells and really conditions on them (including cells after the masked ones)."""

import math

import pytest
import torch
import torch.nn.functional as F

from models.code_prior import (
    CELLS,
    CodePrior,
    TransformerCodePrior,
    UniformCodePrior,
    sample_categorical,
)

K = 16


def tiny_prior(k: int = K) -> TransformerCodePrior:
    return TransformerCodePrior(num_codes=k, dim=16, layers=2, heads=2).eval()


class CopyPreviousPrior(TransformerCodePrior):
    """p(c_0) uniform, p(c_i | c_<i) puts ~99.9% on c_{i-1}: an exactly known AR model."""

    def _run(self, tokens, start=0, cache=None):
        onehot = F.one_hot(tokens, self.num_codes + 1)[..., : self.num_codes]  # start -> zeros
        return 12.0 * onehot.float(), []


def random_grid(b: int, k: int = K) -> torch.Tensor:
    return torch.randint(k, (b, 7, 7))


PRIORS = [pytest.param(tiny_prior, id="transformer"), pytest.param(lambda: UniformCodePrior(K), id="uniform")]


# ----------------------------------------------------------------------------- transformer

def test_prediction_for_a_cell_ignores_that_cell_and_later_cells():
    prior = tiny_prior()
    grid = random_grid(2)
    base = prior.logits(grid)                                                # (2, 49, K)
    for j in (0, 17, 48):
        changed = grid.clone().flatten(1)
        changed[:, j] = (changed[:, j] + 1) % K
        logits = prior.logits(changed.view(2, 7, 7))
        torch.testing.assert_close(logits[:, : j + 1], base[:, : j + 1])  # cells <= j: same
        if j < CELLS - 1:
            assert not torch.allclose(logits[:, j + 1:], base[:, j + 1:])  # later ones listen


def test_cached_decoding_matches_the_full_forward():
    prior = tiny_prior()
    seq = random_grid(3).flatten(1)
    tokens = prior._inputs(seq)                                              # (3, 49)
    full, _ = prior._run(tokens)
    step, cache, parts = 0, None, []
    for width in (1, 1, 10, 1, 36):  # single tokens and blocks after a cached prefix
        logits, cache = prior._run(tokens[:, step: step + width], start=step, cache=cache)
        parts.append(logits)
        step += width
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def uncached_sample(prior: TransformerCodePrior, n: int, t: float, gen: torch.Generator):
    """The reference sampler: re-run the whole prefix for every cell (49 full passes)."""
    seq = torch.zeros(n, CELLS, dtype=torch.long)
    for i in range(CELLS):
        logits, _ = prior._run(prior._inputs(seq)[:, : i + 1])              # (n, i+1, K)
        seq[:, i] = sample_categorical(logits[:, i] / t, gen)
    return seq.view(n, 7, 7)


@pytest.mark.parametrize("seed, n, t", [(0, 1, 1.0), (1, 5, 0.7), (2, 3, 2.0)])
def test_kv_cached_sampler_equals_the_uncached_one(seed, n, t):
    prior = tiny_prior()
    cached = prior.sample(n, t, torch.Generator().manual_seed(seed))
    assert torch.equal(cached, uncached_sample(prior, n, t, torch.Generator().manual_seed(seed)))


def test_batched_sampler_gives_each_request_what_it_gets_alone():
    prior = tiny_prior()
    temps, seeds = [1.0, 0.5, 1.0, 1.7], [3, 3, 8, 0]
    both = prior.sample_each(temps, [torch.Generator().manual_seed(s) for s in seeds])
    alone = [prior.sample(1, t, torch.Generator().manual_seed(s))[0] for t, s in zip(temps, seeds)]
    assert torch.equal(both, torch.stack(alone))
    assert not torch.equal(both[0], both[2])                                # seeds matter
    with pytest.raises(ValueError, match="temperature"):
        prior.sample_each([1.0, 0.0], [None, None])
    with pytest.raises(ValueError, match="generators"):
        prior.sample_each([1.0], [None, None])


def test_log_prob_gradient_reaches_every_prior_parameter():
    prior = tiny_prior().train()
    (-prior.log_prob(random_grid(4)).mean()).backward()
    for name, p in prior.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_grids_and_options_fail_with_a_message():
    prior = tiny_prior()
    with pytest.raises(ValueError, match="shape"):
        prior.log_prob(torch.zeros(2, 6, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="lie in"):
        prior.log_prob(torch.full((1, 7, 7), K))
    with pytest.raises(ValueError, match="temperature"):
        prior.sample(1, temperature=0.0)
    with pytest.raises(ValueError, match="divisible"):
        TransformerCodePrior(K, dim=10, heads=4)


def test_input_noise_changes_the_context_in_training_mode_only():
    torch.manual_seed(0)
    noisy = TransformerCodePrior(K, dim=16, layers=2, heads=2, input_noise=0.5)
    clean = TransformerCodePrior(K, dim=16, layers=2, heads=2)
    clean.load_state_dict(noisy.state_dict())
    grid = random_grid(8)
    noisy.eval(), clean.eval()
    assert torch.equal(noisy.log_prob(grid), clean.log_prob(grid))       # evaluation is clean
    noisy.train(), clean.train()
    first, second = noisy.logits(grid), noisy.logits(grid)
    reference = clean.logits(grid)
    assert torch.allclose(first[:, 0], reference[:, 0])   # cell 0 sees only the start token
    assert not torch.allclose(first, reference) and not torch.allclose(first, second)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="prior_input_noise"):
            TransformerCodePrior(K, dim=16, layers=1, heads=2, input_noise=bad)


# ----------------------------------------------------------------------------- interface

@pytest.mark.parametrize("make", PRIORS)
def test_log_prob_is_finite_and_the_sum_of_per_cell_terms(make):
    prior = make()
    grid = random_grid(5)
    per_cell = prior.log_prob_per_cell(grid)
    assert per_cell.shape == (5, 7, 7) and (per_cell <= 0).all()
    lp = prior.log_prob(grid)
    assert lp.shape == (5,) and torch.isfinite(lp).all()
    torch.testing.assert_close(lp, per_cell.sum((1, 2)))


@pytest.mark.parametrize("make", PRIORS)
def test_both_priors_are_code_prior_distributions(make):
    prior = make()
    assert isinstance(prior, CodePrior)
    grid = prior.sample(4, 1.0, torch.Generator().manual_seed(0))
    lp = prior.log_prob(grid)
    assert lp.shape == (4,)
    torch.testing.assert_close(prior.nll_per_code(grid), -lp.mean() / CELLS)


def test_transformer_log_prob_is_normalized_over_one_cell():
    prior = tiny_prior(k=4)
    grid = random_grid(1, 4).repeat(4, 1, 1)
    grid[:, 6, 6] = torch.arange(4)  # all values of the last cell, the rest fixed
    assert torch.logsumexp(prior.log_prob_per_cell(grid)[:, 6, 6], 0).abs() < 1e-5


def test_uniform_log_prob_is_minus_49_log_k():
    lp = UniformCodePrior(K).log_prob(random_grid(3))
    torch.testing.assert_close(lp, torch.full((3,), -49 * math.log(K)))


@pytest.mark.parametrize("make", PRIORS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_shapes_range_and_seeding(make, temperature):
    prior = make()
    a = prior.sample(6, temperature, torch.Generator().manual_seed(3))
    b = prior.sample(6, temperature, torch.Generator().manual_seed(3))
    assert a.shape == (6, 7, 7) and a.dtype == torch.long
    assert a.min() >= 0 and a.max() < K
    assert torch.equal(a, b)


def test_low_temperature_sampling_follows_the_model():
    samples = CopyPreviousPrior(K).sample(8, temperature=0.5)
    assert (samples.flatten(1) == samples.flatten(1)[:, :1]).all()      # constant grids


# ----------------------------------------------------------------------------- regenerate

@pytest.mark.parametrize("make", PRIORS)
def test_regenerate_leaves_kept_cells_unchanged(make):
    prior = make()
    grid = random_grid(4)
    mask = torch.rand(4, 7, 7) < 0.3
    out = prior.regenerate(grid, mask, generator=torch.Generator().manual_seed(0))
    assert out.shape == grid.shape and out.dtype == torch.long
    assert torch.equal(out[~mask], grid[~mask])
    assert out.min() >= 0 and out.max() < K
    assert torch.equal(prior.regenerate(grid, torch.zeros_like(mask)), grid)
    with pytest.raises(ValueError, match="mask"):
        prior.regenerate(grid, mask.long())


def test_regenerate_conditions_on_cells_after_the_mask():
    """Only the first cell is masked; the ancestral pass alone would draw it uniformly, the
    Gibbs step sees that every later cell equals v and must pick v."""
    prior = CopyPreviousPrior(K)
    values = torch.arange(8) % K
    grid = values.view(8, 1, 1).expand(8, 7, 7).clone()                     # constant grids
    mask = torch.zeros(8, 7, 7, dtype=torch.bool)
    mask[:, 0, 0] = True
    grid[:, 0, 0] = (values + 5) % K                                        # a wrong value
    out = prior.regenerate(grid, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0, 0], values)


@pytest.mark.parametrize("top_k", [0, 3])
def test_regenerate_fills_a_masked_region_from_its_surroundings(top_k):
    prior = CopyPreviousPrior(K)
    grid = torch.full((3, 7, 7), 7)
    mask = torch.zeros(3, 7, 7, dtype=torch.bool)
    mask[:, 2:5, 2:5] = True
    grid[mask] = torch.randint(K, (int(mask.sum()),))
    out = prior.regenerate(grid, mask, top_k=top_k, generator=torch.Generator().manual_seed(1))
    assert (out == 7).all()


def test_regenerate_suffix_mask_is_an_exact_conditional_draw():
    prior = CopyPreviousPrior(K)
    grid = torch.randint(K, (4, 7, 7))
    mask = torch.zeros(4, 7, 7, dtype=torch.bool)
    mask[:, 4:] = True                                                       # bottom three rows
    out = prior.regenerate(grid, mask, generator=torch.Generator().manual_seed(2))
    assert (out[:, 4:] == grid[:, 3, 6].view(4, 1, 1)).all()            # copies the last kept


def test_gibbs_update_draws_from_the_exact_full_conditional():
    """One masked middle cell: after one Gibbs update its distribution must be
    p(c_i | c_-i) ∝ exp(log p(grid with c_i = k)), computed here by brute force."""
    torch.manual_seed(0)
    k = 4
    prior = TransformerCodePrior(num_codes=k, dim=16, layers=1, heads=2).eval()
    with torch.no_grad():
        for p in prior.parameters():
            p.mul_(8.0)  # sharper conditionals, so the test is not about a flat histogram
    grid = random_grid(1, k)
    cell = (2, 3)
    cand = grid.repeat(k, 1, 1)
    cand[:, cell[0], cell[1]] = torch.arange(k)
    exact = torch.softmax(prior.log_prob(cand), 0)                           # (k,)
    n = 4000
    mask = torch.zeros(n, 7, 7, dtype=torch.bool)
    mask[:, cell[0], cell[1]] = True
    out = prior.regenerate(grid.repeat(n, 1, 1), mask, sweeps=1,
                           generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(out[:, cell[0], cell[1]], minlength=k).float() / n
    assert (freq - exact).abs().max() < 0.03, (freq, exact)
