"""Small plotly charts for the app, as plain plotly JSON dicts.

Charts are ``{"data": [...], "layout": {...}}`` dicts that the browser's plotly.js draws.
Building them without plotly's Python validation takes microseconds instead of tens of
milliseconds per figure, which matters for the 50 ms budgets.

>>> fig = bar_chart(["a", "b"], np.array([1.0, 2.0]), "title", "x", "y")
>>> fig["data"][0]["y"], fig["layout"]["title"]["text"]
([1.0, 2.0], 'title')
"""

from __future__ import annotations

import json

import numpy as np

from latentlab.render import CLASS_HEX, code_hex

Figure = dict
PLOT_MARGIN = {"l": 40, "r": 10, "t": 52, "b": 36}
AXIS = {"gridcolor": "#e5ecf6", "zerolinecolor": "#c8d4e3", "linecolor": "#c8d4e3",
        "automargin": True}


def _list(values) -> list:
    return np.asarray(values, dtype=np.float64).round(5).tolist()


def figure(traces: list[dict], title: str, height: int = 280, xlabel: str = "",
           ylabel: str = "", equal_axes: bool = False, **layout) -> Figure:
    """A plotly figure dict in a light, plotly_white-like style."""
    lay = {"title": {"text": title, "font": {"size": 14}}, "height": height,
           "margin": PLOT_MARGIN, "paper_bgcolor": "white", "plot_bgcolor": "white",
           "font": {"size": 12}, "modebar": {"orientation": "v"},
           "xaxis": {**AXIS, "title": {"text": xlabel}},
           "yaxis": {**AXIS, "title": {"text": ylabel}}}
    if equal_axes:
        lay["yaxis"].update(scaleanchor="x", scaleratio=1)
    lay.update(layout)
    return {"data": traces, "layout": lay}


def to_json(fig: Figure) -> str:
    """The figure as the JSON string gr.Plot sends to the browser."""
    return json.dumps(fig, separators=(",", ":"))


def posterior_bars(rows: list[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Posterior mean +- one standard deviation per latent dimension, one trace per model."""
    # numbered dimensions on a numeric axis: plotly thins the ticks on a narrow (phone) plot,
    # where 16 category labels "z1".."z16" overlapped
    traces = [{"type": "bar", "name": label, "x": list(range(1, len(mu) + 1)),
               "y": _list(mu), "error_y": {"type": "data", "array": _list(std), "visible": True}}
              for label, mu, std in rows]
    zero = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
            "line": {"color": "#888", "width": 1}}
    fig = figure(traces, "Posterior q(z|x): mean ± std<br>per dimension (prior: 0 ± 1)",
                 xlabel="dimension d of z", barmode="group",
                 legend={"orientation": "h", "y": -0.3, "yanchor": "top"}, shapes=[zero])
    fig["layout"]["xaxis"].update(tickmode="auto", nticks=16)
    return fig


def posterior_ellipses(points: np.ndarray, labels: np.ndarray,
                       ellipses: list[tuple[str, np.ndarray, np.ndarray]],
                       class_names: list[str]) -> Figure:
    """2-D latent: the aggregated posterior (test means by class) with each model's posterior
    of the input drawn as its 1- and 2-sigma ellipses."""
    traces = []
    for c in range(10):
        sel = labels == c
        traces.append({"type": "scattergl", "mode": "markers", "name": class_names[c],
                       "x": _list(points[sel, 0]), "y": _list(points[sel, 1]), "hoverinfo": "skip",
                       "marker": {"size": 3, "color": CLASS_HEX[c], "opacity": 0.45}})
    t = np.linspace(0, 2 * np.pi, 60)
    for j, (label, mu, std) in enumerate(ellipses):
        color = ["#000000", "#d62728", "#9400d3", "#2ca02c"][j % 4]
        for r, dash in ((1, "solid"), (2, "dot")):
            traces.append({"type": "scatter", "mode": "lines", "name": f"{label} ({r}σ)",
                           "x": _list(mu[0] + r * std[0] * np.cos(t)),
                           "y": _list(mu[1] + r * std[1] * np.sin(t)), "showlegend": r == 1,
                           "line": {"color": color, "width": 2, "dash": dash}})
        traces.append({"type": "scatter", "mode": "markers", "x": [float(mu[0])],
                       "y": [float(mu[1])], "showlegend": False,
                       "marker": {"color": color, "size": 9, "symbol": "x"}})
    return figure(traces, "q(z|x) of the input over the aggregated posterior q_agg(z)",
                  height=420, xlabel="z1", ylabel="z2", equal_axes=True)


def line_chart(x: np.ndarray, series: dict[str, np.ndarray], title: str, xlabel: str,
               ylabel: str, height: int = 260) -> Figure:
    traces = [{"type": "scatter", "mode": "lines+markers", "name": name, "x": _list(x),
               "y": _list(y)} for name, y in series.items()]
    return figure(traces, title, height, xlabel, ylabel,
                  legend={"orientation": "h", "y": -0.3, "yanchor": "top"})


def path_density(t: np.ndarray, series: list[tuple[str, np.ndarray, bool]],
                 height: int = 320) -> Figure:
    """log p along interpolation paths: (label, values, is_code_prior) per path.

    The code prior's log p_lambda(codes) (a sum over 49 cells, -100 to -250 nats) gets its
    own right-hand axis; on one axis with the VAEs' log p(z) (about -20) it flattened them.

    >>> fig = path_density(np.linspace(0, 1, 3), [("vae", np.zeros(3), False),
    ...                                            ("vq", -np.ones(3) * 200, True)])
    >>> [tr["yaxis"] for tr in fig["data"]], fig["layout"]["yaxis2"]["side"]
    (['y', 'y2'], 'right')
    """
    both = any(vq for *_, vq in series) and not all(vq for *_, vq in series)
    traces = [{"type": "scatter", "mode": "lines+markers", "name": name, "x": _list(t),
               "y": _list(y), "yaxis": "y2" if vq and both else "y",
               "line": {"dash": "dot"} if vq else {}} for name, y, vq in series]
    vq_only = all(vq for *_, vq in series)
    left = "log p_λ(codes) (nats)" if vq_only else "log p(z) (nats)"
    fig = figure(traces, "Prior log-density along the path", height, "t", left,
                 legend={"orientation": "h", "y": -0.3, "yanchor": "top", "x": 0},
                 margin={"l": 50, "r": 60 if both else 10, "t": 40, "b": 40})
    if both:
        fig["layout"]["yaxis2"] = {**AXIS, "title": {"text": "log p_λ(codes) (nats)"},
                                   "overlaying": "y", "side": "right", "showgrid": False}
    return fig


def bar_chart(x: list, y: np.ndarray, title: str, xlabel: str, ylabel: str,
              colors: list[str] | None = None, height: int = 260, log_y: bool = False) -> Figure:
    trace = {"type": "bar", "x": list(x), "y": _list(y)}
    if colors is not None:
        trace["marker"] = {"color": colors}
    fig = figure([trace], title, height, xlabel, ylabel)
    if log_y:
        fig["layout"]["yaxis"]["type"] = "log"
    return fig


def codebook_scatter(codes_xy: np.ndarray, usage: np.ndarray, ze_xy: np.ndarray,
                     ze_code: np.ndarray, k: int) -> Figure:
    """Codebook vectors e_k (PCA) with encoder outputs z_e around them, coloured by the code
    they snap to: the Voronoi picture of vector quantization."""
    palette = code_hex(k)
    traces = [{"type": "scattergl", "mode": "markers", "name": "z_e (encoder)",
               "x": _list(ze_xy[:, 0]), "y": _list(ze_xy[:, 1]), "hoverinfo": "skip",
               "marker": {"size": 3, "opacity": 0.35, "color": [palette[c] for c in ze_code]}}]
    dead = usage == 0
    text = [f"code {i}, used {int(n)}x" for i, n in enumerate(usage)]
    for name, sel, sym, col in (("codebook e_k", ~dead, "diamond", "#000"),
                                ("dead codes", dead, "x", "#d62728")):
        traces.append({"type": "scatter", "mode": "markers", "name": name,
                       "x": _list(codes_xy[sel, 0]), "y": _list(codes_xy[sel, 1]),
                       "text": [t for t, m in zip(text, sel) if m], "hoverinfo": "text",
                       "marker": {"size": 7, "symbol": sym, "color": col}})
    return figure(traces, "Codebook (PCA) and encoder outputs: each z_e snaps to its nearest e_k",
                  height=420, xlabel="PC 1", ylabel="PC 2", equal_axes=True,
                  legend={"orientation": "h", "y": -0.2})
