"""Pictures for the app: image grids, code maps, the latent plane and GIFs (charts: ``plots``).

Everything here takes numpy arrays and returns numpy or PIL images; no torch, no
models. Small images are enlarged with nearest-neighbour so each pixel stays visible.

>>> grid = tile(np.zeros((6, 28, 28)), cols=3, scale=2)
>>> grid.shape
(118, 176, 3)
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Tableau-10: distinct, colour-blind friendly class colours.
CLASS_COLORS = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)],
    dtype=np.uint8)
CLASS_HEX = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in CLASS_COLORS]
BACKGROUND = (255, 255, 255)
# Text sizes in image pixels. The atlas is shown about 1:1 at 1280 px; 16 px labels stay
# readable on a projector (11 px ones did not).
ATLAS_SCALE, ATLAS_FONT = 3, 16
TITLE_SIZE = 16                # the titles of a ``stack`` (one per interpolation row)


# ----------------------------------------------------------------------------- helpers

@lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8 (values outside are clipped)."""
    return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of (H, W) or (H, W, C)."""
    return np.repeat(np.repeat(image, scale, 0), scale, 1)


def gray_to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) floats in [0, 1] -> (H, W, 3) uint8."""
    g = to_uint8(image)
    return np.stack([g, g, g], -1)


def code_colors(k: int) -> np.ndarray:
    """A fixed colour per code index (K, 3) uint8: golden-ratio hues, alternating lightness."""
    out = np.zeros((k, 3), np.uint8)
    for i in range(k):
        h = (i * 0.618033988749895) % 1.0
        light = (0.45, 0.62, 0.78)[i % 3]
        out[i] = [int(255 * c) for c in colorsys.hls_to_rgb(h, light, 0.65)]
    return out


def code_hex(k: int) -> list[str]:
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in code_colors(k)]


def _text_color(rgb: np.ndarray) -> tuple[int, int, int]:
    return (0, 0, 0) if float(rgb @ np.array([0.299, 0.587, 0.114])) > 140 else (255, 255, 255)


# ----------------------------------------------------------------------------- image grids

def fit_text(draw: ImageDraw.ImageDraw, text: str, width: float, size: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels (captions never run
    into their neighbours)."""
    if draw.textlength(text, font=font(size)) <= width:
        return text
    while text and draw.textlength(text + "…", font=font(size)) > width:
        text = text[:-1]
    return text + "…"


def caption_height(size: int) -> int:
    return size + 4


def tile(images: np.ndarray, cols: int, scale: int = 3, pad: int = 2,
         captions: list[str] | None = None, caption_colors: list[tuple] | None = None,
         caption_size: int = 11) -> np.ndarray:
    """(N, 28, 28) floats -> one RGB uint8 grid; optional caption line under each image
    (``caption_size`` pixels, shortened to its image's width)."""
    images = np.asarray(images)
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    cap = caption_height(caption_size) if captions else 0
    ch, cw = h * scale + cap, w * scale
    canvas = np.full((rows * (ch + pad) + pad, cols * (cw + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        canvas[y: y + h * scale, x: x + cw] = enlarge(gray_to_rgb(images[i]), scale)
    if captions:
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(captions):
            r, c = divmod(i, cols)
            y, x = pad + r * (ch + pad) + h * scale, pad + c * (cw + pad)
            color = caption_colors[i] if caption_colors else (40, 40, 40)
            draw.text((x + cw / 2, y + 1), fit_text(draw, text, cw - 2, caption_size),
                      fill=color, font=font(caption_size), anchor="mt")
        canvas = np.asarray(img)
    return canvas


def stack(images: list[np.ndarray], titles: list[str], pad: int = 6) -> np.ndarray:
    """RGB uint8 images one under another, each with a title line above it."""
    width = max(im.shape[1] for im in images)
    rows = []
    for im, title in zip(images, titles):
        head = Image.new("RGB", (width, TITLE_SIZE + 8), BACKGROUND)
        ImageDraw.Draw(head).text((2, 4), title, fill=(30, 30, 30), font=font(TITLE_SIZE))
        body = np.full((im.shape[0], width, 3), 255, np.uint8)
        body[:, : im.shape[1]] = im
        rows += [np.asarray(head), body, np.full((pad, width, 3), 255, np.uint8)]
    return np.concatenate(rows[:-1])


def code_map(grid: np.ndarray, k: int, cell: int = 36, selected: np.ndarray | None = None,
             margin: int = 18) -> np.ndarray:
    """A 7x7 code grid as coloured cells with their indices, row / column numbers in the
    margins (counting from 0); selected cells get a black-and-yellow frame."""
    grid = np.asarray(grid, dtype=np.int64)
    colors = code_colors(k)
    h, w = grid.shape
    img = Image.new("RGB", (margin + w * cell, margin + h * cell), BACKGROUND)
    img.paste(Image.fromarray(np.ascontiguousarray(enlarge(colors[np.clip(grid, 0, k - 1)], cell))),
              (margin, margin))
    draw = ImageDraw.Draw(img)
    for i in range(max(h, w)):
        if i < w:
            draw.text((margin + i * cell + cell / 2, margin / 2), str(i), fill=(90, 90, 90),
                      font=font(11), anchor="mm")
        if i < h:
            draw.text((margin / 2, margin + i * cell + cell / 2), str(i), fill=(90, 90, 90),
                      font=font(11), anchor="mm")
    for r in range(h):
        for c in range(w):
            x0, y0 = margin + c * cell, margin + r * cell
            code = int(np.clip(grid[r, c], 0, k - 1))
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], outline=(255, 255, 255))
            draw.text((x0 + cell / 2, y0 + cell / 2), str(int(grid[r, c])),
                      fill=_text_color(colors[code]), font=font(13 if cell >= 32 else 10),
                      anchor="mm")
            if selected is not None and selected[r, c]:
                draw.rectangle([x0 + 1, y0 + 1, x0 + cell - 2, y0 + cell - 2],
                               outline=(0, 0, 0), width=3)
                draw.rectangle([x0 + 4, y0 + 4, x0 + cell - 5, y0 + cell - 5],
                               outline=(255, 230, 0), width=2)
    return np.asarray(img)


def code_map_cell(x: float, y: float, cell: int = 36, margin: int = 18,
                  size: int = 7) -> tuple[int, int] | None:
    """(row, col) under pixel (x, y) of a ``code_map`` image, None in the margins."""
    r, c = int((y - margin) // cell), int((x - margin) // cell)
    return (r, c) if x >= margin and y >= margin and r < size and c < size else None


def atlas(images: np.ndarray, counts: np.ndarray, cols: int = 16, scale: int = ATLAS_SCALE
          ) -> np.ndarray:
    """Codebook atlas: code k decoded alone, its index and test-set usage count below (in
    ATLAS_FONT pixels: readable on a projector)."""
    k = len(images)
    caps = [f"{i}:{_short(int(n))}" for i, n in enumerate(counts)]
    colors = [(200, 0, 0) if n == 0 else (40, 40, 40) for n in counts]
    return tile(images, cols=min(cols, k), scale=scale, pad=2, captions=caps,
                caption_colors=colors, caption_size=ATLAS_FONT)


def atlas_cell(x: int, y: int, k: int, cols: int = 16, scale: int = ATLAS_SCALE) -> int | None:
    """The code under pixel (x, y) of an ``atlas`` image, or None between cells."""
    cols = min(cols, k)
    cw, ch = 28 * scale + 2, 28 * scale + caption_height(ATLAS_FONT) + 2
    c, r = (x - 2) // cw, (y - 2) // ch
    i = int(r * cols + c)
    return i if 0 <= c < cols and 0 <= i < k else None


def _short(n: int) -> str:
    return f"{n / 1000:.0f}k" if n >= 10000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def save_gif(images: np.ndarray, path: str | Path, scale: int = 6, ms: int = 120) -> Path:
    """Animated GIF of (S, 28, 28) frames, played forward then back so it loops smoothly."""
    frames = [Image.fromarray(enlarge(to_uint8(f), scale)) for f in images]
    frames = frames + frames[-2:0:-1]
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return path


# ----------------------------------------------------------------------------- latent plane

@dataclass(frozen=True)
class PlaneView:
    """Pixel <-> latent coordinates of a rendered plane (plot area inside fixed margins).

    >>> v = PlaneView(-3.0, 3.0, -3.0, 3.0)
    >>> v.to_data(*v.to_pixel(1.0, -2.0))
    (1.0, -2.0)
    """

    xmin: float
    xmax: float
    ymin: float
    ymax: float
    size: int = 480          # plot area in pixels (square)
    margin: int = 34         # room for the tick labels

    @property
    def canvas(self) -> int:
        return self.size + 2 * self.margin

    def to_pixel(self, x, y):
        px = self.margin + (np.asarray(x) - self.xmin) / (self.xmax - self.xmin) * self.size
        py = self.margin + (self.ymax - np.asarray(y)) / (self.ymax - self.ymin) * self.size
        return (float(px), float(py)) if np.ndim(px) == 0 else (px, py)

    def to_data(self, px: float, py: float) -> tuple[float, float]:
        x = self.xmin + (px - self.margin) / self.size * (self.xmax - self.xmin)
        y = self.ymax - (py - self.margin) / self.size * (self.ymax - self.ymin)
        return round(float(x), 4), round(float(y), 4)

    def inside(self, px: float, py: float) -> bool:
        return self.margin <= px <= self.margin + self.size and \
            self.margin <= py <= self.margin + self.size


def hpd_levels(log_density: np.ndarray, masses=(0.5, 0.9, 0.99)) -> list[float]:
    """Log-density levels whose super-level sets hold the given probability masses
    (on a uniform grid, so cell areas cancel)."""
    d = np.exp(log_density - log_density.max()).ravel()
    order = np.sort(d)[::-1]
    cum = np.cumsum(order) / order.sum()
    idx = [min(int(np.searchsorted(cum, m)), len(order) - 1) for m in masses]
    return [float(np.log(order[i]) + log_density.max()) for i in idx]


def _density_layer(view: PlaneView, log_density: np.ndarray) -> np.ndarray:
    """Shaded density with contour lines (50/90/99% mass) as an RGB float canvas."""
    levels = hpd_levels(log_density)
    img = Image.fromarray(log_density.astype(np.float32)[::-1])    # row 0 = top = ymax
    up = np.asarray(img.resize((view.size, view.size), Image.Resampling.BILINEAR))
    rel = np.exp(up - up.max())                                      # (S, S) in (0, 1]
    shade = np.array([1.0, 1.0, 1.0]) - rel[..., None] * np.array([0.35, 0.22, 0.04])
    for lev in levels:
        above = up >= lev
        edge = np.zeros_like(above)
        edge[1:, :] |= above[1:, :] != above[:-1, :]
        edge[:, 1:] |= above[:, 1:] != above[:, :-1]
        shade[edge] = (0.25, 0.35, 0.6)
    return shade


def _dots(canvas: np.ndarray, px: np.ndarray, py: np.ndarray, colors: np.ndarray,
          radius: int = 2, alpha: float = 0.75) -> None:
    """Blend small filled discs into a float canvas in place (vectorized, no Python loop)."""
    offs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dx * dx + dy * dy <= radius * radius + 1]
    h, w, _ = canvas.shape
    for dy, dx in offs:
        yy = np.round(py).astype(int) + dy
        xx = np.round(px).astype(int) + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        canvas[yy[ok], xx[ok]] = (1 - alpha) * canvas[yy[ok], xx[ok]] + alpha * colors[ok]


def _nice_ticks(lo: float, hi: float) -> list[float]:
    """About 4-8 round tick values (steps 1, 2 or 5 times a power of ten) inside [lo, hi]."""
    span = max(hi - lo, 1e-9)
    base = 10.0 ** np.floor(np.log10(span / 5))
    step = next(m * base for m in (1, 2, 5, 10) if span / (m * base) <= 8)
    start = np.ceil(lo / step) * step
    return [round(float(v), 6) + 0.0 for v in np.arange(start, hi + step * 1e-6, step)]


def _axes(img: Image.Image, view: PlaneView, xlabel: str, ylabel: str) -> None:
    draw = ImageDraw.Draw(img)
    m, s = view.margin, view.size
    draw.rectangle([m - 1, m - 1, m + s, m + s], outline=(90, 90, 90))
    for t in _nice_ticks(view.xmin, view.xmax):
        px, _ = view.to_pixel(t, view.ymin)
        draw.line([px, m + s, px, m + s + 4], fill=(90, 90, 90))
        draw.text((px, m + s + 5), f"{t:g}", fill=(60, 60, 60), font=font(10), anchor="mt")
    for t in _nice_ticks(view.ymin, view.ymax):
        _, py = view.to_pixel(view.xmin, t)
        draw.line([m - 5, py, m - 1, py], fill=(90, 90, 90))
        draw.text((m - 7, py), f"{t:g}", fill=(60, 60, 60), font=font(10), anchor="rm")
    draw.text((m + s / 2, m + s + 20), xlabel, fill=(30, 30, 30), font=font(12), anchor="mt")
    draw.text((4, m - 18), ylabel, fill=(30, 30, 30), font=font(12), anchor="lt")


def _legend(img: Image.Image, top: int, class_names: list[str], prior: bool, density: bool) -> None:
    """Class colours (and what rings / shading mean) in rows below the plot."""
    draw = ImageDraw.Draw(img)
    items = [(CLASS_HEX[i], name) for i, name in enumerate(class_names)]
    if prior:
        items.append(("ring", "prior sample"))
    if density:
        items.append(("line", "prior 50/90/99%"))
    x, y = 8, top
    for color, name in items:
        width = 16 + int(draw.textlength(name, font=font(11))) + 12
        if x + width > img.width - 4:
            x, y = 8, y + 16
        if color == "ring":
            draw.ellipse([x, y + 3, x + 7, y + 10], outline=(0, 0, 0))
        elif color == "line":
            draw.line([x - 2, y + 7, x + 9, y + 7], fill=(64, 89, 153), width=2)
        else:
            draw.ellipse([x, y + 3, x + 8, y + 11], fill=color)
        draw.text((x + 13, y + 7), name, fill=(40, 40, 40), font=font(11), anchor="lm")
        x += width


def render_plane(view: PlaneView, points: np.ndarray, labels: np.ndarray,
                 prior_points: np.ndarray | None = None, log_density: np.ndarray | None = None,
                 axis_names=("z1", "z2"), title: str = "",
                 class_names: list[str] | None = None) -> Image.Image:
    """Scatter of (N, 2) points coloured by class over an optional prior density (shaded,
    with 50/90/99% contours), prior samples as black rings, and a legend underneath."""
    m, s = view.margin, view.size
    canvas = np.ones((s, s, 3))
    if log_density is not None:
        canvas = _density_layer(view, log_density)
    px, py = view.to_pixel(points[:, 0], points[:, 1])
    colors = CLASS_COLORS[np.asarray(labels) % 10].astype(np.float64) / 255.0
    _dots(canvas, px - m, py - m, colors, radius=2, alpha=0.7)
    legend_h = 40 if class_names else 0
    full = np.full((view.canvas + legend_h, view.canvas, 3), 255, np.uint8)
    full[m: m + s, m: m + s] = to_uint8(canvas)
    img = Image.fromarray(full)
    draw = ImageDraw.Draw(img)
    if prior_points is not None and len(prior_points):
        qx, qy = view.to_pixel(prior_points[:, 0], prior_points[:, 1])
        for x, y in zip(qx, qy):
            if view.inside(x, y):
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=(0, 0, 0), width=1)
    _axes(img, view, *axis_names)
    if title:
        draw.text((m + s / 2, 4), title, fill=(20, 20, 20), font=font(13), anchor="mt")
    if class_names:
        _legend(img, view.canvas + 2, class_names, prior_points is not None and len(prior_points) > 0,
                log_density is not None)
    return img


def mark(img: Image.Image, view: PlaneView, point: tuple[float, float]) -> Image.Image:
    """A copy of a rendered plane with a red cross-hair at ``point`` (data coordinates)."""
    img = img.copy()
    draw = ImageDraw.Draw(img)
    x, y = view.to_pixel(*point)
    draw.ellipse([x - 7, y - 7, x + 7, y + 7], outline=(220, 0, 0), width=3)
    draw.line([x - 12, y, x + 12, y], fill=(220, 0, 0), width=1)
    draw.line([x, y - 12, x, y + 12], fill=(220, 0, 0), width=1)
    return img
