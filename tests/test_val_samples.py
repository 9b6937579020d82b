"""scripts/val_samples.py: a VQ-VAE prior's samples judged against the validation images,
with where their ink sits, and nothing but VQ-VAEs accepted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from latentlab.checkpoint import save_checkpoint
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "val_samples.py"
spec = importlib.util.spec_from_file_location("val_samples", SCRIPT)
val_samples = importlib.util.module_from_spec(spec)
spec.loader.exec_module(val_samples)


def _dots(positions: list[tuple[int, int]]) -> torch.Tensor:
    """One image (N, 1, 28, 28) per (row, column), ink on that pixel only."""
    x = torch.zeros(len(positions), 1, 28, 28)
    for i, (r, c) in enumerate(positions):
        x[i, 0, r, c] = 1.0
    return x


def test_centres_are_the_ink_weighted_mean_position():
    x = _dots([(3, 20), (14, 14)])
    x[1, 0, 14, 16] = 1.0                       # two equal dots: the centre lies between them
    assert val_samples.centres(x).tolist() == [[3.0, 20.0], [14.0, 15.0]]
    assert val_samples.centres(torch.zeros(1, 1, 28, 28)).isfinite().all()   # no ink: no NaN


def test_centre_offsets_measure_the_distance_from_the_reference():
    offsets = val_samples.centre_offsets(_dots([(14, 14), (17, 18)]), torch.tensor([14.0, 14.0]))
    assert torch.allclose(offsets, torch.tensor([0.0, 5.0], dtype=torch.float64))


def test_judged_samples_split_the_confident_share_by_offset(tmp_path: Path):
    torch.manual_seed(0)
    config = VQVAEConfig(num_codes=16, code_dim=8, channels=4, prior_dim=16, prior_layers=1,
                         prior_heads=2)
    folder = save_checkpoint(tmp_path / "vq", VQVAE(config), "vqvae", config, {})
    x_val = _dots([(14, 14)] * 4 + [(10, 18)] * 4)
    row = val_samples.judge_samples(folder, x_val, n=40, batch_size=16)
    assert row["n"] == 40 and 0 <= row["confident_share"] <= 1
    far = row["beyond_1px_share"]
    parts = [(1 - far, row["confident_within_1px"]), (far, row["confident_beyond_1px"])]
    mixed = sum(w * s for w, s in parts if s is not None)
    assert mixed == pytest.approx(row["confident_share"], abs=1e-3)
    assert row["val_centre_offset_px"] == pytest.approx(2 * 2**0.5, abs=1e-3)  # 4 px apart diagonally
    assert row["frechet_to_val"] >= 0
    again = val_samples.judge_samples(folder, x_val, n=40, batch_size=16)
    assert again == row                                                        # seeded


def test_a_model_without_a_code_prior_is_refused(tmp_path: Path):
    config = VAEConfig(latent_dim=2, channels=4, hidden=16)
    folder = save_checkpoint(tmp_path / "vae", VAE(config), "vae", config, {})
    with pytest.raises(ValueError, match="only VQ-VAEs"):
        val_samples.judge_samples(folder, _dots([(14, 14)]), n=4)


def _rows(*shares: float) -> list[dict]:
    return [{"folder": f"fit{i}", "confident_share": s} for i, s in enumerate(shares)]


@pytest.mark.parametrize(("shares", "nll", "target", "chosen"), [
    ((0.62, 0.68, 0.70), (3.04, 3.10, 3.12), 0.65, "fit1"),   # the best passing fit, not the best NLL
    ((0.62, 0.68, 0.70), (3.04, 3.10, 3.12), 0.69, "fit2"),
    ((0.62, 0.64), (3.04, 3.10), 0.65, "fit0"),                # none passes: lowest NLL of all
    ((0.65,), (3.2,), 0.65, "fit0"),                           # the target itself passes
])
def test_choose_keeps_the_lowest_validation_nll_among_fits_with_clear_samples(
        shares, nll, target, chosen):
    rows = _rows(*shares)
    out = val_samples.choose(rows, {r["folder"]: v for r, v in zip(rows, nll)}, target)
    assert out["chosen"] == chosen
    assert out["val_bits_per_code"] == nll[int(chosen[-1])]
    assert ("none reaches" in out["rule"]) == all(s < target for s in shares)


def test_choose_refuses_fits_without_a_validation_nll():
    with pytest.raises(ValueError, match="no validation NLL for \\['fit1'\\]"):
        val_samples.choose(_rows(0.7, 0.7), {"fit0": 3.0}, 0.65)
    with pytest.raises(ValueError, match="no selection fits"):
        val_samples.choose([], {}, 0.65)


def test_the_validation_nll_is_read_from_the_fit_and_absent_for_a_refit(tmp_path: Path):
    config = VQVAEConfig(num_codes=16, code_dim=8, channels=4, prior_dim=16, prior_layers=1,
                         prior_heads=2)
    fit = save_checkpoint(tmp_path / "fit", VQVAE(config), "vqvae", config,
                          {"prior_val_nll_bits_per_code": 3.1})
    refit = save_checkpoint(tmp_path / "refit", VQVAE(config), "vqvae", config, {})
    assert val_samples._val_nll(str(fit)) == {str(fit): 3.1}
    assert val_samples._val_nll(str(refit)) == {}
