"""VQ-VAE evaluation: reconstructions, codebook health, code-prior NLL and sample quality.

PSNR is taken over the whole test set, 10 log10(1 / MSE) with MSE the mean squared error
over all test pixels (images in [0, 1], so the peak is 1); it is the PSNR of the set's MSE,
not an average of per-image PSNRs. A two-level VQ-VAE (``models.vqvae2``) gets its codebook
numbers per level (``top_codebook_usage``, ``bottom_codebook_usage``, ...) and its prior's bits
per code per level: the top's -log2 p(c_top) / 4 and the bottom's -log2 p(c_bot | c_top) / 49,
with ``prior_test_nll_bits_per_code`` over all 53 codes and ``..._bits_per_image`` their sum.

>>> from models.vqvae import VQVAE, VQVAEConfig
>>> vq = VQVAE(VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16, prior_layers=1,
...                        prior_heads=2))
>>> m = evaluate_vqvae(vq, "mnist", limit=100)
>>> m["uniform_prior_nll_bits_per_code"], 0 < m["codebook_usage"] <= 1, m["eval_n_test"]
(3.0, True, 100)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from latentlab import data
from models.quantizer import histogram_perplexity
from models.vqvae2 import CELLS, TOP_CELLS, Codes

SampleQualityFn = Callable[[torch.Tensor, str], dict]
LabelFn = Callable[[torch.Tensor], torch.Tensor]   # images (N, 1, 28, 28) -> classes (N,)
SWEEP_TEMPERATURES = (0.7, 0.8, 0.9)   # below 1: sharper, less diverse learned-prior samples
SWEEP_KEYS = ("confident_share", "class_entropy_bits", "frechet_distance")


# ----------------------------------------------------------------------------- helpers

@torch.no_grad()
def _test_images(dataset: str, limit: int = 0) -> torch.Tensor:
    """The grey test images (N, 1, 28, 28), or the first ``limit`` of them."""
    x, _ = data.load_split(dataset, train=False)
    return x[:limit] if limit else x


@torch.no_grad()
def _encode_test_set(model, dataset: str, batch_size: int, limit: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor | Codes, torch.Tensor]:
    """Squared error per test image (N,), the test code grids (N, 7, 7) (a two-level model:
    ``Codes``) and the reconstructions (N, 1, 28, 28), in eval mode."""
    x = _test_images(dataset, limit)
    device = model.device
    errors, grids, recons = [], [], []
    for xb in x.split(batch_size):
        xb = xb.to(device)
        idx = model.encode_to_indices(xb)                                    # (b, 7, 7) or Codes
        x_hat = model.decode_indices(idx)                                    # (b, 1, 28, 28)
        errors.append((x_hat - xb).pow(2).flatten(1).mean(1).cpu())         # (b,)
        grids.append(idx.to("cpu"))
        recons.append(x_hat.cpu())
    joined = Codes.cat(grids) if isinstance(grids[0], Codes) else torch.cat(grids)
    return torch.cat(errors), joined, torch.cat(recons)


@torch.no_grad()
def prior_nll_bits_per_code(prior, grids: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean -log2 p(c) / 49 over code grids (N, 7, 7)."""
    device = next(itertools.chain(prior.parameters(), prior.buffers())).device
    total = sum(prior.nll_per_code(g.to(device)).item() * len(g) for g in grids.split(batch_size))
    return total / (len(grids) * math.log(2))


@torch.no_grad()
def sample_images(model, n: int, prior: str, batch_size: int, seed: int,
                  temperature: float = 1.0) -> torch.Tensor:
    """n images (n, 1, 28, 28) decoded from a VQ model's ``prior`` at ``temperature``, drawn
    in batches by one generator seeded with ``seed`` (the same draws for the same arguments)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    return torch.cat([model.sample(s, prior=prior, temperature=temperature, generator=gen).cpu()
                      for s in sizes])


# ----------------------------------------------------------------------------- public API

def _mse_numbers(errors: torch.Tensor) -> dict:
    mse = errors.mean().item()
    return {"test_mse": round(mse, 6),
            "test_psnr_db": round(10 * math.log10(1.0 / max(mse, 1e-12)), 3)}


def _usage_numbers(grids: torch.Tensor, num_codes: int, prefix: str = "") -> dict:
    """Usage, perplexity and dead codes of one level's test-set code histogram."""
    counts = torch.bincount(grids.flatten(), minlength=num_codes)            # (K,)
    return {f"{prefix}codebook_usage": round((counts > 0).float().mean().item(), 4),
            f"{prefix}codebook_perplexity": round(histogram_perplexity(counts).item(), 2),
            f"{prefix}dead_codes": int((counts == 0).sum())}


def _reconstruction_numbers(model, errors: torch.Tensor, grids: torch.Tensor | Codes) -> dict:
    if isinstance(grids, Codes):
        return _two_level_numbers(model, errors, grids)
    return {**_mse_numbers(errors), **_usage_numbers(grids, model.config.num_codes),
            "prior_test_nll_bits_per_code": round(prior_nll_bits_per_code(model.prior("learned"), grids), 4),
            "uniform_prior_nll_bits_per_code": round(math.log2(model.config.num_codes), 4)}


@torch.no_grad()
def level_bits(prior, codes: Codes, batch_size: int = 1000) -> Codes:
    """Mean -log2 p per code of each level: top -log2 p(c_top) / 4 and bottom
    -log2 p(c_bot | c_top) / 49, as a ``Codes`` pair of floats."""
    device = next(itertools.chain(prior.parameters(), prior.buffers())).device
    top = bottom = 0.0
    for i in range(0, codes.count, batch_size):
        lp = prior.log_prob_per_level(codes.select(slice(i, i + batch_size)).to(device))
        top, bottom = top + lp.top.sum().item(), bottom + lp.bottom.sum().item()
    n = codes.count * math.log(2)
    return Codes(-top / (n * TOP_CELLS), -bottom / (n * CELLS))


def _two_level_numbers(model, errors: torch.Tensor, codes: Codes) -> dict:
    """Per level: usage, perplexity, dead codes and bits per code; and over all 53 codes."""
    cfg = model.config
    learned = level_bits(model.prior("learned"), codes)
    uniform = Codes(math.log2(cfg.top_codes), math.log2(cfg.num_codes))
    out = {**_mse_numbers(errors), **_usage_numbers(codes.top, cfg.top_codes, "top_"),
           **_usage_numbers(codes.bottom, cfg.num_codes, "bottom_")}
    for name, bits in (("prior_test_nll", learned), ("uniform_prior_nll", uniform)):
        out[f"{name}_bits_per_code_top"] = round(bits.top, 4)
        out[f"{name}_bits_per_code_bottom"] = round(bits.bottom, 4)
        per_image = TOP_CELLS * bits.top + CELLS * bits.bottom
        out[f"{name}_bits_per_image"] = round(per_image, 2)
        out[f"{name}_bits_per_code"] = round(per_image / (TOP_CELLS + CELLS), 4)
    return out


def reconstruction_metrics(model, dataset: str, batch_size: int = 1000, limit: int = 0) -> dict:
    """Test MSE and PSNR, codebook usage / perplexity / dead codes, prior test NLL."""
    was_training = model.training
    model.eval()
    errors, grids, _ = _encode_test_set(model, dataset, batch_size, limit)
    metrics = _reconstruction_numbers(model, errors, grids)
    model.train(was_training)
    return metrics


@torch.no_grad()
def _reference_quality(dataset: str, recon: torch.Tensor, quality: SampleQualityFn,
                       limit: int = 0) -> dict:
    """The classifier's view of the real test images and of their reconstructions. A perfect
    prior draws code grids as the encoder assigns them, so at T = 1 its samples score like the
    reconstructions: the reference for the learned prior (for Fashion-MNIST even the real
    images are far from a confident share of 1)."""
    x = _test_images(dataset, limit)                                         # (N, 1, 28, 28)
    out = {f"test_images_{k}": v for k, v in quality(x, dataset).items()}
    out.update({f"reconstruction_{k}": v for k, v in quality(recon, dataset).items()})
    return out


def _agreement(labels: torch.Tensor) -> float:
    """Share of the items (G, P) whose label is their group's most common one."""
    counts = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).sum(1)  # (G, classes)
    return counts.max(1).values.sum().item() / labels.numel()


@torch.no_grad()
def same_top_agreement(model, label_fn: LabelFn, groups: int = 500, per_group: int = 8,
                       seed: int = 0, batch_size: int = 500) -> dict:
    """How much a two-level model's top grid decides the class: ``groups`` tops drawn from
    p(c_top), ``per_group`` bottoms for each from p(c_bot | c_top), and the share of the
    decoded images whose class (``label_fn``) is their group's most common one; beside it the
    same share for groups of independently drawn pairs (what a top that decided nothing would
    give).

    >>> from models.vqvae2 import VQVAE2, VQVAE2Config
    >>> vq = VQVAE2(VQVAE2Config(num_codes=8, top_codes=4, code_dim=4, channels=4, prior_dim=16,
    ...                          prior_layers=1, prior_heads=2)).eval()
    >>> m = same_top_agreement(vq, lambda im: (im.mean((1, 2, 3)) > 0.5).long(), groups=3)
    >>> 0.5 <= m["same_top_class_agreement"] <= 1, m["same_top_groups"]
    (True, 3)
    """
    gen = torch.Generator().manual_seed(seed)
    prior = model.prior("learned")
    tops = prior.sample(groups, 1.0, gen).top.repeat_interleave(per_group, 0)   # (G*P, 2, 2)
    fixed = torch.cat([model.decode_indices(prior.sample_bottom(t, 1.0, gen)).cpu()
                       for t in tops.split(batch_size)])                      # (G*P, 1, 28, 28)
    free = sample_images(model, groups * per_group, "learned", batch_size, seed + 1)
    return {
        "same_top_class_agreement": round(_agreement(label_fn(fixed).view(groups, per_group)), 4),
        "independent_class_agreement": round(_agreement(label_fn(free).view(groups, per_group)), 4),
        "same_top_groups": groups, "same_top_group_size": per_group,
    }


def evaluate_vqvae(model, dataset: str, n_samples: int = 10000, batch_size: int = 500,
                   sample_quality_fn: SampleQualityFn | None = None, seed: int = 0,
                   temperatures: tuple[float, ...] = SWEEP_TEMPERATURES, limit: int = 0,
                   label_fn: LabelFn | None = None) -> dict:
    """Full VQ-VAE evaluation on the test set of ``dataset``.

    Keys: ``test_mse``, ``test_psnr_db`` (over the set), ``codebook_usage`` (codes used on
    the whole test set / K), ``codebook_perplexity`` (exp of the entropy of the test-set code
    histogram), ``dead_codes`` (codes never used on the test set),
    ``prior_test_nll_bits_per_code`` (learned prior), ``uniform_prior_nll_bits_per_code``
    (log2 K). With ``sample_quality_fn(images, dataset) -> dict`` it also scores
    ``n_samples`` images from each prior at temperature 1, keys prefixed ``learned_prior_``
    and ``uniform_prior_``; the real test images and their reconstructions as references
    (``test_images_``, ``reconstruction_``); and ``learned_prior_temperature_sweep``, the
    learned prior's confident share, class entropy and Frechet distance at each of
    ``temperatures`` (lower T trades diversity for confidence). Samples are seeded by ``seed``.
    ``limit`` > 0 scores the first ``limit`` test images only (``eval_n_test`` says how many).
    A two-level model with ``label_fn(images) -> classes`` also gets ``same_top_agreement``.
    """
    data.check_dataset(dataset)
    was_training = model.training
    model.eval()
    errors, grids, recon = _encode_test_set(model, dataset, batch_size, limit)
    metrics = _reconstruction_numbers(model, errors, grids)
    metrics["eval_n_test"] = len(errors)
    if sample_quality_fn is None or n_samples <= 0:
        model.train(was_training)
        return metrics
    for kind in ("learned", "uniform"):
        images = sample_images(model, n_samples, kind, batch_size, seed)
        for key, value in sample_quality_fn(images, dataset).items():
            metrics[f"{kind}_prior_{key}"] = value
    sweep = {}
    for t in temperatures:
        q = sample_quality_fn(sample_images(model, n_samples, "learned", batch_size, seed, t), dataset)
        sweep[str(t)] = {k: q[k] for k in SWEEP_KEYS if k in q}
    metrics["learned_prior_temperature_sweep"] = sweep
    metrics.update(_reference_quality(dataset, recon, sample_quality_fn, limit))
    if label_fn is not None and isinstance(grids, Codes):
        metrics.update(same_top_agreement(model, label_fn, seed=seed, batch_size=batch_size))
    model.train(was_training)
    return metrics
