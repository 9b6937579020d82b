"""Presenter mode and the header's link tools.

Presenter mode is a class on ``<body>`` (``ll-presenter``) that ``PRESENTER_CSS`` scopes large
type, high contrast and a one-line header under; the header's checkbox toggles it in the browser
(no server round trip) and ``?presenter=1`` sets it as the page loads (``PRESENTER_JS``, given to
``launch``). The header also holds "Copy link to this view" (wired by ``latentlab.ui.links``).

>>> "ll-presenter" in PRESENTER_CSS and "presenter" in PRESENTER_JS
True
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

PRESENTER_CLASS = "ll-presenter"
# `:root body.ll-presenter` outranks the theme's `:root .dark` (Gradio may mark <body> dark), and
# every size variable is set here because the theme resolves them once, on :root.
PRESENTER_CSS = """
:root body.ll-presenter {
  --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 20px; --text-lg: 22px;
  --text-xl: 28px; --text-xxl: 34px;
  --body-text-size: 20px; --prose-text-size: 20px; --input-text-size: 20px;
  --checkbox-label-text-size: 20px; --section-header-text-size: 20px;
  --block-label-text-size: 18px; --block-title-text-size: 18px; --block-info-text-size: 18px;
  --button-large-text-size: 22px; --button-medium-text-size: 20px; --button-small-text-size: 18px;
  --body-text-color: #0b0b0b; --body-text-color-subdued: #262626;
  --block-label-text-color: #0b0b0b; --block-title-text-color: #0b0b0b;
  --block-info-text-color: #262626; --checkbox-label-text-color: #0b0b0b;
  --accordion-text-color: #0b0b0b; --table-text-color: #0b0b0b;
  --background-fill-primary: #ffffff; --background-fill-secondary: #f4f4f5;
  --body-background-fill: #ffffff; --block-background-fill: #ffffff;
  --block-label-background-fill: #e0e7ff; --border-color-primary: #737373;
  --block-border-color: #a3a3a3; --input-background-fill: #ffffff;
  --link-text-color: #1e3a8a;
  background: #ffffff; color: #0b0b0b;
}
body.ll-presenter .gradio-container { font-size: 20px; }
body.ll-presenter .prose, body.ll-presenter .prose p, body.ll-presenter .prose li,
body.ll-presenter .prose td { font-size: 20px; line-height: 1.45; }
body.ll-presenter [role="tab"], body.ll-presenter button { font-size: 20px; }
body.ll-presenter .ll-note, body.ll-presenter .ll-note p { font-size: 18px; color: #262626; }
/* compact header: the title and the tools on one line, the introduction hidden */
body.ll-presenter #ll-header p, body.ll-presenter #ll-header ul { display: none; }
body.ll-presenter #ll-header h1 { font-size: 30px; margin: 0; }
body.ll-presenter #ll-top { align-items: center; flex-wrap: nowrap; }
body.ll-presenter #ll-tools { flex-grow: 3 !important; flex-direction: row; flex-wrap: wrap;
  align-items: center; justify-content: flex-end; }
body.ll-presenter #ll-tools > * { flex: 0 1 auto; width: auto; }
body.ll-presenter #ll-link-box { flex: 1 1 100%; }
body.ll-presenter #ll-link-box:has(textarea:placeholder-shown),
body.ll-presenter #ll-link-box:has(input:placeholder-shown) { display: none; }
body.ll-presenter .gallery-pixelated .caption-label { font-size: 18px; }
body.ll-presenter [role="tab"][aria-selected="true"] { color: #1e1b4b; font-weight: 600; }
/* lecture panels: controls (the 240 px columns) wider and tighter, so that the main button
   and the result share one 720 px screen; the seed's reminder line goes */
body.ll-presenter .gr-accordion .column[style*="min(240px"] {
  min-width: min(330px, 100%) !important; gap: 8px; }
body.ll-presenter .gr-accordion .column[style*="min(240px"] .info-text { display: none; }
body.ll-presenter .gr-accordion .column[style*="min(240px"] .block {
  padding-top: 4px; padding-bottom: 4px; }
body.ll-presenter table { font-size: 16px; }  /* data, not labels: wide tables must fit */
/* plots: plotly writes 12 px into each SVG text's style; a projector needs more. Ticks grow
   less than titles so that dense axes keep their gaps; every subplot's axes (xtick, x2tick,
   ...) and titles (g-xtitle, g-x2title, ...) are matched by their class's ending. */
body.ll-presenter .js-plotly-plot g[class$="tick"] text { font-size: 15px !important; }
body.ll-presenter .js-plotly-plot g[class$="title"] text,
body.ll-presenter .js-plotly-plot .gtitle { font-size: 17px !important; }
body.ll-presenter .js-plotly-plot g[class$="tick"] text,
body.ll-presenter .js-plotly-plot .legendtext { fill: #0b0b0b !important; }
/* (legends and annotations keep plotly's size: it places their items by their measured width) */
#ll-tools { gap: 6px; }
#ll-link-note { font-size: 0.9em; }
"""
# The class switch shared by the launch script and the checkbox: presenter mode is a light,
# high-contrast page, so a dark theme steps aside while it is on and comes back after.
SWITCH_JS = f"""
window.llPresenter = (on) => {{
  const body = document.body;
  if (on && body.classList.contains('dark')) {{ body.classList.remove('dark'); body.dataset.llDark = '1'; }}
  if (!on && body.dataset.llDark) {{ body.classList.add('dark'); delete body.dataset.llDark; }}
  body.classList.toggle('{PRESENTER_CLASS}', !!on);
}};
"""
# Launch-time script: ?presenter=1 sets the class before anyone clicks.
PRESENTER_JS = f"""
() => {{
  {SWITCH_JS}
  const p = new URLSearchParams(window.location.search).get('presenter');
  if (['1', 'true', 'yes', 'on'].includes((p || '').toLowerCase())) window.llPresenter(true);
}}
"""
TOGGLE_JS = f"""(on) => {{
  if (!window.llPresenter) {{ {SWITCH_JS} }}
  window.llPresenter(on);
  return [];
}}"""


@dataclass
class Header:
    """The header's widgets and the hidden boxes a link is built from.

    ``tab``, ``example`` and ``panel`` follow the open tab, Reconstruct's example and the open
    lecture panel (no component holds these as a value).

    >>> with gr.Blocks():
    ...     header = build_header("# Latent Lab")
    >>> header.copy.value, header.tab.value
    ('🔗 Copy link to this view', 'reconstruct')
    """

    presenter: gr.Checkbox
    copy: gr.Button
    link: gr.Textbox
    note: gr.Markdown
    tab: gr.Textbox
    example: gr.Number
    panel: gr.Textbox


def build_header(intro: str) -> Header:
    """The introduction with presenter mode and "copy link" beside it."""
    with gr.Row(elem_id="ll-top", equal_height=False):
        with gr.Column(scale=5, min_width=320):
            gr.Markdown(intro, elem_id="ll-header")
            note = gr.Markdown(elem_id="ll-link-note", elem_classes="ll-note")
        with gr.Column(scale=1, min_width=260, elem_id="ll-tools"):
            presenter = gr.Checkbox(False, label="Presenter mode", elem_id="ll-presenter-toggle",
                                    container=False)
            copy = gr.Button("🔗 Copy link to this view", size="sm", elem_id="ll-copy-link")
            with gr.Group(elem_id="ll-link-box"):
                link = gr.Textbox(label="Link to this view", elem_id="ll-link", max_lines=1,
                                  interactive=False, buttons=["copy"], show_label=False,
                                  placeholder="the link appears here")
            tab = gr.Textbox("reconstruct", visible="hidden", elem_id="ll-link-tab")
            example = gr.Number(None, precision=0, visible="hidden", elem_id="ll-link-example")
            panel = gr.Textbox("", visible="hidden", elem_id="ll-link-panel")
    presenter.change(None, [presenter], None, js=TOGGLE_JS, api_name="presenter_mode",
                     api_visibility="private", show_progress="hidden")
    return Header(presenter, copy, link, note, tab, example, panel)
