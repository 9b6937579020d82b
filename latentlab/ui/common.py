"""Widgets every tab shares (the input panel, model pickers, seed box) and the adapter rules.

Adapters between components and views are tiny: call the view, unpack its ``Outputs`` in
order (``unpack``), turn None into "leave as is" (``keep``). ``friendly`` shows every
``UserError`` as a ``gr.Error`` and logs it as one line.

>>> from dataclasses import dataclass
>>> @dataclass
... class Out:
...     a: int
...     b: str
>>> unpack(Out(1, "x"))
(1, 'x')
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from latentlab import explain, plots
from latentlab.errors import UserError
from latentlab.inputs import MAX_MODELS, MAX_SEED
from latentlab.preprocess import prepare
from latentlab.views import examples
from latentlab.views.models import Picker

LOG = logging.getLogger("latentlab")
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.gallery-pixelated img { image-rendering: pixelated; }
#ll-header h1 { margin-bottom: 0.2em; }
.ll-note { font-size: 0.9em; color: var(--body-text-color-subdued); }
/* Gradio draws a block's label as a badge over its top-left corner, i.e. over the first row of
   a sample grid or the first frame of a strip: give it its own line above the content. */
[data-testid="block-label"] { position: static !important; margin: 0 0 4px 0 !important;
  width: fit-content; }
/* Gallery captions sit under each picture, not over its bottom-right corner. */
.thumbnail-item:has(.caption-label) { display: flex !important; flex-direction: column; }
.thumbnail-item:has(.caption-label) > img { flex: 1 1 auto; min-height: 0; }
.thumbnail-item .caption-label { position: static !important; transform: none !important;
  max-width: 100% !important; margin: 2px auto 0 !important; flex: none; }
/* A results column stays in view while its controls column is scrolled to its button. */
@media (min-width: 900px) {
  .ll-sticky { position: sticky; top: 8px; align-self: flex-start; }
}
/* Gradio's container clips with overflow: hidden, which also disables sticky positioning
   inside it; clip cuts the same overflow without making a scroll container. */
.gradio-container { overflow: clip !important; }
/* The sample grids gallery grows with its grids (Gradio fixes its height: a third model's
   grid was cut off inside it). */
#ll-samples, #ll-samples .grid-wrap { height: auto !important; max-height: none !important;
  overflow: visible !important; }
/* The ELBO table's text columns wrap at 210 px, so the table fits its column on a desktop
   (its last column was cut off at 1440 px) */
#ll-elbo-table .table-wrap { --df-max-col-width: 210px !important; }
@media (max-width: 600px) {
  /* narrower table columns (wrapped text) so that a table fits a phone's width */
  .table-wrap, #ll-elbo-table .table-wrap { --df-max-col-width: 104px !important; }
  /* the reconstructions stay in one row of four (a second row hid in the fixed height) */
  #ll-rec-gallery .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)) !important; }
  /* a code table's seven columns of up to three digits fit a phone (the last one scrolled
     out of sight) */
  .ll-code-table .table-wrap { --df-max-col-width: 46px !important; }
  .ll-code-table .cell-wrap { padding: var(--size-1) !important; }
}
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="orange")
BINARIZE_CHOICES = [("threshold at 0.5", "threshold"), ("random (seeded, as in training)", "random"),
                    ("grey levels", "none")]
SEED_INFO = "same seed + same settings = same picture"
# The Draw tab opens with the brush in hand: Gradio's sketchpad starts with no tool chosen,
# and a drag then selects the hint text "select the draw tool to start" instead of drawing.
PICK_BRUSH_JS = """() => { const pick = (tries) => {
  let waiting = false;
  for (const s of document.querySelectorAll('.ll-sketch')) {
    if (!s.checkVisibility()) continue;
    const brush = s.querySelector('button[aria-label="Brush"]');
    const hint = [...s.querySelectorAll('.empty')].some(e => e.checkVisibility());
    if (brush && hint) brush.click(); else if (!brush) waiting = true;
  }
  if (waiting && tries > 0) setTimeout(() => pick(tries - 1), 100);
}; setTimeout(() => pick(20), 50); }"""
PROGRESS = gr.Progress()  # the marker Gradio looks for to report a callback's progress


# ----------------------------------------------------------------------------- adapters

def friendly(fn: Callable) -> Callable:
    """Errors a user can fix become a visible gr.Error and one log line; the app stays up."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            LOG.info("%s: %s: %s", fn.__name__, type(exc).__name__, exc)
            raise gr.Error(str(exc), print_exception=False) from None
    return wrapper


def friendly_steps(fn: Callable) -> Callable:
    """``friendly`` for a generator (a view that reports its progress as it goes)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except UserError as exc:
            LOG.info("%s: %s: %s", fn.__name__, type(exc).__name__, exc)
            raise gr.Error(str(exc), print_exception=False) from None
    return wrapper


def ignore_repeats(fn: Callable, outputs: int, window_s: float = 2.0) -> Callable:
    """``fn`` that leaves its ``outputs`` as they are when the same visitor sends the same
    inputs again within ``window_s``: Gradio's table fires ``change`` twice per edited cell,
    which decoded every edit twice and showed a bad edit's message twice.

    >>> calls = []
    >>> f = ignore_repeats(lambda x: calls.append(x) or x, outputs=1)
    >>> f(1), f(1) == 1, f(2), calls          # the repeat is skipped, not recomputed
    (1, False, 2, [1, 2])
    """
    last: OrderedDict[str, tuple[float, str]] = OrderedDict()
    lock = threading.Lock()

    def wrapper(*args: Any, request: gr.Request | None = None) -> Any:
        sid, key, now = getattr(request, "session_hash", None) or "", repr(args), time.monotonic()
        with lock:
            seen = last.get(sid)
            last[sid] = (now, key)
            last.move_to_end(sid)
            while len(last) > 5000:          # bounded: one entry per recent visitor
                last.popitem(last=False)
        if seen is not None and seen[1] == key and now - seen[0] < window_s:
            return (gr.skip(),) * outputs if outputs > 1 else gr.skip()
        return fn(*args)

    sig = inspect.signature(fn)
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), inspect.Parameter(
        "request", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=gr.Request)])
    wrapper.__name__ = getattr(fn, "__name__", "repeat_guard")
    return wrapper


def unpack(out: Any) -> tuple:
    """A view's Outputs dataclass as the tuple of values Gradio expects (field order)."""
    return tuple(getattr(out, f.name) for f in fields(out))


def keep(value: Any) -> Any:
    """None from a view means "nothing to change": leave the component as it is."""
    return gr.skip() if value is None else value


def plot(fig: dict | None) -> PlotData | None:
    """A plotly figure dict as what gr.Plot sends to the browser."""
    return None if fig is None else PlotData(type="plotly", plot=plots.to_json(fig))


def dropdown(p: Picker, set_value: bool = True) -> gr.Dropdown:
    """A picker's update: new choices, and its default when ``set_value``."""
    return gr.Dropdown(choices=p.choices, value=p.value) if set_value else gr.Dropdown(
        choices=p.choices)


# ----------------------------------------------------------------------------- widgets

def explanation(text: str) -> None:
    with gr.Accordion("What am I looking at? (formulas)", open=False):
        gr.Markdown(text, latex_delimiters=explain.LATEX)


def seed_box(value: int = 0, elem_id: str | None = None) -> gr.Number:
    # precision=None: Gradio would round an API user's 2.5 silently; the view refuses it
    return gr.Number(value=value, precision=None, minimum=0, maximum=MAX_SEED, label="Seed",
                     info=SEED_INFO, elem_id=elem_id)


def code_table(size: int = 7, label: str = "Code grid (edit any cell)",
               elem_id: str = "ll-code-table", scale: int | None = 3) -> gr.Dataframe:
    """An editable size x size table of code indices; rows and columns cannot be added."""
    with warnings.catch_warnings():  # (n, "fixed") is the only way to pin the size in Gradio 6.x
        warnings.simplefilter("ignore", DeprecationWarning)
        return gr.Dataframe(value=[[0] * size for _ in range(size)],
                            headers=[str(c) for c in range(size)], datatype="number",
                            type="array", row_count=(size, "fixed"),
                            column_count=(size, "fixed"), interactive=True,
                            show_row_numbers=False, label=label, elem_id=elem_id, scale=scale,
                            elem_classes="ll-code-table")


def model_picker(p: Picker, label: str, multiselect: bool = False) -> gr.Dropdown:
    """A model dropdown that also accepts names outside its listed choices: API users may
    name any checkpoint (of any data set, or trained after the page was built); the
    registry checks the name and explains an unknown one."""
    return gr.Dropdown(p.choices, value=p.value, label=label, multiselect=multiselect,
                       max_choices=MAX_MODELS if multiselect else None, allow_custom_value=True)


class ImageUpload(gr.Image):
    """A ``gr.Image`` that hands over the uploaded file's path without decoding it, so that
    ``latentlab.preprocess`` (size limits, decompression-bomb guard) explains bad files.

    ``is_template`` makes Gradio use the ordinary Image widget in the browser.
    """

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        if payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        try:
            return super().preprocess(payload)
        except Exception as exc:  # Gradio's own decoding of a data URL: say what failed
            LOG.info("upload: cannot read this image: %s: %s", type(exc).__name__, exc)
            raise gr.Error(f"cannot read this image ({type(exc).__name__}: {exc})",
                           print_exception=False) from exc


class CheckedImage(gr.Image):
    """The 28x28 image a tab's action reads: a file (an API user's, or the page's own preview)
    goes through ``preprocess.prepare``, so /reconstruct refuses what /prepare refuses (TIFF,
    decompression bombs, truncated files) with the same message.

    ``is_template`` makes Gradio use the ordinary Image widget in the browser.
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if payload is None or not payload.path or (payload.url or "").startswith("data:"):
            return super().preprocess(payload)
        try:
            return prepare(str(payload.path))
        except UserError as exc:
            LOG.info("image input: %s", exc)
            raise gr.Error(str(exc), print_exception=False) from None


@dataclass
class InputPanel:
    """Upload / draw / pick-an-example, and the 28x28 image the models will see."""

    upload: gr.Image
    sketch: gr.Sketchpad
    gallery: gr.Gallery
    seen: gr.Image
    example: int | None       # the example shown first (and after a data-set switch)


def input_panel(title: str, dataset: str, height: int = 230, example: int | None = None,
                columns: int = 4) -> InputPanel:
    gr.Markdown(f"**{title}**")
    with gr.Tabs():
        with gr.Tab("Examples"):
            gallery = gr.Gallery(examples.example_items(dataset), columns=columns, height=height,
                                 allow_preview=False, show_label=False, format="png",
                                 elem_classes="gallery-pixelated ll-examples", object_fit="contain")
        with gr.Tab("Draw") as draw_tab:
            gr.Markdown("Draw one large digit (the brush is ready); it is converted to 28×28 "
                        "as you draw.", elem_classes="ll-note")
            # 300 px is no multiple of 28, so a drawing is never taken for an upscaled 28x28
            sketch = gr.Sketchpad(type="numpy", image_mode="RGBA", canvas_size=(300, 300),
                                  height=height + 90, show_label=False, layers=False,
                                  elem_classes="ll-sketch",
                                  transforms=(), brush=gr.Brush(default_size=22, colors=["#000000"],
                                                                color_mode="fixed"))
        with gr.Tab("Upload"):
            upload = ImageUpload(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                 height=height, show_label=False, elem_classes="ll-upload")
    draw_tab.select(None, None, None, js=PICK_BRUSH_JS, api_visibility="private")
    first = None if example is None else examples.first_example(dataset, example)
    seen = CheckedImage(first, label="What the model sees (28×28)", type="numpy", format="png",
                    interactive=False, height=170, elem_classes="pixelated ll-seen",
                    buttons=["download"])
    return InputPanel(upload, sketch, gallery, seen, example)


@friendly
def from_upload(image: str | None) -> Any:
    return examples.preview(image)


def from_sketch(value: dict | None) -> Any:
    return keep(examples.preview_drawing(value))


@friendly
def from_example(dataset: str, evt: gr.SelectData) -> Any:
    return examples.load_example(dataset, evt.index)


@dataclass(frozen=True)
class InputApi:
    """The API names of a panel's three input events, and whether the upload is public.

    >>> InputApi("rec", "prepare", public_upload=True).upload
    'prepare'
    """

    key: str                          # prefix of the private names: KEY_draw, KEY_pick
    upload: str                       # the upload event's name
    public_upload: bool = False


def wire_input(panel: InputPanel, dataset: gr.Radio, api: InputApi) -> dict[str, Any]:
    """Any new input -> the 28x28 preview. Returns the events by source (upload, draw, pick)
    so that a tab can chain its action after them."""
    return {
        "upload": panel.upload.upload(
            from_upload, [panel.upload], [panel.seen], api_name=api.upload,
            api_visibility="public" if api.public_upload else "private"),
        "draw": panel.sketch.change(
            from_sketch, [panel.sketch], [panel.seen], api_name=f"{api.key}_draw",
            api_visibility="private", trigger_mode="always_last", show_progress="hidden"),
        "pick": panel.gallery.select(
            from_example, [dataset], [panel.seen], api_name=f"{api.key}_pick",
            api_visibility="private"),
    }


@dataclass
class Action:
    """An event a tab exposes for chaining (function, inputs, outputs)."""

    fn: Callable
    inputs: list
    outputs: list


@dataclass
class TabHandles:
    """What the app wires across tabs: the data-set radio, the model pickers with their
    specs, the input panels, and the tab's main action."""

    key: str                                   # private API names: dataset_KEY, ...
    dataset: gr.Radio
    pickers: list                              # [(gr.Dropdown, PickerSpec)]
    panels: list[InputPanel]
    action: Action | None = None
