"""JobSpec: impossible jobs fail early with a message; the translation and the CLI command."""

import shlex

import pytest

from latentlab.errors import InputError
from latentlab.jobs import APP_KINDS, JobSpec
from latentlab.train import TrainConfig, build_model_config, parse_args


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "gan"}, "unknown model kind"),
    ({"dataset": "cifar"}, "unknown dataset"),
    ({"epochs": 0}, "epochs"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"subset": -1}, "subset"),
    ({"model_options": {"wings": 2}}, "no fields"),
    ({"val_size": -1}, "val_size"),
    ({"val_size": 0, "keep_best": True}, "keep_best"),
    ({"model_options": {"posterior": "categorical"}}, "prior"),  # categorical goes with uniform
])
def test_impossible_jobs_fail_early(kwargs, message):
    with pytest.raises(InputError, match=message):
        JobSpec(**kwargs)


def test_a_validation_split_as_large_as_the_data_is_refused_when_counted():
    spec = JobSpec(val_size=60_000)
    with pytest.raises(InputError, match="validation split must leave training images"):
        spec.images()


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
