"""Evaluation: ``python -m latentlab.evaluate checkpoints/NAME`` fills ``metrics.json``.

    python -m latentlab.evaluate checkpoints/mnist-flow-z16 [--k 1000] [--limit N | --subset N] \
        [--samples 10000] [--batch-size 0] [--seed 0] [--binarization-seed 1234] \
        [--classifier PATH]
    python -m latentlab.evaluate checkpoints/mnist-flow-z16 --nll-only --k 5000

Loads the checkpoint, scores it on the full 10,000-image test set (binarized once with a
fixed seed for the VAEs, grey for the classifier) and merges the numbers into the folder's
``metrics.json``. The math lives in ``latentlab.metrics`` and ``latentlab.sample_quality``.

Keys written for a Gaussian VAE (nats per image, test-set means; lower NLL / higher ELBO is
better):

* ``test_elbo``: mean ELBO, E_q log p_theta(x|z) - KL(q_phi(z|x) || p(z)), estimated with
  ``elbo_samples`` z per image (replaces training's one-sample quick number).
* ``test_rec_nll``: mean reconstruction NLL -E_q log p_theta(x|z).
* ``test_kl``: mean KL(q_phi(z|x) || p(z)): analytic for N(0, I); for the flow prior the
  ``elbo_samples``-sample Monte Carlo estimate of E_q[log q_phi(z|x) - log p_lambda(z)].
* ``test_nll_iwae``: -L_k, the importance-weighted bound on -log p(x) with ``iwae_k`` samples
  (k = 1000 for reported numbers); ``iwae_gain`` = L_k - ELBO >= 0 (how loose the ELBO is).
* ``test_nll_iwae_k{K}`` (``--nll-only --k K``, nothing else computed or replaced): the same
  bound with another k, as {nats, sem, k, images, seed, binarization_seed, command,
  wall_time_s, device, date}; L_k only tightens as k grows.
* ``elbo_surgery``: {reconstruction, avg_kl, mutual_information, mutual_information_direct,
  marginal_kl, elbo, log_n, n_components, n_points}: reconstruction - mutual_information -
  marginal_kl = elbo, with I_q[x, z] and KL(q_agg || p) over the test set's aggregated
  posterior (see ``metrics.elbo_surgery`` for the estimators and their bias; I_q <= log_n).
* ``active_units`` / ``active_unit_variances``: dims with Cov_x(E_q[z_d]) above
  ``active_units_threshold`` (0.01), and that variance per dim; ``latent_dim``.
* ``kl_per_dim``: (1/N) sum_n KL(q_phi(z_d|x_n) || N(0, 1)) per dim; ``kl_per_dim_reference``
  says whether that is the prior's KL (N(0, I)) or only a unit-Gaussian reference (flow).
* ``sample_quality``: the classifier's judgement of ``--samples`` prior samples (keys in
  ``latentlab.sample_quality``): confident_share, class_entropy_bits, class_histogram,
  frechet_distance, mean_max_prob, n_samples.

A Gumbel-softmax VAE (``posterior="categorical"``) gets the same ELBO, KL (exact categorical)
and IWAE keys, ``categories`` and ``sample_quality``; ELBO surgery, active units and the
per-dim KL assume Gaussian posteriors, so ``surgery`` says "n/a" instead. A plain
autoencoder (``posterior="deterministic"``) has no ELBO: it gets ``test_rec_nll`` (the
Bernoulli NLL of its decoded code), ``code_mean`` / ``code_std`` (per dim, over the test
codes), ``code_gaussian_kl`` (KL(N(code_mean, diag code_std^2) || N(0, I)): how far the
codes are from what ``sample`` draws), and ``sample_quality`` of decoded N(0, I) draws.

For a classifier: ``test_accuracy`` and ``test_nll`` (cross-entropy, nats). A VQ-VAE, one- or
two-level, is scored by ``latentlab.vq_eval.evaluate_vqvae`` (a two-level model's usage and
bits per code per level carry ``top_`` / ``bottom_`` in their keys). Every run also writes ``eval_command``,
``eval_wall_time_s``, ``eval_timings_s``, ``eval_device``, ``eval_date``, ``eval_seed``,
``eval_n_test``, ``eval_limit`` (null on the full test set; a number flags a partial
run) and ``test_scored: true`` (a selection run's ``false`` from ``latentlab.train`` gives
way); a VAE run also ``eval_binarization_seed`` (the seed of the test set's bits).

>>> EvalConfig(limit=64).binarization_seed == data.TEST_BINARIZATION_SEED
True
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentlab import data, vq_eval
from latentlab.checkpoint import load_checkpoint, update_metrics
from latentlab.device import device_description, pick_device
from latentlab.metrics import (
    ACTIVE_UNIT_THRESHOLD,
    ElboTerms,
    active_units,
    code_statistics,
    decodes_per_call,
    elbo_surgery,
    elbo_terms,
    iwae_log_px,
    kl_per_dim,
)
from latentlab.sample_quality import classify, load_classifier, sample_quality

QualityFn = Callable[[torch.Tensor, str], dict]
NOT_GAUSSIAN = "n/a: ELBO surgery, active units and per-dim KL need Gaussian posteriors"


@dataclass
class EvalConfig:
    """How to evaluate; the defaults give the reported numbers.

    >>> EvalConfig(k=8, limit=64, samples=64).limit
    64
    """

    k: int = 1000                       # IWAE samples per image: the literature's standard
    limit: int = 0                      # score the first N test images only (0 = all 10,000)
    binarization_seed: int = data.TEST_BINARIZATION_SEED  # the test bits every VAE is scored on
    samples: int = 10000                # prior samples judged by the classifier (0 = skip)
    batch_size: int = 0                 # decoder passes per forward call (0 = 512 CPU, 16384 GPU)
    seed: int = 0
    elbo_samples: int = 16              # z per image for the ELBO: flow-KL noise ~ 1/4 of 1 sample
    surgery_points: int = 0             # z drawn from q_agg for ELBO surgery (0 = one per image)
    classifier: str = ""                # judge checkpoint (default checkpoints/{dataset}-classifier)
    device: str = "auto"                # auto = CUDA when present
    progress: bool = True
    nll_only: bool = False              # only -L_k, kept as test_nll_iwae_k{k} beside the rest

    def __post_init__(self):
        if self.k < 1 or self.elbo_samples < 1:
            raise ValueError("k and elbo_samples must be >= 1")
        if min(self.limit, self.samples, self.surgery_points, self.batch_size) < 0:
            raise ValueError("limit, samples, surgery_points and batch_size must be >= 0 "
                             "(0 = the default)")


# ----------------------------------------------------------------------------- helpers

def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _round(value, digits: int):
    """Round a float or a list of floats for metrics.json."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return round(float(value), digits)


def _test_images(dataset: str, limit: int, binarization_seed: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images (N, 1, 28, 28) and labels (N,): grey, or binarized with the given seed."""
    x, y = data.load_split(dataset, train=False)
    if binarization_seed is not None:
        x = data.binarized_test_set(dataset, binarization_seed)
    return (x[:limit], y[:limit]) if limit else (x, y)


def _generator(device: torch.device, seed: int, stream: int) -> torch.Generator:
    """One generator per metric, so changing e.g. k leaves the other metrics' draws alone."""
    return torch.Generator(device=device).manual_seed(seed * 1009 + stream)


@torch.no_grad()
def prior_samples(model: nn.Module, n: int, batch_size: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """n images (n, 1, 28, 28) in [0, 1] from ``model.sample``, in batches, on the CPU."""
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    return torch.cat([model.sample(s, generator=generator).cpu() for s in sizes])


# ----------------------------------------------------------------------------- per kind

def _iwae(model: nn.Module, x: torch.Tensor, cfg: EvalConfig, decodes: int) -> torch.Tensor:
    """L_k(x) per image (N,), on the IWAE draw's own random stream."""
    chunk = min(cfg.k, decodes)
    return iwae_log_px(model, x, cfg.k, chunk=chunk, batch_size=max(1, decodes // chunk),
                       generator=_generator(_device(model), cfg.seed, 2), progress=cfg.progress)


def tighter_nll(model: nn.Module, dataset: str, cfg: EvalConfig) -> dict:
    """-L_k alone, for an estimate with another k kept beside the reported one.

    L_k tightens towards log p(x) as k grows, so a larger k measures the same -log p(x) more
    closely (published MNIST figures use k = 5000); ``sem`` is the standard error over images.
    """
    if getattr(model.config, "posterior", "") not in ("gaussian", "categorical"):
        raise ValueError("only a VAE with a posterior density has an IWAE bound")
    x, _ = _test_images(dataset, cfg.limit, cfg.binarization_seed)
    nll = -_iwae(model, x, cfg, cfg.batch_size or decodes_per_call(_device(model)))  # (N,)
    return {"nats": _round(nll.mean(), 3), "sem": _round(nll.std() / len(nll) ** 0.5, 3),
            "k": cfg.k, "images": len(x), "seed": cfg.seed,
            "binarization_seed": cfg.binarization_seed}


def _elbo_numbers(model: nn.Module, x: torch.Tensor, cfg: EvalConfig, decodes: int,
                  timings: dict) -> tuple[dict, ElboTerms]:
    """ELBO parts and the IWAE bound (any posterior with a density)."""
    device, t = _device(model), time.time()
    terms = elbo_terms(model, x, cfg.elbo_samples, decodes, _generator(device, cfg.seed, 1))
    timings["elbo"], t = time.time() - t, time.time()
    log_px = _iwae(model, x, cfg, decodes)
    timings["iwae"] = time.time() - t
    return {
        "test_elbo": _round(terms.elbo.mean(), 3),
        "test_rec_nll": _round(terms.rec_nll.mean(), 3),
        "test_kl": _round(terms.kl.mean(), 3),
        "elbo_samples": cfg.elbo_samples,
        "test_nll_iwae": _round(-log_px.mean(), 3),
        "iwae_k": cfg.k,
        "iwae_gain": _round(log_px.mean() - terms.elbo.mean(), 3),
    }, terms


def _gaussian_numbers(model: nn.Module, terms: ElboTerms, cfg: EvalConfig, timings: dict) -> dict:
    """ELBO surgery, active units and per-dim KL: they need q_phi(z|x) = N(mu, sigma^2)."""
    t = time.time()
    surgery = elbo_surgery(terms.mu, terms.logvar, model.prior, terms.rec_nll, terms.kl,
                           cfg.surgery_points or None, _generator(torch.device("cpu"), cfg.seed, 3))
    timings["surgery"] = time.time() - t
    n_active, variances = active_units(terms.mu)
    normal = model.config.prior == "normal"
    return {
        "elbo_surgery": {k: v if isinstance(v, int) else _round(v, 3) for k, v in surgery.items()},
        "latent_dim": terms.mu.shape[1],
        "active_units": n_active,
        "active_units_threshold": ACTIVE_UNIT_THRESHOLD,
        "active_unit_variances": _round(variances, 4),
        "kl_per_dim": _round(kl_per_dim(terms.mu, terms.logvar), 3),
        "kl_per_dim_reference": "prior N(0, I)" if normal
        else "N(0, 1) per dim (the flow prior p_lambda does not factorise)",
    }


def _autoencoder_numbers(model: nn.Module, x: torch.Tensor, decodes: int, timings: dict) -> dict:
    """A plain autoencoder: reconstruction NLL of its code and how Gaussian the codes are."""
    t = time.time()
    terms = elbo_terms(model, x, 1, decodes)          # z = the code: one "sample" is exact
    timings["reconstruction"] = time.time() - t
    stats = code_statistics(terms.mu)                                         # codes (N, D)
    return {
        "test_rec_nll": _round(terms.rec_nll.mean(), 3),
        "latent_dim": terms.mu.shape[1],
        "code_mean": _round(stats["mean"], 4),
        "code_std": _round(stats["std"], 4),
        "code_gaussian_kl": _round(stats["gaussian_kl"], 3),
        "elbo": "n/a: an autoencoder has no posterior density (no ELBO, no IWAE bound)",
        "surgery": NOT_GAUSSIAN,
    }


def evaluate_vae(model: nn.Module, dataset: str, cfg: EvalConfig,
                 quality_fn: QualityFn | None = None) -> dict:
    """The numbers each posterior allows (see the module docstring) and sample quality."""
    x, _ = _test_images(dataset, cfg.limit, cfg.binarization_seed)
    device, timings = _device(model), {}
    decodes = cfg.batch_size or decodes_per_call(device)
    posterior = model.config.posterior
    if posterior == "deterministic":
        out = _autoencoder_numbers(model, x, decodes, timings)
    else:
        out, terms = _elbo_numbers(model, x, cfg, decodes, timings)
        if posterior == "gaussian":
            out.update(_gaussian_numbers(model, terms, cfg, timings))
        else:
            out.update(latent_dim=model.config.latent_dim, categories=model.config.categories,
                       surgery=NOT_GAUSSIAN)
    if cfg.samples and quality_fn is not None:
        t = time.time()
        images = prior_samples(model, cfg.samples, decodes, _generator(device, cfg.seed, 4))
        out["sample_quality"] = quality_fn(images, dataset)
        timings["sample_quality"] = time.time() - t
    out["eval_timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    out["eval_binarization_seed"] = cfg.binarization_seed
    return out


@torch.no_grad()
def evaluate_classifier(model: nn.Module, dataset: str, cfg: EvalConfig) -> dict:
    """Accuracy and cross-entropy on the grey test images."""
    x, y = _test_images(dataset, cfg.limit)
    device = _device(model)
    logits = torch.cat([model(xb.to(device)).float().cpu() for xb in x.split(250)])  # (N, 10)
    return {"test_accuracy": _round((logits.argmax(-1) == y).double().mean(), 5),
            "test_nll": _round(F.cross_entropy(logits, y), 4)}


def evaluate_vqvae(model: nn.Module, dataset: str, cfg: EvalConfig,
                   quality_fn: QualityFn | None = None,
                   label_fn: vq_eval.LabelFn | None = None) -> dict:
    """Reconstructions, codebook, code priors and samples: ``latentlab.vq_eval``."""
    return vq_eval.evaluate_vqvae(model, dataset, n_samples=cfg.samples,
                                  sample_quality_fn=quality_fn, seed=cfg.seed, limit=cfg.limit,
                                  label_fn=label_fn)


def evaluate_model(model: nn.Module, kind: str, dataset: str, cfg: EvalConfig,
                   quality_fn: QualityFn | None = None,
                   label_fn: vq_eval.LabelFn | None = None) -> dict:
    """Dispatch on the checkpoint kind; returns the new metrics (not yet written)."""
    model.eval()
    if kind == "vae":
        return evaluate_vae(model, dataset, cfg, quality_fn)
    if kind == "classifier":
        return evaluate_classifier(model, dataset, cfg)
    if kind in ("vqvae", "vqvae2"):
        return evaluate_vqvae(model, dataset, cfg, quality_fn, label_fn)
    raise ValueError(f"no evaluation for model kind {kind!r}; known: vae, classifier, vqvae, "
                     "vqvae2")


def _labels(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The judge's most likely class of each image (N,)."""
    return classify(classifier, images)[1].argmax(-1)


def evaluate_checkpoint(folder: str | os.PathLike, cfg: EvalConfig, command: str = "") -> dict:
    """Load, evaluate, merge into ``metrics.json``; returns the new metrics."""
    device = pick_device(cfg.device)
    model, info = load_checkpoint(folder, device)
    dataset = data.check_dataset(getattr(info.config, "dataset", "") or "")
    quality_fn = label_fn = None
    if info.kind in ("vae", "vqvae", "vqvae2") and cfg.samples and not cfg.nll_only:
        judge = load_classifier(dataset, cfg.classifier or None).to(device)
        quality_fn = functools.partial(sample_quality, classifier=judge)
        label_fn = functools.partial(_labels, judge)
    start = time.time()
    if cfg.nll_only:
        return _record_tighter_nll(model, info, dataset, cfg, command, device)
    new = evaluate_model(model, info.kind, dataset, cfg, quality_fn, label_fn)
    n_full = len(data.load_split(dataset, train=False)[1])
    new.update({
        "eval_command": command or f"python -m latentlab.evaluate {shlex.quote(str(folder))}",
        "eval_wall_time_s": round(time.time() - start, 1),
        "eval_device": device_description(device),
        "eval_date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "eval_seed": cfg.seed,
        "eval_n_test": min(cfg.limit, n_full) if cfg.limit else n_full,
        "eval_limit": cfg.limit or None,
        "test_scored": True,
    })
    update_metrics(info.path, new)
    return new


def _record_tighter_nll(model: nn.Module, info, dataset: str, cfg: EvalConfig, command: str,
                        device: torch.device) -> dict:
    """``--nll-only``: -L_k under its own key, so the reported k = 1000 figures stay."""
    start = time.time()
    record = tighter_nll(model.eval(), dataset, cfg)
    record.update(command=command, wall_time_s=round(time.time() - start, 1),
                  device=device_description(device),
                  date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    new = {f"test_nll_iwae_k{cfg.k}": record}
    update_metrics(info.path, new)
    return new


# ----------------------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None = None) -> tuple[str, EvalConfig, int]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint folder, e.g. checkpoints/mnist-vae-z16")
    d = EvalConfig()
    p.add_argument("--k", type=int, default=d.k, help="IWAE importance samples per image")
    p.add_argument("--limit", "--subset", dest="limit", type=int, default=d.limit,
                   help="first N test images only, for tests and smoke runs (0 = all)")
    p.add_argument("--samples", type=int, default=d.samples,
                   help="prior samples for sample quality (0 = skip)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="decoder passes per forward call (0 = 512 on CPU, 16384 on GPU)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--binarization-seed", type=int, default=d.binarization_seed,
                   help="seed of the test set's Bernoulli bits (VAEs; reported numbers use "
                        f"{d.binarization_seed})")
    p.add_argument("--elbo-samples", type=int, default=d.elbo_samples)
    p.add_argument("--surgery-points", type=int, default=d.surgery_points,
                   help="z samples from q_agg for ELBO surgery (0 = one per test image)")
    p.add_argument("--classifier", default=d.classifier,
                   help="classifier checkpoint judging samples (default checkpoints/{dataset}-classifier)")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--nll-only", action="store_true",
                   help="only the IWAE bound, recorded as test_nll_iwae_k{K} beside the other "
                        "figures (a VAE with a posterior density)")
    args = p.parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k in asdict(d)}
    try:
        cfg = EvalConfig(**fields, progress=not args.no_progress)
    except ValueError as exc:
        p.error(str(exc))
    return args.checkpoint, cfg, args.threads


def evaluate_main(argv: list[str] | None = None) -> dict:
    folder, cfg, threads = parse_args(argv)
    if threads:
        torch.set_num_threads(threads)
    if not Path(folder).is_dir():
        raise SystemExit(f"checkpoint folder {folder} does not exist")
    command = "python -m latentlab.evaluate " + shlex.join(sys.argv[1:] if argv is None else argv)
    new = evaluate_checkpoint(folder, cfg, command)
    for key, value in new.items():
        print(f"{key}: {json.dumps(value)}")
    return new


# ----------------------------------------------------------------------------- quick numbers

@torch.no_grad()
def quick_metrics(model: nn.Module, dataset: str, kind: str, batch_size: int = 1000) -> dict:
    """Cheap test-set numbers written right after training (the full CLI adds the rest)."""
    device = _device(model)
    if kind == "vae":
        x = data.binarized_test_set(dataset)
        outs = [model(xb.to(device)) for xb in x.split(batch_size)]
        if model.config.posterior == "deterministic":  # no ELBO: the reconstruction NLL
            return {"test_rec_nll": round(torch.cat([o.rec_nll.cpu() for o in outs]).mean().item(), 3)}
        return {"test_elbo": round(torch.cat([o.elbo.cpu() for o in outs]).mean().item(), 3)}
    if kind == "classifier":
        x, y = data.load_split(dataset, train=False)
        pred = torch.cat([model(xb.to(device)).argmax(-1).cpu() for xb in x.split(batch_size)])
        return {"test_accuracy": round((pred == y).float().mean().item(), 5)}
    if kind in ("vqvae", "vqvae2"):
        return vq_eval.reconstruction_metrics(model, dataset)
    raise ValueError(f"no quick metrics for model kind {kind!r}; known: vae, classifier, vqvae, "
                     "vqvae2")


if __name__ == "__main__":
    evaluate_main()
