"""Links to a view: the page load reads ``?tab=...&dataset=...`` into the widgets, and
"🔗 Copy link to this view" builds such a link in the browser from the widgets' values.

What a link carries and how it is checked lives in ``latentlab.views.links``; here the widgets
are found (each tab's main event names its inputs), filled and read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from latentlab.errors import InputError
from latentlab.registry import ModelRegistry
from latentlab.ui.common import Action, TabHandles
from latentlab.ui.presenter import Header
from latentlab.views import examples
from latentlab.views import links as view
from latentlab.views import models as mv
from latentlab.views.latent import NONE

# Each tab's settings as positions in the inputs of its main (public) event.
WIDGETS = {"reconstruct": ("reconstruct", {"k": 2, "seed": 3}),
           "sample": ("sample", {"source": 1, "n": 2, "temperature": 3, "seed": 5}),
           "interpolate": ("interpolate", {"steps": 3, "method": 4})}
TAB_ORDER = ("reconstruct", "sample", "interpolate", "codegrid", "latent")
# Each lecture panel's settings a link carries, as positions in its main event's inputs.
LECTURE_WIDGETS = {"elbo_gap": ("elbo_gap", {"models": (0,), "seed": 4}),
                   "traversal": ("traversal", {"models": (0,)}),
                   "autoencoder": ("autoencoder", {"models": (0, 1), "seed": 3}),
                   "surgery": ("surgery_priors", {"models": (0, 1), "seed": 3}),
                   "gumbel": ("gumbel", {"seed": 3}),
                   "quantization": ("lloyd", {"seed": 2}),
                   "reparam": ("reparam", {"models": (0,), "seed": 3})}
LECTURE_LABELS = {  # the lecture accordions' titles start so
    "elbo_gap": "ELBO gap", "traversal": "Latent traversals", "autoencoder": "An autoencoder",
    "surgery": "ELBO surgery", "gumbel": "Gumbel-max", "quantization": "Quantization",
    "reparam": "Reparameterization"}


@dataclass
class Target:
    """One tab's widgets a link sets: data set, pickers, input panels, and its settings.

    >>> t = Target("codegrid", TabHandles("code", gr.Radio(), [(gr.Dropdown(), None)], []))
    >>> t.multiselect, t.widgets
    (False, {})
    """

    tab: str
    handles: TabHandles
    widgets: dict[str, Any] = field(default_factory=dict)

    @property
    def multiselect(self) -> bool:
        return bool(self.handles.pickers[0][0].multiselect)


def targets(demo: gr.Blocks, handles: list[TabHandles]) -> dict[str, Target]:
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    out = {}
    for tab, h in zip(TAB_ORDER, handles, strict=True):
        api, positions = WIDGETS.get(tab, ("", {}))
        inputs = by_name[api].inputs if api else []
        out[tab] = Target(tab, h, {name: inputs[i] for name, i in positions.items()})
    return out


def lecture_widgets(demo: gr.Blocks) -> dict[str, dict[str, Any]]:
    """Each lecture panel's seed box and model pickers (a list), by panel id."""
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    out: dict[str, dict[str, Any]] = {}
    for panel, (api, positions) in LECTURE_WIDGETS.items():
        if api in by_name:
            inputs = by_name[api].inputs
            out[panel] = {name: ([inputs[i] for i in pos] if name == "models" else inputs[pos])
                          for name, pos in positions.items()}
    return out


def lecture_panels(tab: gr.Tab | None) -> dict[str, gr.Accordion]:
    """The Lecture tab's top-level accordions by panel id (nested ones are parts of a panel)."""
    found: dict[str, gr.Accordion] = {}

    def walk(block: Any) -> None:
        for child in getattr(block, "children", []):
            if isinstance(child, gr.Accordion):
                key = next((k for k, start in LECTURE_LABELS.items()
                            if str(child.label).startswith(start)), None)
                if key and key not in found:
                    found[key] = child
                    child.elem_id = child.elem_id or f"ll-panel-{key}"   # for the scroll below
                continue
            walk(child)

    if tab is not None:
        walk(tab)
    return found


def find_tab(tabs: gr.Tabs, tab_id: str) -> gr.Tab | None:
    return next((t for t in tabs.children if isinstance(t, gr.Tab) and t.id == tab_id), None)


class LinkOpener:
    """The page-load adapter: query parameters -> widget values (and a note for what was left).

    A lecture panel's part, for example (``open`` does this for the panel a link names):

    >>> seed, out = gr.Number(), {}
    >>> LinkOpener._fill_panel({"seed": seed}, view.View(seed=3, models=("x",)), out)
    ["models: 'x' not used in this panel"]
    >>> out[seed]
    3
    """

    def __init__(self, registry: ModelRegistry, datasets: list[str], header: Header,
                 targets: dict[str, Target], panels: dict[str, gr.Accordion],
                 lecture: dict[str, dict[str, Any]]):
        self.registry, self.datasets, self.header = registry, datasets, header
        self.targets, self.panels, self.lecture = targets, panels, lecture
        self.state = gr.State(None)

    def outputs(self) -> list:
        h = self.header
        out = [h.presenter, h.note, h.tab, h.example, h.panel, self.state]
        for t in self.targets.values():
            out += [t.handles.dataset, *[dd for dd, _ in t.handles.pickers]]
            out += [p.gallery for p in t.handles.panels] + [p.seen for p in t.handles.panels]
            out += list(t.widgets.values())
        for widgets in self.lecture.values():
            out += [widgets.get("seed"), *widgets.get("models", [])]
        return [c for c in out if c is not None] + list(self.panels.values())

    def open(self, request: gr.Request) -> dict:
        params = dict(request.query_params) if request is not None else {}
        names = [e.name for e in self.registry.entries()]
        v = view.for_tab(view.parse(params, self.datasets, names))
        rec = self.targets["reconstruct"].handles.panels[0]
        out: dict = {self.state: v, self.header.example: rec.example}
        notes = list(v.notes)
        if v.presenter:
            out[self.header.presenter] = True
        if v.tab:
            out[self.header.tab] = v.tab
        if v.tab in self.targets:
            notes += self._fill(self.targets[v.tab], v, out)
        if v.panel in self.panels:
            out[self.panels[v.panel]] = gr.Accordion(open=True)
            out[self.header.panel] = v.panel
            notes += self._fill_panel(self.lecture.get(v.panel, {}), v, out)
        if notes:
            out[self.header.note] = "Link: left as the app starts: " + "; ".join(notes) + "."
        return out

    def _fill(self, t: Target, v: view.View, out: dict) -> list[str]:
        ds = v.dataset or self.datasets[0]
        pickers = [mv.picker(self.registry, ds, spec) for _, spec in t.handles.pickers]
        # a multi-select tab lists its models in one picker; otherwise each picker may list
        # other kinds (the Code grid tab: VQ-VAEs, then two-level VQ-VAEs)
        allowed = [name for p in pickers[: 1 if t.multiselect else None] for _, name in p.choices]
        limit = view.MAX_MODELS if t.multiselect else len(pickers)
        kept, notes = view.allowed_models(v, allowed, limit)
        if v.dataset:
            out[t.handles.dataset] = ds
            for p in t.handles.panels:
                out[p.gallery] = gr.Gallery(value=examples.example_items(ds))
                out[p.seen] = examples.first_example(ds, p.example or 0)
        if v.dataset or kept:
            left = list(kept)
            for (dd, _), p in zip(t.handles.pickers, pickers, strict=True):
                if t.multiselect:
                    value = kept or p.value
                else:  # the first of the link's models that this picker lists
                    value = next((m for m in left if m in {n for _, n in p.choices}), p.value)
                    if value in left:
                        left.remove(value)
                out[dd] = gr.Dropdown(choices=p.choices, value=value, multiselect=t.multiselect)
        for name, widget in t.widgets.items():
            if getattr(v, name) is not None:
                out[widget] = getattr(v, name)
        if v.example is not None and t.handles.panels:
            try:
                out[t.handles.panels[0].seen] = examples.load_example(ds, v.example)
                out[self.header.example] = v.example
            except InputError as exc:
                notes.append(f"example: {exc}")
        return notes


    @staticmethod
    def _fill_panel(widgets: dict[str, Any], v: view.View, out: dict) -> list[str]:
        """A lecture panel's seed and model pickers (each model must be one of its choices)."""
        if v.seed is not None and "seed" in widgets:
            out[widgets["seed"]] = v.seed
        pickers = widgets.get("models", [])
        for dd, name in zip(pickers, v.models, strict=False):
            if name in [value for _, value in dd.choices]:
                out[dd] = name
        rest = [m for m in v.models[:len(pickers)] if not any(out.get(dd) == m for dd in pickers)]
        rest += list(v.models[len(pickers):])
        return [f"models: {', '.join(map(repr, rest))} not used in this panel"] if rest else []


def select_tab(v: view.View | None) -> Any:
    return gr.Tabs(selected=v.tab) if v is not None and v.tab else gr.skip()


COPY_JS = """
(...values) => {
  const keys = KEYS, fields = FIELDS, skip = SKIP;
  const got = {};
  keys.forEach((k, i) => {
    let v = values[i];
    if (v === null || v === undefined || v === '' || skip.includes(v)) return;
    if (Array.isArray(v)) { v = v.filter((x) => !skip.includes(x)); if (!v.length) return; }
    got[k] = k in got ? [].concat(got[k], v) : v;
  });
  // the tab on screen: the hidden box follows it through an event, which a click made while
  // the page-load steps still run can lose
  const shown = [...document.querySelectorAll('[role=tab][aria-selected=true]')]
    .map((e) => e.dataset.tabId).find((id) => id in fields);
  const tab = shown || got.tab || 'reconstruct';
  const p = new URLSearchParams();
  p.set('tab', tab);
  if (got.presenter) p.set('presenter', '1');
  const sub = tab === 'lecture' && got['lecture.panel'] ? got['lecture.panel'] + '.' : '';
  for (const f of fields[tab] || []) {
    const v = got[tab + '.' + sub + f] ?? got[tab + '.' + f];
    if (v !== undefined) p.set(f, Array.isArray(v) ? v.join(',') : String(v));
  }
  const url = location.origin + location.pathname + '?' + p.toString().replaceAll('%2C', ',');
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) { /* http: no clipboard */ }
  return url;
}"""


SCROLL_JS = """
(p) => {
  if (!p || window.llPanelScrolled) return [];
  window.llPanelScrolled = true;
  setTimeout(() => document.getElementById('ll-panel-' + p)?.scrollIntoView({block: 'start'}), 600);
  return [];
}"""


def copy_js(keys: list[str]) -> str:
    """The browser side of "copy link": the inputs' values (named by ``keys``) -> the URL of
    the open tab's view, copied to the clipboard where the browser allows it, and returned."""
    return COPY_JS.replace("KEYS", json.dumps(keys)).replace(
        "FIELDS", json.dumps(view.TAB_FIELDS)).replace("SKIP", json.dumps([NONE]))


def copy_inputs(header: Header, targets: dict[str, Target], lecture: dict[str, dict[str, Any]]
                ) -> tuple[list[str], list]:
    """(key, component) for everything a link may carry, in the JS function's argument order."""
    pairs: list[tuple[str, Any]] = [("tab", header.tab), ("presenter", header.presenter),
                                    ("lecture.panel", header.panel),
                                    ("reconstruct.example", header.example)]
    for tab, t in targets.items():
        pairs.append((f"{tab}.dataset", t.handles.dataset))
        pairs += [(f"{tab}.models", dd) for dd, _ in t.handles.pickers]
        pairs += [(f"{tab}.{name}", w) for name, w in t.widgets.items()]
    for panel, widgets in lecture.items():
        pairs += [(f"lecture.{panel}.models", dd) for dd in widgets.get("models", [])]
        pairs += [(f"lecture.{panel}.seed", widgets["seed"])] if "seed" in widgets else []
    return [k for k, _ in pairs], [c for _, c in pairs]


def track(header: Header, tabs: gr.Tabs, rec: TabHandles, panels: dict[str, gr.Accordion]) -> None:
    """Browser-only events that keep the hidden boxes in step with what is on screen."""
    for tab in tabs.children:
        if isinstance(tab, gr.Tab) and tab.id:
            tab.select(None, None, [header.tab], js=f"() => {json.dumps(tab.id)}",
                       api_name=f"link_tab_{tab.id}", api_visibility="private",
                       show_progress="hidden")
    for key, acc in panels.items():
        acc.expand(None, None, [header.panel], js=f"() => {json.dumps(key)}",
                   api_name=f"link_panel_{key}", api_visibility="private", show_progress="hidden")
        acc.collapse(None, [header.panel], [header.panel],
                     js=f"(p) => (p === {json.dumps(key)} ? '' : p)",
                     api_name=f"link_panel_{key}_closed", api_visibility="private",
                     show_progress="hidden")
    # a link that opens a panel also scrolls to it, once (later openings are the user's)
    header.panel.change(None, [header.panel], None, js=SCROLL_JS, api_name="link_panel_scroll",
                        api_visibility="private", show_progress="hidden")
    panel = rec.panels[0]

    def picked(evt: gr.SelectData) -> int:
        return int(evt.index)

    panel.gallery.select(picked, None, [header.example], api_name="link_example",
                         api_visibility="private", show_progress="hidden")
    # a drawing or an upload is no shipped example: the link then carries none
    for source, event in (("upload", panel.upload.upload), ("draw", panel.sketch.change)):
        event(None, None, [header.example], js="() => null",
              api_name=f"link_example_{source}", api_visibility="private", show_progress="hidden")
    rec.dataset.input(None, None, [header.example], js=f"() => {panel.example or 0}",
                      api_name="link_example_dataset", api_visibility="private",
                      show_progress="hidden")


def wire_links(registry: ModelRegistry, demo: gr.Blocks, datasets: list[str], header: Header,
               tabs: gr.Tabs, handles: list[TabHandles]) -> list[Action]:
    """Wire "copy link" and the hidden boxes; returns the page-load steps that open a link
    (fill the widgets, then select the tab), for the app to run first when a page loads."""
    found = targets(demo, handles)
    panels = lecture_panels(find_tab(tabs, "lecture"))
    track(header, tabs, found["reconstruct"].handles, panels)
    lecture = lecture_widgets(demo)
    keys, inputs = copy_inputs(header, found, lecture)
    header.copy.click(None, inputs, [header.link], js=copy_js(keys), api_name="copy_link",
                      api_visibility="private", show_progress="hidden")
    opener = LinkOpener(registry, datasets, header, found, panels, lecture)
    return [Action(opener.open, [], opener.outputs()),
            Action(select_tab, [opener.state], [tabs])]
