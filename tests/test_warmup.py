"""Warm-up: the models each tab opens with are loaded before the first request."""

import logging

from latentlab import warmup
from latentlab.registry import ModelRegistry
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
    # a checkpoint that cannot load is logged and skipped, the rest still loads
    broken = tmp_path / "mnist-vae-z16"
    broken.mkdir()
    (broken / "config.json").write_text('{"format_version": 1, "kind": "vae", "config": '
                                        '{"dataset": "mnist", "latent_dim": 16}}')
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    reg2 = ModelRegistry(root=tmp_path)
    with caplog.at_level(logging.WARNING):
        assert warmup.warm(reg2, ["mnist"]) == []
    assert "mnist-vae-z16" in caplog.text or reg2.entries("mnist") == []
