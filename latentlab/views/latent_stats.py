"""The numbers and charts beside the latent map: ELBO surgery, active units, KL per dimension
(VAE) or codebook usage and a Voronoi-style picture of z_e (VQ-VAE).

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> vae_stats(reg, "mnist-vae-z2").source.startswith("metrics.json")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import plots, render
from latentlab.registry import ModelRegistry
from latentlab.testset import LIVE_SUBSET, code_data, latent_data
from latentlab.views.latent_map import pca

# ----------------------------------------------------------------------------- statistics

@dataclass
class LatentStats:
    """Numbers beside the latent map: ELBO surgery, active units, KL per dimension."""

    rows: list[tuple[str, str, str]]          # (quantity, value, meaning)
    source: str
    kl_per_dim: np.ndarray | None = None      # (D,)
    kl_reference: str = ""
    unit_variance: np.ndarray | None = None   # (D,) Cov_x(E_q[z_d])


def _fmt(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    """From ``metrics.json`` (written by ``python -m latentlab.evaluate``) when present;
    otherwise estimated live from the cached test posteriors (no reconstruction term)."""
    e = registry.entry(name)
    m = e.metrics
    surgery = m.get("elbo_surgery")
    if isinstance(surgery, dict) and "kl_per_dim" in m:
        rows = [
            ("test ELBO", _fmt(m.get("test_elbo", surgery.get("elbo"))), "mean over the test set"),
            ("reconstruction E_q log p(x|z)", _fmt(surgery.get("reconstruction")), "first term"),
            ("average KL(q(z|x) ‖ p(z))", _fmt(surgery.get("avg_kl")), "= I_q + marginal KL"),
            ("mutual information I_q[x, z]", _fmt(surgery.get("mutual_information")),
             f"≤ log N = {_fmt(surgery.get('log_n'))}"),
            ("marginal KL(q_agg ‖ p(z))", _fmt(surgery.get("marginal_kl")),
             "0 when the prior equals q_agg"),
        ]
        if "test_nll_iwae" in m:
            rows.append((f"−log p(x) (IWAE, k={m.get('iwae_k', '?')})", _fmt(m["test_nll_iwae"]),
                         "test NLL"))
        rows.append(("active units", f"{m.get('active_units', '?')} of {e.latent_dim}",
                     "Cov_x E_q[z_d] > 0.01"))
        var = m.get("active_unit_variances")
        n_test = f" ({m['eval_n_test']} test images)" if "eval_n_test" in m else ""
        return LatentStats(rows, f"metrics.json{n_test}",
                           np.asarray(m["kl_per_dim"], np.float32), m.get("kl_per_dim_reference", ""),
                           None if var is None else np.asarray(var, np.float32))
    lm = registry.get(name, ("vae",))
    return lm.memo("stats-live", lambda: _live_vae_stats(registry, name))


@torch.inference_mode()
def _live_vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    from latentlab.metrics import active_units, elbo_surgery, kl_per_dim
    from models.distributions import DiagonalGaussian

    lm, ld = registry.get(name, ("vae",)), latent_data(registry, name)
    model = lm.model
    n = min(len(ld.mu), LIVE_SUBSET)  # q_agg costs N^2: a few thousand points is plenty here
    mu, logvar = torch.from_numpy(ld.mu[:n]), torch.from_numpy(ld.logvar[:n])
    q = DiagonalGaussian(mu, logvar)
    kl = model.kl(q, q.rsample(generator=torch.Generator().manual_seed(0)))  # (N,)
    s = elbo_surgery(mu, logvar, model.prior, torch.zeros(len(mu)), kl,
                     generator=torch.Generator().manual_seed(1))
    n_active, var = active_units(mu)
    normal = lm.entry.prior == "normal"
    rows = [
        ("average KL(q(z|x) ‖ p(z))", _fmt(s["avg_kl"]), "= I_q + marginal KL"),
        ("mutual information I_q[x, z]", _fmt(s["mutual_information"]), f"≤ log N = {_fmt(s['log_n'])}"),
        ("marginal KL(q_agg ‖ p(z))", _fmt(s["marginal_kl"]), "0 when the prior equals q_agg"),
        ("active units", f"{n_active} of {mu.shape[1]}", "Cov_x E_q[z_d] > 0.01"),
        ("reconstruction, ELBO", "—", "run python -m latentlab.evaluate for these"),
    ]
    ref = "prior N(0, I)" if normal else "N(0, 1) per dim (the flow prior does not factorise)"
    return LatentStats(rows, f"estimated live on {n} test posteriors", kl_per_dim(mu, logvar).numpy(),
                       ref, var.numpy())


def vq_stats(registry: ModelRegistry, name: str) -> LatentStats:
    e = registry.entry(name)
    m, cd = e.metrics, code_data(registry, name)
    k = len(cd.counts)
    p = cd.counts / max(cd.counts.sum(), 1)
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    rows = [
        ("codes used", f"{int((cd.counts > 0).sum())} of {k}", cd.source),
        ("dead codes", str(m.get("dead_codes", int((cd.counts == 0).sum()))), "never chosen on the test set"),
        ("perplexity exp H(code)", _fmt(float(m.get("codebook_perplexity", perplexity)), 1),
         f"effective number of codes (max {k})"),
    ]
    for key, label, meaning in (
            ("test_mse", "test MSE per pixel", "reconstruction"),
            ("test_psnr_db", "test PSNR (dB)", "10 log10(1/MSE)"),
            ("prior_test_nll_bits_per_code", "learned prior: bits per code", "test grids"),
            ("uniform_prior_nll_bits_per_code", "uniform prior: bits per code", "log2 K")):
        if key in m:
            rows.append((label, _fmt(float(m[key]), 4 if key == "test_mse" else 2), meaning))
    for key, label, meaning in (  # the lecture's point about priors, in numbers (evaluate)
            ("learned_prior_confident_share", "learned-prior samples judged confidently",
             "share with classifier probability >= 0.9, T = 1"),
            ("uniform_prior_confident_share", "uniform-prior samples judged confidently",
             "the prior of the VQ-VAE derivation"),
            ("reconstruction_confident_share", "reconstructions judged confidently",
             "what a perfect prior would give at T = 1")):
        if key in m:
            rows.append((label, f"{100 * float(m[key]):.1f} %", meaning))
    src = "metrics.json" if "dead_codes" in m else cd.source
    return LatentStats(rows, src)


def latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    """Charts beside the map: KL per dimension (VAE) or codebook usage + Voronoi (VQ-VAE).

    Built once per model (they only change with the weights) and reused.
    """
    lm = registry.get(name, ("vae", "vqvae"))
    return lm.memo(("figures", stats.source), lambda: _latent_figures(registry, name, stats))


def _latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    e = registry.entry(name)
    if e.kind == "vae":
        if stats.kl_per_dim is None:
            return [None, None]
        kl = stats.kl_per_dim
        colors = ["#1f77b4" if v > 0.05 else "#d62728" for v in kl]
        ref = stats.kl_reference or "prior N(0, I)"
        title = f"KL per dimension vs {ref}<br><sup>red: collapsed (carries ~no information)</sup>"
        fig = plots.bar_chart([f"z{i + 1}" for i in range(len(kl))], kl, title, "dimension",
                               "nats", colors)
        return [fig, None]
    cd = code_data(registry, name)
    lm = registry.get(name, ("vqvae",))
    k = len(cd.counts)
    palette = render.code_hex(k)
    usage = plots.bar_chart(list(range(k)), np.maximum(cd.counts, 0.5), "Codebook usage over the "
                             "test set (log scale; 0.5 = dead)", "code k", "count", palette, log_y=True)
    codebook = lm.model.codebook.detach().numpy()
    mean, comps = pca(np.concatenate([codebook, cd.z_e]))
    scatter = plots.codebook_scatter((codebook - mean) @ comps.T, cd.counts,
                                      (cd.z_e - mean) @ comps.T, cd.z_e_code, k)
    return [usage, scatter]
