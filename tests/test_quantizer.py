"""VectorQuantizer: nearest code, straight-through gradients, loss routing, EMA, restarts,
k-means initialisation, and no codebook changes in eval mode."""

import pytest
import torch

from models.quantizer import VectorQuantizer, histogram_perplexity, kmeans


def plain_vq(k: int = 16, d: int = 8, **kw) -> VectorQuantizer:
    opts = {"ema": False, "kmeans_init": False, "restart_after": 0} | kw
    return VectorQuantizer(k, d, **opts)


# ----------------------------------------------------------------------------- lookup

@pytest.mark.parametrize("ema", [False, True])
def test_output_is_the_nearest_codebook_vector(ema):
    vq = plain_vq(ema=ema).eval()
    vq.embedding.data.normal_()
    z = torch.randn(3, 8, 7, 7)
    out = vq(z)
    flat = z.movedim(1, -1).reshape(-1, 8)                                   # (147, 8)
    brute = torch.cdist(flat, vq.codebook).argmin(1)                         # (147,)
    assert torch.equal(out.indices.flatten(), brute)
    assert out.indices.dtype == torch.long and out.indices.shape == (3, 7, 7)
    expected = vq.codebook[brute].view(3, 7, 7, 8).movedim(-1, 1)            # (3, 8, 7, 7)
    torch.testing.assert_close(out.z_q, expected)
    assert torch.equal(vq.quantize(z), out.indices)
    torch.testing.assert_close(vq.lookup(out.indices), expected)


def test_public_verbs_are_inverse_and_have_no_side_effects():
    vq = plain_vq(restart_after=1).train()  # training mode: only forward may change state
    vq.embedding.data.normal_()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    z = torch.randn(2, 8, 5, 3)                                              # any grid size
    idx = vq.quantize(z)
    assert idx.shape == (2, 5, 3) and idx.dtype == torch.long
    assert torch.equal(vq.nearest(z.movedim(1, -1)), idx)                   # channel-last verb
    codes = vq.indices_to_codes(idx)
    assert codes.shape == z.shape and torch.equal(codes, vq.lookup(idx))
    torch.testing.assert_close(vq.snap(z), codes)
    assert torch.equal(vq.quantize(codes), idx)   # a code's nearest code is itself
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="code size"):
        vq.nearest(torch.randn(4, 3))


def test_lookup_rejects_bad_indices():
    vq = plain_vq()
    with pytest.raises(ValueError, match="must lie in"):
        vq.lookup(torch.full((1, 7, 7), 16))
    with pytest.raises(TypeError):
        vq.lookup(torch.zeros(1, 7, 7))


# ----------------------------------------------------------------------------- gradients

def test_straight_through_passes_the_decoder_gradient_unchanged():
    vq = plain_vq()
    z = torch.randn(2, 8, 7, 7, requires_grad=True)
    upstream = torch.randn(2, 8, 7, 7)
    (vq(z).z_q * upstream).sum().backward()
    torch.testing.assert_close(z.grad, upstream)
    assert vq.embedding.grad is None  # the decoder path never reaches the codebook


def test_codebook_loss_moves_only_the_codebook():
    vq = plain_vq()
    z = torch.randn(2, 8, 7, 7, requires_grad=True)
    vq(z).codebook.backward()
    assert z.grad is None
    assert vq.embedding.grad is not None and vq.embedding.grad.abs().sum() > 0


def test_commitment_loss_moves_only_the_encoder_output():
    vq = plain_vq()
    z = torch.randn(2, 8, 7, 7, requires_grad=True)
    vq(z).commitment.backward()
    assert vq.embedding.grad is None
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_losses_are_mean_squared_distances():
    vq = plain_vq().eval()
    z = torch.randn(2, 8, 7, 7)
    out = vq(z)
    expected = (z - vq.lookup(out.indices)).pow(2).mean()
    torch.testing.assert_close(out.codebook, expected)
    torch.testing.assert_close(out.commitment, expected)
    assert out.codebook.dim() == 0 and out.perplexity.dim() == 0


def test_perplexity_of_histograms():
    assert histogram_perplexity(torch.tensor([5, 0, 0, 0])).item() == pytest.approx(1.0)
    assert histogram_perplexity(torch.tensor([3, 3, 3, 3])).item() == pytest.approx(4.0)


# ----------------------------------------------------------------------------- EMA

def test_ema_update_matches_a_hand_computed_step():
    k, d, decay, eps = 3, 2, 0.9, 1e-5
    vq = VectorQuantizer(k, d, ema=True, decay=decay, eps=eps, kmeans_init=False).train()
    vq.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]))
    vq.ema_count.copy_(torch.tensor([2.0, 1.0, 1.0]))
    vq.ema_sum.copy_(vq.embedding * vq.ema_count.unsqueeze(1))
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 11.0]])            # codes 0, 0, 1
    vq(points.t().reshape(1, d, 1, 3))                                       # (B=1, D, 1, 3)

    counts = torch.tensor([2.0, 1.0, 0.0])
    sums = torch.tensor([[1.0, 1.0], [9.0, 11.0], [0.0, 0.0]])
    n = decay * torch.tensor([2.0, 1.0, 1.0]) + (1 - decay) * counts
    m = decay * torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]) + (1 - decay) * sums
    smoothed = (n + eps) / (n.sum() + k * eps) * n.sum()
    torch.testing.assert_close(vq.ema_count, n)
    torch.testing.assert_close(vq.ema_sum, m)
    torch.testing.assert_close(vq.codebook, m / smoothed.unsqueeze(1))


def test_ema_codebook_is_a_buffer_not_a_parameter():
    vq = VectorQuantizer(8, 4, ema=True)
    assert "embedding" not in dict(vq.named_parameters())
    assert "embedding" in dict(vq.named_buffers())


# ----------------------------------------------------------------------------- restarts

@pytest.mark.parametrize("ema", [False, True])
def test_dead_code_is_restarted_from_encoder_outputs(ema):
    vq = plain_vq(k=4, d=2, ema=ema, restart_after=2).train()
    with torch.no_grad():
        vq.embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0], [100.0, 100.0]]))
        if ema:
            vq.ema_sum.copy_(vq.embedding)
    z = torch.rand(4, 2, 7, 7)  # all in [0, 1]^2: code 3 is never the nearest
    vq(z)
    assert vq.codebook[3, 0] > 99.0 and vq.unused_steps[3] == 1          # not dead yet
    vq(z)
    flat = z.movedim(1, -1).reshape(-1, 2)
    assert torch.cdist(vq.codebook[3:4], flat).min() < 1e-6              # re-seeded on z_e
    assert vq.unused_steps[3] == 0
    if ema:
        torch.testing.assert_close(vq.ema_sum[3] / vq.ema_count[3], vq.codebook[3])


# ----------------------------------------------------------------------------- k-means

def test_kmeans_init_places_codes_on_the_data():
    centers = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [0.0, -5.0], [8.0, -8.0]])
    z = centers.repeat_interleave(49, 0) + 0.01 * torch.randn(196, 2)       # (196, 2) 4 blobs
    vq = VectorQuantizer(4, 2, ema=True, kmeans_init=True, kmeans_iters=10).train()
    assert not bool(vq.initialized)
    vq(z.t().reshape(1, 2, 14, 14))                                          # (1, D, 14, 14)
    assert bool(vq.initialized)
    assert torch.cdist(vq.codebook, z).min(1).values.max() < 0.1          # every code on data
    assert torch.cdist(centers, vq.codebook).min(1).values.max() < 0.1    # every blob covered


def test_kmeans_with_fewer_points_than_clusters():
    z = torch.randn(3, 2)
    c = kmeans(z, 5, iters=3, generator=torch.Generator().manual_seed(0))
    assert c.shape == (5, 2) and torch.cdist(c, z).min(1).values.max() < 1e-6


# ----------------------------------------------------------------------------- modes

@pytest.mark.parametrize("opts", [{"ema": True}, {"restart_after": 1}, {"kmeans_init": True}],
                         ids=["ema", "restart", "kmeans"])
def test_eval_mode_never_changes_the_codebook(opts):
    vq = plain_vq(**opts).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    for _ in range(3):
        vq(torch.randn(2, 8, 7, 7))
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k
