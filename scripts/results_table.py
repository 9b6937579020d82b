"""Print the README's results tables from the shipped checkpoints' metrics.json files.

    python scripts/results_table.py [checkpoints]

Every number comes from ``python -m latentlab.evaluate`` (VAEs, VQ-VAEs) or the training
command (classifier accuracy); a cell is '-' when that evaluation has not been run, and
the IWAE column names its k, so a partial evaluation never passes for a full one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REFIT_MARK = "†"  # see REFIT_NOTE
REFIT_NOTE = ("† refit on all 60,000 training images for as many steps as the run chosen on "
              "validation, in whole epochs (rounded up, or down where up would not fit in the "
              "hour: `refit_steps` in metrics.json says so); the figure is that run's (the "
              "refit has seen the validation images).")
SWEEP = ("0.9", "0.8", "0.7")  # learned-prior temperatures, as latentlab.vq_eval writes them


def _print_rows(rows: list[str]) -> None:
    """A table's rows, then the note on † when one of them has it."""
    print("\n".join(rows))
    if any(REFIT_MARK in row for row in rows):
        print("\n" + REFIT_NOTE)


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _minutes(m: dict) -> str:
    t = m.get("train_wall_time_s")
    return "-" if t is None else f"{t / 60:.0f}"


def vae_row(name: str, m: dict, model_cfg: dict | None = None) -> str:
    """One row of the VAE table; a model trained on the IWAE bound L_k, or saved as an average
    of its weights, is labelled so."""
    k_train = (model_cfg or {}).get("iwae_k", 1)
    cfg = m.get("train_config", {})
    how = ([f"trained on L_{k_train}"] if k_train > 1 else []) + (
        ["weights averaged"] if cfg.get("polyak_decay") else [])
    label = f"`{name}`" + (f" ({', '.join(how)})" if how else "")
    s = m.get("elbo_surgery", {})
    q = m.get("sample_quality", {})
    nll = m.get("test_nll_iwae")
    k = m.get("iwae_k")
    partial = " (partial)" if m.get("eval_limit") else ""
    return (f"| {label} | {_f(nll)}{f' (k={k})' if nll is not None else ''}{partial}"
            f"{_tighter(m)} | {_val(m)} | {_f(-m['test_elbo'] if 'test_elbo' in m else None)} "
            f"| {_f(m.get('test_kl'))} "
            f"| {_f(s.get('mutual_information'))} | {_f(s.get('marginal_kl'))} "
            f"| {m.get('active_units', '-')}/{m.get('latent_dim', '-')} "
            f"| {_f(q.get('confident_share'), 3)} | {_f(q.get('class_entropy_bits'))} "
            f"| {_f(q.get('frechet_distance'), 1)} | {cfg.get('epochs', '-')} | {_minutes(m)} |")


def _tighter(m: dict) -> str:
    """The bound again with another k (``evaluate --nll-only``), beside the reported one."""
    extra = sorted((v["k"], v) for key, v in m.items()
                   if key.startswith("test_nll_iwae_k") and v.get("k") != m.get("iwae_k"))
    return "".join(f"; {_f(v['nats'])} (k={k}){' (partial)' if v['images'] < m.get('eval_n_test', 0) else ''}"
                   for k, v in extra)


def vq_row(name: str, m: dict) -> str:
    def pair(key: str, digits: int) -> str:
        return f"{_f(m.get('learned_prior_' + key), digits)} / {_f(m.get('uniform_prior_' + key), digits)}"

    return (f"| `{name}` | {_f(m.get('test_mse'), 4)} | {_f(m.get('test_psnr_db'))} "
            f"| {_f(m.get('codebook_usage'), 3)} | {_f(m.get('codebook_perplexity'), 1)} "
            f"| {m.get('dead_codes', '-')} | {_prior_bits(m)} "
            f"| {pair('confident_share', 3)} | {pair('frechet_distance', 1)} | {_minutes(m)} |")


def _prior_bits(m: dict) -> str:
    """The code prior's bits per code on training grids / validation grids / test grids; a
    prior refit on all training images shows its chosen run's validation figure, marked †."""
    chosen = m.get("prior_selected_on_validation", {}).get("val_figures")
    val = (_f(m.get("prior_val_nll_bits_per_code"), 3) if chosen is None
           else f"{_f(chosen, 3)}{REFIT_MARK}")
    return " / ".join((_f(m.get("prior_train_nll_bits_per_code"), 3), val,
                       _f(m.get("prior_test_nll_bits_per_code"), 3)))


def vq2_row(name: str, m: dict) -> str:
    """A two-level VQ-VAE: reconstruction, each level's codebook and bits, sample quality."""
    def level(prefix: str) -> str:
        return (f"{_f(m.get(prefix + 'codebook_usage'), 3)} / "
                f"{_f(m.get(prefix + 'codebook_perplexity'), 1)}")

    bits = " / ".join(_f(m.get(f"prior_test_nll_bits_per_code_{lv}"), 3) for lv in ("top", "bottom"))
    uniform = " / ".join(_f(m.get(f"uniform_prior_nll_bits_per_code_{lv}"), 1)
                         for lv in ("top", "bottom"))
    return (f"| `{name}` | {_f(m.get('test_mse'), 4)} | {_f(m.get('test_psnr_db'))} "
            f"| {level('top_')} | {level('bottom_')} | {bits} ({uniform}) "
            f"| {_f(m.get('prior_test_nll_bits_per_image'), 1)} | {_prior_bits(m)} "
            f"| {_f(m.get('learned_prior_confident_share'), 3)} "
            f"| {_f(m.get('reconstruction_confident_share'), 3)} "
            f"| {_f(m.get('learned_prior_frechet_distance'), 1)} "
            f"| {_f(m.get('same_top_class_agreement'), 3)} / "
            f"{_f(m.get('independent_class_agreement'), 3)} | {_minutes(m)} |")


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


def _val(m: dict) -> str:
    """-ELBO on the validation split at the epoch that was kept; for a model refit on all
    training images, its chosen run's figure, marked †."""
    chosen = m.get("selected_on_validation", {}).get("val_figures")
    v = m.get("val", {}) if chosen is None else chosen
    value = _f(-v["val_elbo"] if "val_elbo" in v else None)
    return value if chosen is None else value + REFIT_MARK


def sweep_row(name: str, beta: float, m: dict) -> str:
    """Rate (KL) against distortion (reconstruction NLL) for one beta."""
    q = m.get("sample_quality", {})
    nll, k = m.get("test_nll_iwae"), m.get("iwae_k")
    return (f"| {beta:g} | `{name}` | {m.get('train_config', {}).get('epochs', '-')} | {_val(m)} "
            f"| {_f(-m['test_elbo'] if 'test_elbo' in m else None)} | {_f(m.get('test_rec_nll'))} "
            f"| {_f(m.get('test_kl'))} | {m.get('active_units', '-')}/{m.get('latent_dim', '-')} "
            f"| {_f(nll)}{f' (k={k})' if nll is not None else ''} "
            f"| {_f(q.get('confident_share'), 3)} | {_f(q.get('frechet_distance'), 1)} |")


def ae_row(name: str, cfg: dict, m: dict) -> str:
    """A plain autoencoder or its VAE twin: reconstruction, code spread, decoded N(0, I) samples."""
    q = m.get("sample_quality", {})
    std = m.get("code_std")
    spread = "-" if not std else f"{min(std):.2f}-{max(std):.2f}"
    kind = "autoencoder" if cfg.get("posterior") == "deterministic" else "VAE"
    return (f"| `{name}` | {kind} | {cfg.get('latent_dim')} | {_f(m.get('test_rec_nll'))} "
            f"| {spread} | {_f(m.get('code_gaussian_kl'))} "
            f"| {_f(q.get('confident_share'), 3)} | {_f(q.get('frechet_distance'), 1)} |")


def gumbel_row(name: str, cfg: dict, m: dict) -> str:
    q = m.get("sample_quality", {})
    nll, k = m.get("test_nll_iwae"), m.get("iwae_k")
    latent = (f"{cfg['latent_dim']} x Cat({cfg['categories']})" if cfg.get("posterior") == "categorical"
              else f"N(0, I), z={cfg.get('latent_dim')}")
    return (f"| `{name}` | {latent} | {_val(m)} | {_f(-m['test_elbo'] if 'test_elbo' in m else None)} "
            f"| {_f(m.get('test_rec_nll'))} | {_f(m.get('test_kl'))} "
            f"| {_f(nll)}{f' (k={k})' if nll is not None else ''} "
            f"| {_f(q.get('confident_share'), 3)} | {_f(q.get('frechet_distance'), 1)} |")


def lecture_tables(models: dict[str, tuple[dict, dict]]) -> None:
    """The beta sweep, autoencoder-vs-VAE and Gumbel-softmax tables (models trained by
    scripts/train_lecture.sh under the validation protocol)."""
    sweep = sorted((cfg.get("beta", 1.0), name, m) for name, (cfg, m) in models.items()
                   if name.startswith("mnist-vae-z16-beta"))
    if sweep:
        print("\n| beta | model | epochs | val -ELBO | test -ELBO | distortion (rec. NLL) "
              "| rate (KL) | active units | test NLL (IWAE) | confident share | Frechet dist. |")
        print("|---" * 11 + "|")
        _print_rows([sweep_row(name, beta, m) for beta, name, m in sweep])
    aes = [name for name, (cfg, _) in models.items() if cfg.get("posterior") == "deterministic"]
    if aes:
        twins = [n for n in ("mnist-vae-z2", "mnist-vae-z16-beta1") if n in models]
        print("\n| model | kind | z | test rec. NLL | code std per dim | KL(N(mean, std) of codes "
              "‖ N(0, I)) | confident share, decoded N(0, I) | Frechet dist. |")
        print("|---" * 8 + "|")
        print("\n".join(ae_row(n, *models[n]) for n in sorted(aes) + twins))
    gumbels = [name for name, (cfg, _) in models.items() if cfg.get("posterior") == "categorical"]
    if gumbels:
        twins = [n for n in ("mnist-vae-z16-beta1",) if n in models]
        print("\n| model | latent | val -ELBO | test -ELBO | rec. NLL | KL | test NLL (IWAE) "
              "| confident share | Frechet dist. |")
        print("|---" * 9 + "|")
        _print_rows([gumbel_row(n, *models[n]) for n in sorted(gumbels) + twins])


def main(root: str = "checkpoints") -> None:
    rows = {"vae": [], "vqvae": [], "vq_quality": [], "vqvae2": [], "classifier": []}
    lecture: dict[str, tuple[dict, dict]] = {}
    for path in sorted(Path(root).iterdir()):
        try:
            meta = json.loads((path / "config.json").read_text())
            kind, cfg = meta["kind"], meta["config"]
            m = json.loads((path / "metrics.json").read_text())
        except (OSError, KeyError, ValueError):
            continue
        if kind == "vae":
            lecture[path.name] = (cfg, m)
        if (kind == "vae" and cfg.get("posterior", "gaussian") == "gaussian"
                and not path.name.startswith("mnist-vae-z16-beta")):
            rows["vae"].append(vae_row(path.name, m, cfg))
        elif kind == "vqvae":
            rows["vqvae"].append(vq_row(path.name, m))
            rows["vq_quality"].append(vq_quality_row(path.name, m))
        elif kind == "vqvae2":
            rows["vqvae2"].append(vq2_row(path.name, m))
            rows["vq_quality"].append(vq_quality_row(path.name, m))
        elif kind == "classifier":
            rows["classifier"].append(
                f"| `{path.name}` | {_f(100 * m['test_accuracy'])} % | {_minutes(m)} |")
    print("| model | test NLL (IWAE) | val -ELBO | test -ELBO | avg KL | I_q[x,z] | marginal KL "
          "| active units | confident share | class entropy (bits) | Frechet dist. | epochs "
          "| train min |")
    print("|---" * 13 + "|")
    _print_rows(rows["vae"])
    if rows["vqvae"]:
        print("\n| model | test MSE | PSNR (dB) | codebook usage | perplexity | dead codes "
              "| prior bits/code train / val / test | confident share learned / uniform "
              "| Frechet learned / uniform | train min |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        _print_rows(rows["vqvae"])
        print("\n| confident share | learned prior, T=1 | "
              + " | ".join(f"T={t}" for t in SWEEP)
              + " | uniform prior | reconstructions | real test images |")
        print("|---" * (4 + len(SWEEP)) + "|---|")
        print("\n".join(rows["vq_quality"]))
    if rows["vqvae2"]:
        print("\n| two-level model | test MSE | PSNR (dB) | top usage / perplexity "
              "| bottom usage / perplexity | test bits/code top / bottom (uniform) "
              "| bits/image | bits/code train / val / test | confident share, learned prior "
              "| reconstructions | Frechet dist. | class kept: same top / independent "
              "| train min |")
        print("|---" * 13 + "|")
        _print_rows(rows["vqvae2"])
    print("\n| classifier | test accuracy | train min |\n|---|---|---|")
    print("\n".join(rows["classifier"]))
    lecture_tables(lecture)


if __name__ == "__main__":
    main(*sys.argv[1:])
