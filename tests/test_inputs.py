"""The API-boundary checks: clean values pass, everything else is an InputError with a message."""

import numpy as np
import pytest
import torch

from latentlab import inputs
from latentlab.errors import InputError, UserError


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), ("4", 4), (np.int64(5), 5)])
def test_check_int_accepts_whole_numbers(value, expected):
    assert inputs.check_int("n", value, 0, 10) == expected


@pytest.mark.parametrize("value, message", [(2.5, "whole number"), ("x", "whole number"),
                                            (None, "whole number"), (float("nan"), "whole number"),
                                            (11, "between 0 and 10"), (-1, "between 0 and 10")])
def test_check_int_rejects(value, message):
    with pytest.raises(InputError, match=message):
        inputs.check_int("n", value, 0, 10)


def test_check_float_and_choice():
    assert inputs.check_float("t", "0.5", 0.05, 3.0) == 0.5
    for bad in (0, 9.0, float("inf"), "x", None):
        with pytest.raises(InputError, match="t must"):
            inputs.check_float("t", bad, 0.05, 3.0)
    assert inputs.check_choice("m", "linear", ("linear", "spherical")) == "linear"
    with pytest.raises(InputError, match="one of linear, spherical"):
        inputs.check_choice("m", "cubic", ("linear", "spherical"))


def test_seeds_give_the_same_draws():
    a = torch.rand(3, generator=inputs.generator(7))
    assert torch.equal(a, torch.rand(3, generator=inputs.generator(7.0)))
    for bad in (-1, inputs.MAX_SEED + 1, 1.5):
        with pytest.raises(InputError, match="seed"):
            inputs.generator(bad)


def test_models_and_model_names():
    assert inputs.check_models("a") == ["a"] and inputs.check_models(("a", "b")) == ["a", "b"]
    for empty in ([], None, ""):
        with pytest.raises(InputError, match="at least one"):
            inputs.check_models(empty)
    assert inputs.need_model("m") == "m"
    with pytest.raises(InputError, match="pick a model"):
        inputs.need_model(None)


def test_images_and_binarize():
    x = np.linspace(0, 1.2, 784, dtype=np.float32).reshape(28, 28)
    clean = inputs.check_image(x)
    assert clean.max() == 1.0 and clean.dtype == np.float32
    with pytest.raises(InputError, match="28x28"):
        inputs.check_image(np.zeros((5, 5)))
    with pytest.raises(InputError, match="NaN"):
        inputs.check_image(np.full((28, 28), np.nan))
    assert set(np.unique(inputs.binarize(clean, "threshold"))) == {0.0, 1.0}
    r1, r2 = inputs.binarize(clean, "random", 1), inputs.binarize(clean, "random", 1)
    assert np.array_equal(r1, r2) and set(np.unique(r1)) <= {0.0, 1.0}
    assert np.array_equal(inputs.binarize(clean, "none"), clean)
    with pytest.raises(InputError, match="binarize"):
        inputs.binarize(clean, "x")
    assert inputs.as_tensor(clean).shape == (1, 1, 28, 28)


def test_input_errors_are_user_errors_and_value_errors():
    with pytest.raises(UserError):
        inputs.check_int("n", "x", 0, 1)
    with pytest.raises(ValueError):
        inputs.check_int("n", "x", 0, 1)
