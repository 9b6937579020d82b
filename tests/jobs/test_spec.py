"""JobSpec: impossible jobs fail early with a message; the translation and the CLI command."""

import shlex

import pytest

from latentlab.errors import InputError
from latentlab.jobs import APP_KINDS, JobSpec
from latentlab.train import TrainConfig, build_model_config, parse_args


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "gan"}, "unknown model kind"),
    ({"dataset": "cifar"}, "unknown dataset"),
    ({"epochs": 0}, "Epochs must be a whole number between 1 and 100, got 0"),
    ({"latent_dim": 0}, "Latent dimension"),
    ({"subset": -1}, "Training images"),
    ({"model_options": {"wings": 2}}, "no fields"),
    ({"val_size": -1}, "Validation images"),
    ({"val_size": 0, "keep_best": True}, "keep_best"),
    ({"model_options": {"posterior": "categorical"}}, "prior"),  # categorical goes with uniform
])
def test_impossible_jobs_fail_early(kwargs, message):
    with pytest.raises(InputError, match=message):
        JobSpec(**kwargs)


def test_a_validation_split_as_large_as_the_data_is_refused():
    with pytest.raises(InputError, match="Validation images must be a whole number between 0 and"):
        JobSpec(val_size=60_000)


@pytest.mark.parametrize("model, kind, prior", [("vae", "vae", "normal"), ("flow", "vae", "realnvp"),
                                                ("vqvae", "vqvae", None)])
def test_app_kinds_become_engine_configs(model, kind, prior):
    engine, model_cfg, cfg = JobSpec(model=model, latent_dim=4, epochs=2, subset=300,
                                     val_size=500, keep_best=True).configs()
    assert engine == kind == APP_KINDS[model][0]
    assert getattr(model_cfg, "prior", None) == prior or kind == "vqvae"
    assert (model_cfg.code_dim if kind == "vqvae" else model_cfg.latent_dim) == 4
    assert (cfg.epochs, cfg.subset, cfg.val_size, cfg.keep_best) == (2, 300, 500, True)


def test_images_leave_out_the_validation_split():
    assert JobSpec().images() == 60_000 - TrainConfig.val_size
    assert JobSpec(val_size=0).images() == 60_000
    assert JobSpec(subset=256).images() == 256
    assert JobSpec(subset=55_000, val_size=10_000).images() == 50_000


def test_command_reproduces_the_job(tiny_spec):
    cmd = tiny_spec("flow", beta=0.5).command("checkpoints/x")
    assert "--model vae" in cmd and "--prior realnvp" in cmd and "--beta 0.5" in cmd
    assert cmd.endswith("--out checkpoints/x") and "--subset 256" in cmd
    assert "--val-size" not in cmd  # the default split is not spelled out


@pytest.mark.parametrize("model, extra", [
    ("flow", {"beta": 0.5}),
    ("vqvae", {"keep_best": True, "val_size": 2000}),
    ("vae", {"model_options": {"posterior": "deterministic", "channels": 8}, "bf16": True}),
    ("vae", {"model_options": {"posterior": "categorical", "prior": "uniform", "categories": 4,
                               "straight_through": True}}),
])
def test_the_cli_accepts_the_command_and_builds_the_same_configs(tiny_spec, model, extra):
    spec = tiny_spec(model, **extra)
    argv = shlex.split(spec.command("checkpoints/x"))[3:]  # after "python -m latentlab.train"
    args = parse_args(argv)
    kind, model_cfg, cfg = spec.configs()
    assert args.model == kind and args.out == "checkpoints/x"
    assert build_model_config(args) == model_cfg
    cli_cfg = TrainConfig(**{k: getattr(args, k) for k in TrainConfig.__dataclass_fields__})
    assert cli_cfg == cfg


def test_summary_names_the_model_and_the_work():
    assert JobSpec(model="vqvae", latent_dim=4, num_codes=16, subset=256).summary() == (
        "VQ-VAE, then its code prior on mnist (K=16 codes of size 4), 1 epoch(s) on 256 images")


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": 1e300}, "beta must be a number between 0 and 100, got 1e\\+300"),
    ({"beta": float("nan")}, "beta must be a number between 0 and 100, got nan"),
    ({"beta": -0.5}, "beta must be"),
    ({"lr": 1e300}, "Learning rate must be a number between 1e-06 and 1, got 1e\\+300"),
    ({"lr": float("inf")}, "Learning rate"),
    ({"lr": float("nan")}, "Learning rate"),
    ({"epochs": 2.5}, "Epochs must be a whole number"),
    ({"epochs": 101}, "Epochs must be a whole number between 1 and 100"),
    ({"subset": 10**12}, "Training images"),
    ({"batch_size": 10**6}, "Batch size"),
    ({"latent_dim": 10**8}, "Latent dimension"),
    ({"model": "vqvae", "num_codes": 10**9}, "K \\(codebook entries\\)"),
    ({"model": "vqvae", "prior_epochs": 10**6}, "Code-prior epochs"),
    ({"val_size": float("nan")}, "Validation images"),
    ({"model_options": {"hidden": 10**8}}, "hidden must lie between 0 and 8192"),
    ({"model_options": {"tau_start": float("inf")}}, "tau"),
])
def test_out_of_range_and_non_finite_settings_are_refused_before_anything_starts(kwargs, message):
    with pytest.raises(InputError, match=message):
        JobSpec(**kwargs)


def test_every_range_holds_the_defaults_and_the_presets():
    from latentlab.jobs.spec import BATCH_SIZES, RANGES
    from latentlab.views.train import PRESETS

    spec = JobSpec()
    for name, limits in RANGES.items():
        value = getattr(spec, name)
        assert value is None or limits.lo <= value <= limits.hi, name
    for preset in PRESETS.values():
        for name in ("epochs", "subset", "batch_size", "prior_epochs"):
            assert RANGES[name].check(preset[name]) == preset[name]
    assert all(RANGES["batch_size"].check(b) == b for b in BATCH_SIZES)
