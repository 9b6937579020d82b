"""Pictures: readable labels (projector sizes), captions that stay in their cells, clicks."""

import numpy as np
from PIL import Image, ImageDraw

from latentlab import render


def _ink_rows(band: np.ndarray) -> int:
    """How many pixel rows of a caption band hold dark text."""
    return int((band.min(axis=(1, 2)) < 128).sum())


def test_atlas_labels_are_readable_on_a_projector():
    """The atlas labels were 11 px (about 8 px of ink); now 16 px, digits >= 10 px tall."""
    k = 20
    img = render.atlas(np.zeros((k, 28, 28)), np.arange(k) * 1000, cols=10)
    cell = 28 * render.ATLAS_SCALE
    band = img[2 + cell: 2 + cell + render.caption_height(render.ATLAS_FONT), 2: 2 + cell]
    assert render.ATLAS_FONT >= 14 and _ink_rows(band) >= 10


def test_atlas_clicks_find_each_code():
    k, cols = 40, 16
    img = render.atlas(np.zeros((k, 28, 28)), np.ones(k), cols=cols)
    cw = 28 * render.ATLAS_SCALE + 2
    ch = 28 * render.ATLAS_SCALE + render.caption_height(render.ATLAS_FONT) + 2
    assert img.shape[1] == cols * cw + 2 and img.shape[0] == 3 * ch + 2
    for code in range(k):
        r, c = divmod(code, cols)
        assert render.atlas_cell(2 + c * cw + cw // 2, 2 + r * ch + ch // 2, k, cols) == code


def test_captions_never_run_into_their_neighbours():
    """A long caption (the VQ-VAE's strip once had overlapping ones) is shortened."""
    img = render.tile(np.zeros((3, 28, 28)), cols=3, scale=2, captions=["z_e decoded raw"] * 3)
    cap = img[2 + 56:, :]
    gaps = [2 + 56 + i * 58 for i in range(2)]   # the 2-px white columns between cells
    for x in gaps:
        assert cap[:, x: x + 2].min() == 255
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    short = render.fit_text(draw, "z_e decoded raw", 54, 11)
    assert short.endswith("…") and draw.textlength(short, font=render.font(11)) <= 54


def test_stack_titles_are_large():
    img = render.stack([np.full((10, 40, 3), 255, np.uint8)], ["mnist-vae-z16 · z · linear"])
    assert _ink_rows(img[: render.TITLE_SIZE + 8]) >= 10
