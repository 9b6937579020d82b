"""Links to a view: validated parsing, the query string back, bad values left out with a note."""

from urllib.parse import parse_qsl

import pytest

from latentlab.views import links
from latentlab.views.links import View, allowed_models, for_tab, parse, to_query

DATASETS = ["mnist", "fashion"]
MODELS = ["mnist-vae-z16", "mnist-flow-z16", "mnist-vqvae", "fashion-vae-z2"]
VIEWS = [
    View(tab="reconstruct", dataset="mnist", models=("mnist-vae-z16", "mnist-vqvae"), example=6,
         seed=3, k=250),
    View(tab="sample", presenter=True, dataset="fashion", models=("fashion-vae-z2",),
         source="q_agg", n=36, temperature=0.75, seed=7),
    View(tab="interpolate", dataset="mnist", models=("mnist-flow-z16",), steps=20,
         method="spherical"),
    View(tab="codegrid", dataset="mnist", models=("mnist-vqvae",)),
    View(tab="latent", dataset="fashion", models=("fashion-vae-z2", "mnist-vae-z16")),
    View(tab="lecture", panel="gumbel", seed=5),
    View(tab="lecture", panel="surgery", models=("mnist-vae-z16", "mnist-flow-z16")),
    View(tab="train"),
]


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: f"{v.tab}-{v.panel}")
def test_round_trip(view):
    query = to_query(view)
    back = parse(query, DATASETS, MODELS)
    assert back == view and back.notes == ()
    assert query.startswith(f"tab={view.tab}")


def test_query_carries_only_the_tabs_settings():
    view = View(tab="codegrid", dataset="mnist", models=("mnist-vqvae",), seed=9, k=5, n=16)
    assert dict(parse_qsl(to_query(view))) == {"tab": "codegrid", "dataset": "mnist",
                                               "models": "mnist-vqvae"}
    assert for_tab(view) == View(tab="codegrid", dataset="mnist", models=("mnist-vqvae",))
    assert "presenter=1" in to_query(View(tab="sample", presenter=True))


@pytest.mark.parametrize(("params", "note"), [
    ({"seed": "-1"}, "seed"), ({"seed": "1.5"}, "seed"), ({"seed": "nan"}, "seed"),
    ({"seed": "abc"}, "seed"), ({"seed": str(2**31)}, "seed"), ({"k": "0"}, "k"),
    ({"k": "1001"}, "k"), ({"steps": "1"}, "steps"), ({"steps": "inf"}, "steps"),
    ({"temperature": "0"}, "temperature"), ({"temperature": "nan"}, "temperature"),
    ({"temperature": "2.5"}, "temperature"), ({"n": "17"}, "n"), ({"source": "posterior"}, "source"),
    ({"method": "cubic"}, "method"), ({"tab": "settings"}, "tab"), ({"panel": "nope"}, "panel"),
    ({"dataset": "cifar"}, "dataset"), ({"models": "nope,mnist-vqvae"}, "nope"),
])
def test_bad_values_are_left_out_with_a_note(params, note):
    view = parse({**params, "tab": params.get("tab", "sample")}, DATASETS, MODELS)
    key = next(iter(params))
    if key == "models":
        assert view.models == ("mnist-vqvae",)
    else:
        assert getattr(view, key) == getattr(View(tab=view.tab), key)
    assert len(view.notes) == 1 and note in view.notes[0]


def test_unknown_parameters_are_ignored_and_aliases_read():
    view = parse({"utm_source": "slides", "__theme": "dark", "model": "mnist-vqvae"}, DATASETS,
                 MODELS)
    assert view == View(models=("mnist-vqvae",)) and view.notes == ()


def test_numbers_accept_their_usual_spellings():
    view = parse("?seed=7.0&k=+12&temperature=1&n=100&presenter=true", DATASETS, MODELS)
    assert (view.seed, view.k, view.temperature, view.n, view.presenter) == (7, 12, 1.0, 100, True)
    assert parse({"presenter": "0"}, DATASETS, MODELS).presenter is False


def test_models_deduplicated_and_capped():
    many = ",".join(MODELS + MODELS)
    assert parse({"models": many}, DATASETS, MODELS).models == tuple(MODELS[:links.MAX_MODELS])


def test_allowed_models_keeps_the_tabs_kinds():
    view = View(models=("mnist-vae-z16", "mnist-vqvae"))
    assert allowed_models(view, ["mnist-vqvae"], limit=1) == (
        ["mnist-vqvae"], ["models: 'mnist-vae-z16' not used on this tab"])
    assert allowed_models(view, MODELS, limit=4) == (["mnist-vae-z16", "mnist-vqvae"], [])


def test_tab_fields_name_view_fields():
    names = {f for fs in links.TAB_FIELDS.values() for f in fs}
    assert names <= set(View.__dataclass_fields__) and set(links.TAB_FIELDS) == set(links.TAB_IDS)
