"""Warm-up: the models each tab opens with are loaded before the first request."""

import logging
import shutil

import torch
from safetensors.torch import load_file, save_file

from latentlab import warmup
from latentlab.registry import REPO, ModelRegistry
from latentlab.views import elbo_gap, models


def test_default_names_cover_every_picker():
    reg = ModelRegistry()
    names = warmup.default_names(reg, "mnist")
    assert len(names) == len(set(names))
    for spec in warmup.SPECS:
        value = spec.default(reg, "mnist")
        for name in value if isinstance(value, list) else [value]:
            assert name == models.NONE or name in names


def test_warm_loads_the_defaults_and_survives_a_broken_one(tmp_path, caplog):
    reg = ModelRegistry()
    names = warmup.warm(reg, ["mnist"])
    assert names == warmup.default_names(reg, "mnist")
    assert all(n in reg._loaded for n in names)
    model = reg.get(elbo_gap.DEFAULT_MODEL).model
    assert any(key[0] == id(model) for key in elbo_gap._prior_cache)  # the ELBO-gap panel is warm
    # a listed checkpoint that cannot load (NaN weights) is logged and skipped, the rest loads
    shutil.copytree(REPO / "checkpoints" / "mnist-vae-z16", tmp_path / "mnist-vae-z16")
    shutil.copytree(REPO / "checkpoints" / "mnist-flow-z16", tmp_path / "mnist-flow-z16")
    weights = tmp_path / "mnist-flow-z16" / "model.safetensors"
    state = load_file(str(weights))
    first = next(iter(state))
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, str(weights))
    reg2 = ModelRegistry(root=tmp_path, assets=None)
    assert warmup.default_names(reg2, "mnist") == ["mnist-vae-z16", "mnist-flow-z16"]
    with caplog.at_level(logging.WARNING):
        assert warmup.warm(reg2, ["mnist"]) == ["mnist-vae-z16"]
    assert "mnist-flow-z16" in caplog.text and "not finite" in caplog.text
