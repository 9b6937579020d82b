"""Preprocessing of uploads and drawings into the 28x28 MNIST-style image."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from latentlab import preprocess as pp
from latentlab.preprocess import PreprocessError, prepare


@pytest.fixture(scope="module")
def three() -> np.ndarray:
    from latentlab.data import load_split

    x, y = load_split("mnist", train=False)
    return x[int((y == 3).nonzero()[0]), 0].numpy()      # (28, 28) bright ink on black


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _check_mnist_style(x: np.ndarray) -> None:
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    assert border.max() < 0.05                                    # dark background, ink inside
    rows, cols = np.flatnonzero(x.max(1) > 0), np.flatnonzero(x.max(0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= pp.BOX
    ys, xs = np.mgrid[0:28, 0:28]
    cy, cx = (ys * x).sum() / x.sum(), (xs * x).sum() / x.sum()
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0       # centred by mass


def _photo_of(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark ink on light, unevenly lit paper, off-centre in a 220x160 frame, noisy, JPEG."""
    ink = Image.fromarray((digit * 255).astype(np.uint8)).resize((90, 90), Image.Resampling.BILINEAR)
    canvas = np.zeros((160, 220), np.float32)
    canvas[30:120, 110:200] = np.asarray(ink, np.float32) / 255.0
    light = 0.75 + 0.2 * np.linspace(0, 1, 220)[None, :]           # paper brighter to the right
    photo = light * (1 - 0.8 * canvas) + rng.normal(0, 0.03, canvas.shape)
    rgb = np.stack([photo * 0.98, photo, photo * 0.9], -1)          # slightly warm paper
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    return Image.open(io.BytesIO(_encode(img.filter(ImageFilter.GaussianBlur(1)), "JPEG",
                                         quality=80)))


def test_photo_like_dark_on_light_digit(three):
    x = prepare(_photo_of(three, np.random.default_rng(0)))
    _check_mnist_style(x)
    reference = pp.mnistify(three)
    corr = np.corrcoef(x.ravel(), reference.ravel())[0, 1]
    assert corr > 0.7, f"the photo's digit does not match the original (corr {corr:.2f})"


def test_rgba_drawing_on_transparent_canvas():
    rgba = np.zeros((280, 280, 4), np.uint8)                   # transparent canvas
    rgba[63:217, 131:152] = (0, 0, 0, 255)                      # a black vertical stroke
    x = prepare(rgba)
    _check_mnist_style(x)
    white = rgba.copy()
    white[63:217, 131:152] = (255, 255, 255, 255)               # white strokes work as well
    assert np.allclose(prepare(white), x, atol=0.02)


def test_sketchpad_dict_value():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = (0, 0, 0, 255)
    _check_mnist_style(prepare({"background": None, "layers": [], "composite": rgba}))
    with pytest.raises(PreprocessError, match="empty"):
        prepare({"background": None, "layers": [], "composite": None})


def test_non_square_image_keeps_aspect_ratio():
    img = Image.new("L", (300, 100), 255)
    img.paste(0, (30, 40, 270, 60))                             # a wide bar: 240 x 20
    x = prepare(img)
    _check_mnist_style(x)
    rows, cols = np.flatnonzero(x.max(1) > 0), np.flatnonzero(x.max(0) > 0)
    assert cols[-1] - cols[0] + 1 == pp.BOX                     # the long side fills the box
    assert rows[-1] - rows[0] + 1 <= 4                          # 20/240 of 20 px, not stretched


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_formats(fmt, three):
    img = Image.fromarray(((1 - three) * 255).astype(np.uint8)).resize((112, 112))
    _check_mnist_style(prepare(_encode(img.convert("RGB") if fmt == "JPEG" else img, fmt)))


def test_gif_uses_first_frame(three):
    first = Image.fromarray((three * 255).astype(np.uint8)).resize((56, 56))
    blank = Image.new("L", (56, 56), 0)
    raw = _encode(first, "GIF", save_all=True, append_images=[blank])
    assert prepare(raw).max() > 0.5


def test_exact_28x28_and_own_upscale_roundtrip(three):
    assert np.array_equal(prepare(three), three.astype(np.float32))
    up = pp.upscale(three, 8)
    assert up.shape == (224, 224) and up.dtype == np.uint8
    back = prepare(up)
    assert np.abs(back - three).max() <= 1 / 255 + 1e-6
    assert pp.downscale_exact(np.zeros((30, 30))) is None


def test_file_path_input(tmp_path, three):
    path = tmp_path / "digit.png"
    Image.fromarray(((1 - three) * 255).astype(np.uint8)).save(path)
    _check_mnist_style(prepare(str(path)))


@pytest.mark.parametrize("raw, message", [
    (b"this is not an image", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|corrupt"),
])
def test_bad_files(raw, message):
    with pytest.raises(PreprocessError, match=message):
        prepare(raw)


def test_truncated_png(three):
    raw = _encode(Image.fromarray((three * 255).astype(np.uint8)).resize((200, 200)), "PNG")
    with pytest.raises(PreprocessError, match="corrupt or truncated"):
        prepare(raw[: len(raw) // 2])


def test_huge_images_are_refused():
    bomb = _encode(Image.new("1", (5000, 5000), 0), "PNG")   # 25 Mpx in a few KB
    assert len(bomb) < 100_000
    with pytest.raises(PreprocessError, match="too large|limit"):
        prepare(bomb)
    with pytest.raises(PreprocessError, match="MB"):
        prepare(b"\x00" * (pp.MAX_FILE_BYTES + 1))


@pytest.mark.parametrize("bad", [np.zeros((28, 28)), np.full((50, 40, 3), 255, np.uint8),
                                 np.zeros((5, 5, 2)), np.array([["a"]]), "missing.png", 3.0])
def test_blank_or_malformed_inputs(bad):
    with pytest.raises(PreprocessError):
        prepare(bad)


@pytest.mark.parametrize("make, message", [
    (lambda x: _encode(Image.fromarray(x), "TIFF"), "not an image this app can read"),
    (lambda x: _encode(Image.new("1", (5000, 5000), 0), "PNG"), "too large"),
    (lambda x: _encode(Image.fromarray(x), "PNG")[:60], "corrupt or truncated"),
])
def test_the_actions_image_input_runs_the_checks_of_prepare(tmp_path, three, make, message):
    """/reconstruct (and every action reading "What the model sees") once let Gradio decode
    any file: a TIFF passed, a bomb or a truncated file got Gradio's generic message."""
    import gradio as gr
    from gradio.data_classes import FileData

    from latentlab.ui.common import CheckedImage

    path = tmp_path / "upload.bin"
    path.write_bytes(make((three * 255).astype(np.uint8)))
    with pytest.raises(gr.Error, match=message):
        CheckedImage(type="numpy").preprocess(FileData(path=str(path)))
    path.write_bytes(_encode(Image.fromarray((three * 255).astype(np.uint8)), "PNG"))
    assert np.array_equal(CheckedImage(type="numpy").preprocess(FileData(path=str(path))), three)
