"""Two-level VQ-VAE: shapes, gradients, the prior's factorisation and its sampler."""

import math

import pytest
import torch

from models.vqvae2 import (
    TOP_CELLS,
    VQVAE2,
    Codes,
    HierarchicalCodePrior,
    UniformLevelsPrior,
    VQVAE2Config,
)

TINY = {"num_codes": 16, "top_codes": 4, "code_dim": 8, "channels": 4, "prior_dim": 16,
        "prior_layers": 1, "prior_heads": 2, "prior_dropout": 0.0}


@pytest.fixture
def model() -> VQVAE2:
    torch.manual_seed(0)
    return VQVAE2(VQVAE2Config(**TINY))


def test_forward_shapes_and_gradients(model):
    x = torch.rand(4, 1, 28, 28)
    out = model.train()(x)
    assert out.x_hat.shape == x.shape and out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.codes.top.shape == (4, 2, 2) and out.codes.bottom.shape == (4, 7, 7)
    assert out.perplexity.shape == (2,)
    out.loss.backward()
    for part in (model.encoder, model.top_encoder, model.top_decoder, model.bottom_proj,
                 model.decoder):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
    assert all(p.grad is None for p in model.code_prior.parameters())   # fitted later


def test_encode_decode_agree_with_forward_in_eval_mode(model):
    model.train()(torch.rand(8, 1, 28, 28))                             # k-means initialises
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    codes = model.encode_to_indices(x)
    out = model(x)
    assert torch.equal(codes.top, out.codes.top) and torch.equal(codes.bottom, out.codes.bottom)
    assert torch.allclose(model.decode_indices(codes), out.x_hat, atol=1e-5)


def test_a_few_steps_lower_the_loss(model):
    torch.manual_seed(1)
    x = torch.zeros(16, 1, 28, 28)                        # bars: learnable, unlike noise
    for i in range(16):
        r, c = divmod(i, 4)
        x[i, 0, 4 + 4 * r: 12 + 4 * r, 2 + 6 * c: 6 + 6 * c] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        out = model.train()(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.recon.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_prior_is_causal_across_and_within_levels():
    torch.manual_seed(0)
    prior = HierarchicalCodePrior(16, 4, dim=16, layers=2, heads=2).eval()
    codes = prior.sample(3, generator=torch.Generator().manual_seed(0))
    other = Codes(codes.top, torch.randint(16, (3, 7, 7)))
    a, b = prior.log_prob_per_level(codes), prior.log_prob_per_level(other)
    assert torch.allclose(a.top, b.top)                   # the top never looks at the bottom
    assert not torch.allclose(a.bottom, b.bottom)
    assert torch.allclose(prior.log_prob(codes), a.top + a.bottom)
    assert prior.nll_per_code(codes).item() == pytest.approx(
        -(a.top + a.bottom).mean().item() / (TOP_CELLS + 49), rel=1e-5)


def test_sampling_follows_the_model_and_keeps_a_given_top():
    torch.manual_seed(0)
    prior = HierarchicalCodePrior(16, 4, dim=16, layers=1, heads=2).eval()
    with torch.no_grad():
        prior.head_top.weight.mul_(20)                    # a clearly non-uniform first cell
    gen = torch.Generator().manual_seed(3)
    draws = prior.sample(4000, generator=gen).top[:, 0, 0]
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    # p(c_top[0]) read off the network: every top grid starting with code k has that term
    first = torch.stack([prior.log_prob_per_level(Codes(
        torch.full((1, 2, 2), k), torch.zeros(1, 7, 7, dtype=torch.long))).top for k in range(4)])
    h, _ = prior._run(torch.full((1, 1), 4 + 16))
    p0 = torch.softmax(prior.head_top(h[:, -1]), -1)[0]
    assert torch.allclose(freq, p0, atol=4 * math.sqrt(0.25 / 4000) + 0.005)
    assert first.shape == (4, 1)
    top = torch.tensor([[[1, 2], [3, 0]]])
    again = prior.sample_bottom(top.expand(5, 2, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.top, top.expand(5, 2, 2)) and again.bottom.shape == (5, 7, 7)
    assert int(again.bottom.max()) < 16
    same = prior.sample_bottom(top.expand(5, 2, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.bottom, again.bottom)          # seeded


def test_bad_grids_and_configs_are_refused():
    prior = HierarchicalCodePrior(16, 4, dim=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="top codes"):
        prior.log_prob(Codes(torch.full((1, 2, 2), 4), torch.zeros(1, 7, 7, dtype=torch.long)))
    with pytest.raises(ValueError, match="grids"):
        prior.log_prob(Codes(torch.zeros(1, 3, 3, dtype=torch.long),
                             torch.zeros(1, 7, 7, dtype=torch.long)))
    with pytest.raises(ValueError, match="divisible"):
        VQVAE2Config(prior_dim=10, prior_heads=4)


def test_codes_helpers_select_move_and_join_both_levels():
    codes = Codes(torch.arange(12).view(3, 2, 2), torch.arange(147).view(3, 7, 7))
    picked = codes.select(torch.tensor([2, 0]))
    assert picked.count == 2 and torch.equal(picked.top[0], codes.top[2])
    assert torch.equal(picked.bottom[1], codes.bottom[0])
    joined = Codes.cat([codes, picked])
    assert joined.count == 5 and torch.equal(joined.bottom[3], codes.bottom[2])


def test_uniform_prior_scores_every_pair_alike_and_draws_all_codes():
    prior = UniformLevelsPrior(num_codes=16, top_codes=4)
    codes = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    lp = prior.log_prob_per_level(codes)
    assert torch.allclose(lp.top, torch.full((2000,), -4 * math.log(4)))
    assert torch.allclose(lp.bottom, torch.full((2000,), -49 * math.log(16)))
    assert set(codes.top.unique().tolist()) == set(range(4))
    assert set(codes.bottom.unique().tolist()) == set(range(16))
    kept = prior.sample_bottom(codes.top[:3])
    assert torch.equal(kept.top, codes.top[:3])


@pytest.mark.parametrize("kind", ["learned", "uniform"])
def test_model_samples_from_either_prior_and_refuses_others(model, kind):
    images = model.eval().sample(3, prior=kind, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match="learned' or 'uniform"):
        model.prior("flow")


def test_encode_dataset_matches_encoding_batch_by_batch(model):
    model.train()(torch.rand(16, 1, 28, 28))                            # k-means initialises
    x = torch.rand(10, 1, 28, 28)
    codes = model.encode_dataset(x, batch_size=3)
    direct = model.eval().encode_to_indices(x)
    assert torch.equal(codes.top, direct.top) and torch.equal(codes.bottom, direct.bottom)
    assert model.train().encode_dataset(x).count == 10 and model.training  # mode kept


def test_the_top_alone_is_decoded_and_trained_only_with_a_top_weight():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    weighted = VQVAE2(VQVAE2Config(**TINY, top_weight=0.5)).train()
    out = weighted(x)
    assert out.top_recon > 0
    assert out.loss.item() == pytest.approx(
        out.recon.item() + 0.5 * out.top_recon.item() + 0.25 * out.commitment.item(), rel=1e-5)
    codes = weighted.eval().encode_to_indices(x)
    coarse = weighted.decode_top(codes.top)
    zeros = torch.zeros(4, TINY["code_dim"], 7, 7)
    want = weighted.decoder(torch.cat([zeros, weighted._top_features(
        weighted.top_quantizer.indices_to_codes(codes.top))], 1)).clamp(0, 1)
    assert coarse.shape == (4, 1, 28, 28) and torch.allclose(coarse, want)
    plain = VQVAE2(VQVAE2Config(**TINY, top_weight=0.0)).train()(x)
    assert plain.top_recon == 0
    with pytest.raises(ValueError, match="top_weight"):
        VQVAE2Config(top_weight=-1.0)
