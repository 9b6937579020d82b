"""Classifier-based sample quality with a stub judge whose logits are written into the images."""

import math

import pytest
import torch
from torch import nn

from latentlab import sample_quality as sq
from latentlab import settings


class StubClassifier(nn.Module):
    """Logits = 10 * the first ten pixels of the top row; features = 8 row means."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(10.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :8, :].mean(-1)                            # (B, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x[:, 0, 0, :10]                       # (B, 10)


def crafted_images(confident_per_class: int, unsure: int) -> torch.Tensor:
    """Class c written as a single lit pixel (0, c); 'unsure' images have no lit pixel."""
    n = 10 * confident_per_class + unsure
    x = torch.zeros(n, 1, 28, 28)
    for i in range(10 * confident_per_class):
        x[i, 0, 0, i % 10] = 1.0   # softmax top prob e^10 / (e^10 + 9) > 0.9
    return x                        # unsure ones: uniform 0.1, argmax 0


# ----------------------------------------------------------------------------- Frechet distance

def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(500, 6, generator=g) @ torch.randn(6, 6, generator=g)   # correlated features
    m, c = sq.gaussian_stats(f)
    assert sq.frechet_distance(m, c, m, c) == pytest.approx(0.0, abs=1e-6)
    shift = torch.zeros(6, dtype=torch.float64)
    distances = []
    for step in (0.5, 1.0, 2.0):
        shift[0] = step
        distances.append(sq.frechet_distance(m + shift, c, m, c))
        assert distances[-1] == pytest.approx(step ** 2, rel=1e-6)  # equal covariances: ||shift||^2
    assert distances == sorted(distances)


def test_frechet_distance_trace_term_for_commuting_covariances():
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([4.0, 1.0, 0.25])
    zero = torch.zeros(3)
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum().item()        # sum_i (sqrt a_i - sqrt b_i)^2
    assert sq.frechet_distance(zero, torch.diag(a), zero, torch.diag(b)) == pytest.approx(expected)


def test_frechet_distance_handles_singular_covariances():
    f = torch.randn(5, 20)                                      # fewer samples than dims
    m, c = sq.gaussian_stats(f)
    d = sq.frechet_distance(m, c, torch.zeros(20), torch.eye(20))
    assert math.isfinite(d) and d > 0


# ----------------------------------------------------------------------------- class statistics

def test_confident_share_and_entropy_on_crafted_logits():
    stub = StubClassifier()
    result = sq.sample_quality(crafted_images(3, 10), "mnist", classifier=stub)
    assert result["n_samples"] == 40
    assert result["confident_share"] == pytest.approx(30 / 40)
    assert result["class_histogram"] == [13] + [3] * 9
    p = torch.tensor([13] + [3] * 9, dtype=torch.float64) / 40
    assert result["class_entropy_bits"] == pytest.approx(-(p * p.log2()).sum().item(), abs=1e-4)
    assert result["frechet_distance"] >= 0
    assert stub.training  # the judge's train/eval mode is restored afterwards


def test_uniform_classes_reach_maximal_entropy():
    result = sq.sample_quality(crafted_images(5, 0), "mnist", classifier=StubClassifier())
    assert result["confident_share"] == 1.0
    assert result["class_entropy_bits"] == pytest.approx(math.log2(10), abs=1e-4)


def test_reference_statistics_are_cached_per_classifier():
    stub = StubClassifier()
    first = sq.reference_stats(stub, "mnist")
    assert sq.reference_stats(stub, "mnist") is first
    assert sq.reference_stats(StubClassifier(), "mnist") is not first


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("images", [torch.zeros(4, 28, 28), torch.zeros(4, 3, 28, 28),
                                    torch.full((4, 1, 28, 28), 2.0), torch.zeros(0, 1, 28, 28)])
def test_bad_images_are_refused(images):
    with pytest.raises(ValueError):
        sq.sample_quality(images, "mnist", classifier=StubClassifier())


def test_classifier_from_another_data_set_is_refused():
    stub = StubClassifier()
    stub.config = type("Cfg", (), {"dataset": "fashion"})()
    with pytest.raises(ValueError, match="fashion"):
        sq.sample_quality(crafted_images(1, 0), "mnist", classifier=stub)


def test_missing_classifier_checkpoint_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="latentlab.train --model classifier"):
        sq.load_classifier("mnist", tmp_path / "nothing-here")


def test_default_classifier_lives_in_the_configured_checkpoint_folder(tmp_path):
    try:
        settings.configure(checkpoints=tmp_path)
        assert sq.classifier_path("fashion-mnist") == tmp_path / "fashion-classifier"
        with pytest.raises(FileNotFoundError, match=str(tmp_path)):
            sq.load_classifier("mnist")
    finally:
        settings.reset()
