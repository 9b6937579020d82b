"""Links to a view: the query string of a page that opens the app as someone was looking at it.

``parse`` turns query parameters into a ``View`` of validated settings: a parameter the app
cannot use (an unknown model, a number out of the widget's range, a word that is no choice) is
left out with a short note, never an error, so a mistyped link still opens the app.
``to_query`` writes a view back; ``TAB_FIELDS`` says which settings each tab's link carries
(the "copy link" button in the browser builds the same query from the same table).

>>> v = parse({"tab": "sample", "dataset": "mnist", "seed": "7", "temperature": "hot"},
...           datasets=["mnist", "fashion"], models=["mnist-vae-z2"])
>>> v.tab, v.dataset, v.seed, v.temperature
('sample', 'mnist', 7, None)
>>> v.notes
("temperature: 'hot' is not a number",)
>>> to_query(v)
'tab=sample&dataset=mnist&seed=7'
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from latentlab.inputs import MAX_SEED

TAB_IDS = ("reconstruct", "sample", "interpolate", "codegrid", "latent", "train", "lecture")
LECTURE_PANELS = ("elbo_gap", "traversal", "autoencoder", "surgery", "gumbel", "quantization",
                  "reparam")
TAB_FIELDS: dict[str, tuple[str, ...]] = {  # what a link to each tab carries, in URL order
    "reconstruct": ("dataset", "models", "example", "seed", "k"),
    "sample": ("dataset", "models", "source", "n", "temperature", "seed"),
    "interpolate": ("dataset", "models", "steps", "method"),
    "codegrid": ("dataset", "models"),
    "latent": ("dataset", "models"),
    "train": (),
    "lecture": ("panel", "models", "seed"),         # the open panel's model(s) and seed
}
# The widgets' ranges and choices (the views check the same ones).
INTS = {"seed": (0, MAX_SEED), "k": (1, 1000), "steps": (2, 32), "example": (0, 99)}
CHOICES = {"source": ("prior", "q_agg", "uniform"), "method": ("linear", "spherical"),
           "panel": LECTURE_PANELS, "tab": TAB_IDS, "n": ("16", "36", "64", "100")}
TEMPERATURE = (0.1, 2.0)
MAX_MODELS = 4
ALIASES = {"model": "models"}


@dataclass(frozen=True)
class View:
    """The settings a link opens; None means "as the app starts".

    >>> View(tab="lecture", panel="gumbel").panel
    'gumbel'
    """

    tab: str | None = None
    presenter: bool = False
    dataset: str | None = None
    models: tuple[str, ...] = ()
    example: int | None = None
    seed: int | None = None
    k: int | None = None
    source: str | None = None
    n: int | None = None
    temperature: float | None = None
    steps: int | None = None
    method: str | None = None
    panel: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


def _int(name: str, text: str) -> tuple[int | None, str | None]:
    lo, hi = INTS[name]
    try:
        value = float(text)
    except ValueError:
        return None, f"{name}: {text!r} is not a number"
    if not math.isfinite(value) or value != int(value) or not lo <= value <= hi:
        return None, f"{name}: {text!r} is not a whole number from {lo} to {hi}"
    return int(value), None


def _temperature(text: str) -> tuple[float | None, str | None]:
    lo, hi = TEMPERATURE
    try:
        value = float(text)
    except ValueError:
        return None, f"temperature: {text!r} is not a number"
    if not (math.isfinite(value) and lo <= value <= hi):
        return None, f"temperature: {text!r} is not from {lo} to {hi}"
    return round(value, 4), None


def _choice(name: str, text: str) -> tuple[str | None, str | None]:
    if text in CHOICES[name]:
        return text, None
    return None, f"{name}: {text!r} is not one of {', '.join(CHOICES[name])}"


def _models(text: str, known: Collection[str]) -> tuple[tuple[str, ...], list[str]]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    kept = tuple(dict.fromkeys(m for m in names if m in known))[:MAX_MODELS]
    unknown = [m for m in names if m not in known]
    return kept, ([f"models: no model named {', '.join(map(repr, unknown))}"] if unknown else [])


def _one(name: str, text: str, datasets: Collection[str]) -> tuple[Any, str | None]:
    """One parameter's value (None when unusable) and a note."""
    if name in INTS:
        return _int(name, text)
    if name == "temperature":
        return _temperature(text)
    if name == "n":
        value, note = _choice(name, text)
        return (None if value is None else int(value)), note
    if name in CHOICES:
        return _choice(name, text)
    if name == "presenter":
        return text.lower() in ("1", "true", "yes", "on"), None
    if name == "dataset":
        return (text, None) if text in datasets else (
            None, f"dataset: {text!r} is not one of {', '.join(datasets)}")
    return None, None


def parse(params: Mapping[str, str] | str, datasets: Collection[str],
          models: Collection[str]) -> View:
    """Query parameters (a mapping or a query string) as a validated ``View``.

    ``datasets`` and ``models`` are the names this server knows; anything else is left out
    with a note. Unknown parameter names are ignored silently (other tools add their own).
    """
    if isinstance(params, str):
        params = dict(parse_qsl(params.lstrip("?"), keep_blank_values=True))
    names = {f.name for f in fields(View)} - {"notes"}
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key, text in params.items():
        key = ALIASES.get(key, key)
        if key not in names:
            continue
        text = str(text).strip()
        if key == "models":
            values[key], more = _models(text, models)
            notes += more
            continue
        value, note = _one(key, text, datasets)
        if value is not None:
            values[key] = value
        if note:
            notes.append(note)
    return View(**values, notes=tuple(notes))


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_query(view: View) -> str:
    """The query string (without "?") of a view: the tab, presenter mode, and the settings
    that tab's link carries (every tab's when no tab is set)."""
    keys = TAB_FIELDS.get(view.tab or "", ()) if view.tab else tuple(
        dict.fromkeys(k for fs in TAB_FIELDS.values() for k in fs))
    pairs = [("tab", view.tab)] if view.tab else []
    if view.presenter:
        pairs.append(("presenter", "1"))
    pairs += [(k, getattr(view, k)) for k in keys]
    return urlencode([(k, _text(v)) for k, v in pairs if v not in (None, (), "")], safe=",")


def for_tab(view: View) -> View:
    """The view with only what its tab's link carries (the rest as the app starts)."""
    keep = set(TAB_FIELDS.get(view.tab or "", ())) | {"tab", "presenter", "notes"}
    return replace(view, **{f.name: f.default for f in fields(View) if f.name not in keep})


def allowed_models(view: View, allowed: Collection[str], limit: int) -> tuple[list[str], list[str]]:
    """The link's models that a tab's picker lists (at most ``limit``), and a note for the rest.

    >>> allowed_models(View(models=("a", "b", "c")), ["a", "c"], limit=1)
    (['a'], ["models: 'b', 'c' not used on this tab"])
    """
    kept = [m for m in view.models if m in allowed][:limit]
    rest = [m for m in view.models if m not in kept]
    return kept, ([f"models: {', '.join(map(repr, rest))} not used on this tab"] if rest else [])
