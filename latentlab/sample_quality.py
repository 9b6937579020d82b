"""Sample quality judged by a small classifier trained on the real (grey) images.

``sample_quality(images, dataset)`` returns these keys (metrics.json keeps them under
``sample_quality``):

* ``n_samples``: how many images were judged.
* ``confident_share``: share of samples whose top softmax probability is >= 0.9, i.e. that
  the classifier reads as one clear digit / garment (real test images score ~0.98).
* ``class_histogram``: how many samples fall in each class (argmax), in the order of
  ``data.CLASS_NAMES``.
* ``class_entropy_bits``: entropy of that histogram in bits; log2(10) = 3.32 when every class
  is drawn equally often, lower when the model prefers or drops classes.
* ``frechet_distance``: ||m_s - m_t||^2 + tr(S_s + S_t - 2 (S_s S_t)^{1/2}) between Gaussians
  (mean m, covariance S) fitted to the classifier's penultimate features
  (``classifier.features``) of the samples and of the 10,000 grey test images. It is FID's
  formula in a small MNIST classifier's feature space instead of Inception's, so the number
  is comparable only between models judged by the same classifier checkpoint.
* ``mean_max_prob``: the mean of the top softmax probability.

Grey-level samples (pixel probabilities) are fed as they are: the classifier was trained on
grey images. The classifier loads once from ``checkpoints/{dataset}-classifier`` (the
folder ``latentlab.settings.current().checkpoints``).

>>> real = data.load_split("mnist", train=False)[0][:500]
>>> q = sample_quality(real, "mnist")
>>> q["n_samples"], sum(q["class_histogram"]), q["confident_share"] > 0.9
(500, 500, True)
"""

from __future__ import annotations

import itertools
import math
import os
import weakref
from pathlib import Path

import torch
from torch import nn

from latentlab import data, settings

CONFIDENCE = 0.9        # "confident" = top class probability at least this
BATCH_SIZE = 250        # images per classifier call: activations stay under 32 MB (CPU malloc reuse)

_classifiers: dict[str, nn.Module] = {}                          # resolved path -> model
_reference: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # classifier -> {dataset: stats}


# ----------------------------------------------------------------------------- helpers

def _device(module: nn.Module) -> torch.device:
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def check_images(images: torch.Tensor) -> None:
    """Raise a clear ValueError unless ``images`` is (N, 1, 28, 28) with values in [0, 1]."""
    if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"expected images of shape (N, 1, 28, 28), got {shape}")
    if len(images) == 0:
        raise ValueError("need at least one image")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must be pixel values (probabilities) in [0, 1]")


@torch.no_grad()
def classify(classifier: nn.Module, images: torch.Tensor,
             batch_size: int = BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features (N, F), class probabilities (N, 10)), both float64 on the CPU."""
    was_training = classifier.training
    classifier.eval()  # dropout off, batch-norm running statistics
    device = _device(classifier)
    # one pass gives both the features and the logits when the model offers that verb
    from_features = getattr(classifier, "logits_from_features", None)
    feats, probs = [], []
    try:
        for xb in images.split(batch_size):
            xb = xb.to(device, torch.float32)
            f = classifier.features(xb)                                        # (B, F)
            logits = from_features(f) if from_features else classifier(xb)   # (B, 10)
            feats.append(f.double().cpu())
            probs.append(torch.softmax(logits.double(), -1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    f = features.double()
    mean = f.mean(0)
    centred = f - mean                                                        # (N, F)
    cov = centred.T @ centred / max(len(f) - 1, 1)
    return mean, cov


def _psd_sqrt(cov: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix by eigen-decomposition (negative round-off -> 0)."""
    w, v = torch.linalg.eigh(cov)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor,
                     cov2: torch.Tensor) -> float:
    """d^2 = ||m1 - m2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) between N(m1, S1) and N(m2, S2).

    tr (S1 S2)^{1/2} is taken as sum_i sqrt(lambda_i) with lambda_i the eigenvalues of the
    symmetric PSD matrix S1^{1/2} S2 S1^{1/2}, which is similar to S1 S2. Unlike
    scipy.linalg.sqrtm this stays real and handles the singular covariances of few samples.
    """
    mean1, cov1, mean2, cov2 = (t.double() for t in (mean1, cov1, mean2, cov2))
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mean1 - mean2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return max(d2.item(), 0.0)


def entropy_bits(counts: torch.Tensor) -> float:
    """H = -sum_c p_c log2 p_c of a histogram (empty classes contribute 0)."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())


# ----------------------------------------------------------------------------- classifier

def classifier_path(dataset: str) -> Path:
    """The default judge's folder for ``dataset`` among the shipped checkpoints."""
    return settings.current().checkpoints / f"{data.check_dataset(dataset)}-classifier"


def load_classifier(dataset: str, path: str | os.PathLike | None = None) -> nn.Module:
    """The judge for ``dataset``, loaded once per path (default ``checkpoints/{dataset}-classifier``)."""
    from latentlab.checkpoint import load_checkpoint

    folder = Path(path) if path else classifier_path(dataset)
    key = str(folder.resolve())
    if key not in _classifiers:
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"sample quality needs a trained classifier at {folder}; train one with "
                f"`python -m latentlab.train --model classifier --dataset {data.check_dataset(dataset)} "
                f"--out {folder}` (or pass --samples 0 to skip sample quality)")
        model, info = load_checkpoint(folder)
        if info.kind != "classifier":
            raise ValueError(f"{folder} holds a {info.kind!r} checkpoint, not a classifier")
        _classifiers[key] = model
    return _classifiers[key]


def reference_stats(classifier: nn.Module, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature mean and covariance of the grey test set, cached per classifier and data set."""
    dataset = data.check_dataset(dataset)
    per_classifier = _reference.setdefault(classifier, {})
    if dataset not in per_classifier:
        x, _ = data.load_split(dataset, train=False)
        per_classifier[dataset] = gaussian_stats(classify(classifier, x)[0])
    return per_classifier[dataset]


# ----------------------------------------------------------------------------- main entry

def sample_quality(images: torch.Tensor, dataset: str, classifier: nn.Module | None = None) -> dict:
    """Judge generated images (N, 1, 28, 28) in [0, 1]; keys as in the module docstring."""
    check_images(images)
    dataset = data.check_dataset(dataset)
    clf_dataset = getattr(getattr(classifier, "config", None), "dataset", None)
    if clf_dataset is not None and data.check_dataset(clf_dataset) != dataset:
        raise ValueError(f"the classifier was trained on {clf_dataset!r}, not {dataset!r}")
    classifier = classifier if classifier is not None else load_classifier(dataset)
    features, probs = classify(classifier, images)
    top, label = probs.max(-1)                                                # (N,) each
    counts = torch.bincount(label, minlength=probs.shape[-1])
    mean_s, cov_s = gaussian_stats(features)
    mean_t, cov_t = reference_stats(classifier, dataset)
    return {
        "n_samples": len(images),
        "confident_share": round(float((top >= CONFIDENCE).double().mean()), 4),
        "class_entropy_bits": round(entropy_bits(counts), 4) + 0.0,  # no -0.0
        "max_entropy_bits": round(math.log2(probs.shape[-1]), 4),
        "class_histogram": counts.tolist(),
        "frechet_distance": round(frechet_distance(mean_s, cov_s, mean_t, cov_t), 3),
        "mean_max_prob": round(float(top.mean()), 4),
    }
