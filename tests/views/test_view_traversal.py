"""Traversal panel (rows ordered by KL, flow prior walked in base space) and the beta sweep."""

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.metrics import kl_per_dim
from latentlab.views import traversal
from models.vae import VAE, VAEConfig

IMAGE = np.zeros((28, 28), np.float32)
IMAGE[6:22, 10:18] = 1.0


def tiny(prior: str = "normal", dim: int = 4) -> VAE:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=dim, channels=2, hidden=8, prior=prior, flow_layers=4,
                          flow_hidden=8)).eval()
    if prior == "realnvp":   # couplings start as the identity; make the flow really bend space
        with torch.no_grad():
            for layer in model.prior.couplings:
                layer.net[-1].weight.normal_(0.0, 0.5)
                layer.net[-1].bias.normal_(0.0, 0.5)
    return model


def test_image_shape_and_rows_ordered_by_kl():
    kl = [0.3, 2.0, 0.004, 1.1]
    out = traversal.run(tiny(), IMAGE, columns=7, kl_per_dim=kl)
    assert out.order == [1, 3, 0, 2]
    side = 28 * traversal.SCALE + traversal.GAP
    assert out.image.shape == (4 * side + traversal.GAP, traversal.LABEL_W + 7 * side + traversal.GAP, 3)
    assert out.image.dtype == np.uint8
    assert [row[0] for row in out.table] == [1, 3, 0, 2]
    assert [row[3] for row in out.table] == [True, True, True, False]
    assert out.labels[-1].startswith("z2") and "inactive" in out.labels[-1]
    assert out.z.shape == (4, 7, 4)


def test_inactive_by_variance_too():
    out = traversal.run(tiny(), IMAGE, kl_per_dim=[1.0, 1.0, 1.0, 1.0],
                        variances=[0.5, 0.001, 0.5, 0.5])
    assert [row[3] for row in out.table] == [True, False, True, True]
    assert "inactive" in out.labels[1] and "inactive" not in out.labels[0]


def test_normal_prior_rows_move_one_coordinate_around_the_mean():
    model = tiny()
    out = traversal.run(model, IMAGE, columns=5, span=2.0, kl_per_dim=[1, 2, 3, 4])
    mu = model.encode(torch.from_numpy(IMAGE).view(1, 1, 28, 28))[0][0].detach().numpy()
    offsets = np.linspace(-2, 2, 5)
    for r, d in enumerate(out.order):
        moved = out.z[r] - mu                                                  # (C, D)
        np.testing.assert_allclose(moved[:, d], offsets, atol=1e-5)
        np.testing.assert_allclose(np.delete(moved, d, axis=1), 0.0, atol=1e-6)


def test_flow_prior_walks_one_base_coordinate():
    model = tiny("realnvp")
    out = traversal.run(model, IMAGE, columns=5, kl_per_dim=[1, 2, 3, 4])
    x = torch.from_numpy(IMAGE).view(1, 1, 28, 28)
    with torch.no_grad():
        base_mu = model.prior.to_base(model.encode(x)[0])[0].numpy()        # (D,)
        base = model.prior.to_base(torch.from_numpy(out.z).view(-1, 4)).view(4, 5, 4).numpy()
    offsets = np.linspace(-3, 3, 5)
    for r, d in enumerate(out.order):
        moved = base[r] - base_mu
        np.testing.assert_allclose(moved[:, d], offsets, atol=1e-4)
        np.testing.assert_allclose(np.delete(moved, d, axis=1), 0.0, atol=1e-4)
    # in data space the flow mixes coordinates: a base-space row moves more than one z_d
    data_moved = np.abs(out.z[0] - out.z[0, 2]).max(0)
    assert (data_moved > 1e-3).sum() > 1


def test_stats_from_test_images():
    model = tiny()
    images = torch.bernoulli(torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    out = traversal.run(model, IMAGE, test_images=images)
    with torch.no_grad():
        mu, logvar = model.encode(images)
    kl = kl_per_dim(mu, logvar).numpy()
    assert out.order == [int(d) for d in np.argsort(-kl, kind="stable")]
    np.testing.assert_allclose([row[1] for row in out.table], kl[out.order], atol=1e-3)
    np.testing.assert_allclose([row[2] for row in out.table], mu.var(0).numpy()[out.order],
                               atol=1e-3)


@pytest.mark.parametrize("kwargs", [{"columns": 2}, {"columns": 16}, {"columns": 4.5},
                                    {"span": 0.1}, {"span": float("inf")},
                                    {"kl_per_dim": [1.0, 2.0]}, {"kl_per_dim": None}])
def test_bad_inputs_are_input_errors(kwargs):
    args = {"kl_per_dim": [1.0, 2.0, 3.0, 4.0], **kwargs}
    with pytest.raises(InputError):
        traversal.run(tiny(), IMAGE, **args)


def test_autoencoder_is_refused():
    ae = VAE(VAEConfig(latent_dim=2, channels=2, hidden=8, posterior="deterministic")).eval()
    with pytest.raises(InputError, match="Gaussian posterior"):
        traversal.run(ae, IMAGE, kl_per_dim=[1.0, 1.0])


def _entry(name, beta, kl, rec, au):
    return {"name": name, "beta": beta, "test_kl": kl, "test_rec_nll": rec, "active_units": au}


def test_beta_sweep_orders_by_beta_and_highlights_the_current_model():
    entries = [_entry("mnist-vae-z16-beta4", 4.0, 8.0, 95.0, 5),
               _entry("mnist-vae-z16-beta0.5", 0.5, 40.0, 50.0, 16),
               _entry("mnist-vae-z16-beta1", 1.0, 25.0, 64.0, 14),
               {"name": "broken", "beta": 2.0},                           # no metrics: skipped
               _entry("diverged", 8.0, float("nan"), 99.0, 0)]           # not a number: skipped
    out = traversal.beta_sweep(entries, current="mnist-vae-z16-beta1")
    sweep, ring = out.figure.data
    assert list(sweep.x) == [40.0, 25.0, 8.0] and list(sweep.y) == [50.0, 64.0, 95.0]
    assert list(sweep.text) == ["β=0.5", "β=1", "β=4"]
    assert (ring.x[0], ring.y[0]) == (25.0, 64.0)
    assert [row[0] for row in out.table] == ["mnist-vae-z16-beta0.5", "mnist-vae-z16-beta1",
                                            "mnist-vae-z16-beta4"]
    assert [row[4] for row in out.table] == [16, 14, 5]
    assert len(traversal.beta_sweep(entries, current="other").figure.data) == 1


def test_beta_sweep_without_checkpoints_says_so():
    out = traversal.beta_sweep([{"name": "x", "beta": 1.0}])
    assert out.table == [] and not out.figure.data
    assert "No beta-sweep checkpoint" in out.figure.layout.annotations[0].text


def test_flow_stats_are_taken_in_base_space():
    images = torch.bernoulli(torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(4)))
    plain = tiny("realnvp")
    with torch.no_grad():                       # zero last layers: the flow is the identity
        for layer in plain.prior.couplings:
            layer.net[-1].weight.zero_()
            layer.net[-1].bias.zero_()
        mu, logvar = plain.encode(images)
    kl, var = traversal.dimension_stats(plain, images, samples=2000)
    np.testing.assert_allclose(kl, kl_per_dim(mu, logvar).numpy(), atol=0.02)
    np.testing.assert_allclose(var, mu.var(0).numpy(), rtol=0.05, atol=1e-3)
    bent = tiny("realnvp")                      # a real flow: the base space differs
    kl_bent, _ = traversal.dimension_stats(bent, images)
    assert not np.allclose(kl_bent, kl_per_dim(*bent.encode(images)).detach().numpy(), atol=0.05)
