"""Flags from config dataclasses, and the guard against a model field named like a training one."""

import argparse
import dataclasses

import pytest

from latentlab.cli_flags import add_config_flags, check_no_clash, config_from_args
from latentlab.train import TrainConfig, parse_args
from models import MODEL_KINDS


@dataclasses.dataclass
class Tiny:
    width: int = 8
    rate: float = 0.5
    gated: bool = False
    name: str = "x"
    shape: tuple = (1, 2)  # not primitive: no flag


def test_primitive_fields_become_typed_flags_and_unset_ones_keep_defaults():
    p = argparse.ArgumentParser()
    added = add_config_flags(p, Tiny, defaults=False, seen=set())
    assert added == {"width", "rate", "gated", "name"}
    args = p.parse_args(["--width", "3", "--gated", "yes"])
    assert config_from_args(Tiny, args) == Tiny(width=3, gated=True)
    with pytest.raises(SystemExit):
        p.parse_args(["--gated", "maybe"])


def test_a_field_already_seen_gets_no_second_flag():
    p = argparse.ArgumentParser()
    seen = {"width"}
    assert "width" not in add_config_flags(p, Tiny, defaults=True, seen=seen)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_no_model_config_shares_a_field_name_with_the_training_config(kind):
    owned = {f.name for f in dataclasses.fields(TrainConfig)} - {"dataset", "model"}
    check_no_clash(owned, MODEL_KINDS[kind][0])  # raises on a clash


def test_a_clash_is_refused_when_the_parser_is_built(monkeypatch):
    @dataclasses.dataclass
    class Clashing:
        epochs: int = 3

    monkeypatch.setitem(MODEL_KINDS, "clashing", (Clashing, object))
    with pytest.raises(TypeError, match=r"\['epochs'\] clash"):
        parse_args(["--out", "o"])
