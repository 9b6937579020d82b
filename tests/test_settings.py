"""Settings: every variable read in one place, with defaults and clear errors."""

import pytest

from latentlab import settings
from latentlab.settings import Settings


def test_user_model_limits_default_to_20_models_and_200_mb():
    s = Settings.from_env({})
    assert (s.max_user_models, s.max_user_bytes) == (20, 200 * 2**20)


def test_user_model_limits_come_from_the_environment():
    s = Settings.from_env({"LATENT_LAB_MAX_USER_MODELS": "3", "LATENT_LAB_MAX_USER_MB": "50"})
    assert (s.max_user_models, s.max_user_bytes) == (3, 50 * 2**20)
    zero = Settings.from_env({"LATENT_LAB_MAX_USER_MODELS": "0", "LATENT_LAB_MAX_USER_MB": "0"})
    assert (zero.max_user_models, zero.max_user_bytes) == (1, 2**20)  # the new model always stays


def test_a_bad_number_names_its_variable():
    with pytest.raises(ValueError, match=r"\$LATENT_LAB_MAX_USER_MB must be a whole number"):
        Settings.from_env({"LATENT_LAB_MAX_USER_MB": "lots"})


def test_configure_and_reset(tmp_path):
    try:
        assert settings.configure(max_user_models=5).max_user_models == 5
        assert settings.current().max_user_models == 5
    finally:
        settings.reset()
    assert settings.current().max_user_models == Settings.from_env().max_user_models


def test_the_docstring_table_lists_every_variable_read():
    import inspect

    source = inspect.getsource(Settings.from_env)
    for variable in ("LATENT_LAB_MAX_USER_MODELS", "LATENT_LAB_MAX_USER_MB"):
        assert variable in source and f"| {variable} |" in settings.__doc__
