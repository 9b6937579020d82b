"""Print the README's results table from the shipped checkpoints' metrics.json files.

    python scripts/results_table.py [checkpoints]

Every number comes from ``python -m latentlab.evaluate`` (VAEs, VQ-VAEs) or the training
command (classifier accuracy); a cell is '-' when that evaluation has not been run, and
the IWAE column names its k, so a partial evaluation never passes for a full one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SWEEP = ("0.9", "0.8", "0.7")  # learned-prior temperatures, as latentlab.vq_eval writes them


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _minutes(m: dict) -> str:
    t = m.get("train_wall_time_s")
    return "-" if t is None else f"{t / 60:.0f}"


def vae_row(name: str, m: dict) -> str:
    cfg = m.get("train_config", {})
    s = m.get("elbo_surgery", {})
    q = m.get("sample_quality", {})
    nll = m.get("test_nll_iwae")
    k = m.get("iwae_k")
    partial = " (partial)" if m.get("eval_limit") else ""
    return (f"| `{name}` | {_f(nll)}{f' (k={k})' if nll is not None else ''}{partial} "
            f"| {_f(-m['test_elbo'] if 'test_elbo' in m else None)} | {_f(m.get('test_kl'))} "
            f"| {_f(s.get('mutual_information'))} | {_f(s.get('marginal_kl'))} "
            f"| {m.get('active_units', '-')}/{m.get('latent_dim', '-')} "
            f"| {_f(q.get('confident_share'), 3)} | {_f(q.get('class_entropy_bits'))} "
            f"| {_f(q.get('frechet_distance'), 1)} | {cfg.get('epochs', '-')} | {_minutes(m)} |")


def vq_row(name: str, m: dict) -> str:
    def pair(key: str, digits: int) -> str:
        return f"{_f(m.get('learned_prior_' + key), digits)} / {_f(m.get('uniform_prior_' + key), digits)}"

    return (f"| `{name}` | {_f(m.get('test_mse'), 4)} | {_f(m.get('test_psnr_db'))} "
            f"| {_f(m.get('codebook_usage'), 3)} | {_f(m.get('codebook_perplexity'), 1)} "
            f"| {m.get('dead_codes', '-')} | {_f(m.get('prior_test_nll_bits_per_code'), 3)} "
            f"| {pair('confident_share', 3)} | {pair('frechet_distance', 1)} | {_minutes(m)} |")


def vq_quality_row(name: str, m: dict) -> str:
    """Confident share of learned-prior samples at each temperature, next to the uniform
    prior and two references: reconstructions (what a perfect prior gives at T = 1) and the
    real test images."""
    sweep = m.get("learned_prior_temperature_sweep", {})
    temps = " | ".join(_f(sweep.get(t, {}).get("confident_share"), 3) for t in SWEEP)
    return (f"| `{name}` | {_f(m.get('learned_prior_confident_share'), 3)} | {temps} "
            f"| {_f(m.get('uniform_prior_confident_share'), 3)} "
            f"| {_f(m.get('reconstruction_confident_share'), 3)} "
            f"| {_f(m.get('test_images_confident_share'), 3)} |")


def main(root: str = "checkpoints") -> None:
    rows = {"vae": [], "vqvae": [], "vq_quality": [], "classifier": []}
    for path in sorted(Path(root).iterdir()):
        try:
            kind = json.loads((path / "config.json").read_text())["kind"]
            m = json.loads((path / "metrics.json").read_text())
        except (OSError, KeyError, ValueError):
            continue
        if kind == "vae":
            rows["vae"].append(vae_row(path.name, m))
        elif kind == "vqvae":
            rows["vqvae"].append(vq_row(path.name, m))
            rows["vq_quality"].append(vq_quality_row(path.name, m))
        elif kind == "classifier":
            rows["classifier"].append(
                f"| `{path.name}` | {_f(100 * m['test_accuracy'])} % | {_minutes(m)} |")
    print("| model | test NLL (IWAE) | -ELBO | avg KL | I_q[x,z] | marginal KL | active units "
          "| confident share | class entropy (bits) | Frechet dist. | epochs | train min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows["vae"]))
    if rows["vqvae"]:
        print("\n| model | test MSE | PSNR (dB) | codebook usage | perplexity | dead codes "
              "| prior bits/code | confident share learned / uniform "
              "| Frechet learned / uniform | train min |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows["vqvae"]))
        print("\n| confident share | learned prior, T=1 | "
              + " | ".join(f"T={t}" for t in SWEEP)
              + " | uniform prior | reconstructions | real test images |")
        print("|---" * (4 + len(SWEEP)) + "|---|")
        print("\n".join(rows["vq_quality"]))
    print("\n| classifier | test accuracy | train min |\n|---|---|---|")
    print("\n".join(rows["classifier"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
