"""Turn any picture of a digit or garment into the 28x28 image an MNIST model expects.

MNIST's own recipe, applied to uploads and drawings: grayscale, make the ink bright on a
dark background, crop to the ink, scale the crop into a 20x20 box (aspect ratio kept) and
paste it into a 28x28 frame so that its centre of mass sits in the middle.

>>> from PIL import Image
>>> img = Image.new("L", (300, 200), 255)                  # white paper ...
>>> img.paste(0, (120, 40, 160, 160))                      # ... with a dark stroke
>>> x = prepare(img)
>>> x.shape, x.dtype, float(x.max())
((28, 28), dtype('float32'), 1.0)
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from latentlab.errors import InputError

SIZE = 28                      # MNIST frame
BOX = 20                       # MNIST scales each digit into a 20x20 box
MAX_FILE_BYTES = 10 * 2**20    # uploads above this are refused before decoding
MAX_PIXELS = 4096 * 4096       # decoded size limit (decompression-bomb guard)
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")  # JPEG covers MPO (phone cameras) too
INK_THRESHOLD = 0.1            # ink below this (after contrast stretch) is paper noise

# PIL's own guard: refuse (not just warn about) images much larger than we need.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class PreprocessError(InputError):
    """The input cannot be turned into a 28x28 image; the message says why, for the user."""


# ----------------------------------------------------------------------------- loading

def _open_path(path: Path) -> Image.Image:
    if not path.is_file():
        raise PreprocessError(f"file not found: {path.name}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PreprocessError(f"the file is {size / 2**20:.1f} MB; the limit is "
                              f"{MAX_FILE_BYTES / 2**20:.0f} MB")
    return _open_bytes(path.read_bytes())


def _open_bytes(raw: bytes) -> Image.Image:
    if len(raw) > MAX_FILE_BYTES:
        raise PreprocessError(f"the image is larger than {MAX_FILE_BYTES / 2**20:.0f} MB")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw), formats=FORMATS)
            _check_pixels(img)
            img.seek(0)            # animated GIF/WebP: the first frame
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PreprocessError(f"the image is too large to decode safely ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise PreprocessError("not an image this app can read; use PNG, JPEG, WebP, BMP "
                                  "or GIF") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise PreprocessError(f"the image file is corrupt or truncated ({exc})") from exc
    return img


def _check_pixels(img: Image.Image) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise PreprocessError(f"the image has {w}x{h} pixels; the limit is {MAX_PIXELS:,} pixels")
    if w < 1 or h < 1:
        raise PreprocessError("the image is empty (0 pixels)")


def _from_array(arr: np.ndarray) -> np.ndarray:
    """Any numeric array (H, W), (H, W, 1|3|4) -> float RGBA-free grey handled later."""
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise PreprocessError(f"expected an image array (H, W) or (H, W, 1|3|4), got {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS or min(arr.shape[:2]) < 1:
        raise PreprocessError(f"image array of shape {arr.shape} is empty or too large")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise PreprocessError(f"image array has non-numeric dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise PreprocessError("image array contains NaN or infinite values")
    if arr.max() > 1.0:        # 0..255 images; 0..1 floats pass unchanged
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)


def load_image(source: Any) -> np.ndarray:
    """Read a path, bytes, PIL image, numpy array or an image-editor dict.

    Returns a float array in [0, 1], (H, W) grey or (H, W, 4) RGBA.
    """
    if isinstance(source, dict):  # gr.ImageEditor / gr.Sketchpad value
        source = source.get("composite")
        if source is None:
            raise PreprocessError("the canvas is empty: draw something first")
    if source is None:
        raise PreprocessError("no image given: upload one, draw one or pick an example")
    if isinstance(source, (str, os.PathLike)):
        source = _open_path(Path(source))
    elif isinstance(source, (bytes, bytearray)):
        source = _open_bytes(bytes(source))
    if isinstance(source, Image.Image):
        _check_pixels(source)
        img = ImageOps.exif_transpose(source)
        mode = "RGBA" if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info else "L"
        return _from_array(np.asarray(img.convert(mode)))
    if isinstance(source, np.ndarray):
        return _from_array(source)
    raise PreprocessError(f"cannot read an image from a {type(source).__name__}")


# ----------------------------------------------------------------------------- ink

def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA over a backdrop that contrasts with the strokes: (H, W, 4) -> (H, W).

    A drawing of dark strokes on a transparent canvas goes on white, one of light strokes
    goes on black, so the strokes stay visible whatever colour they have.
    """
    grey = rgba[..., :3].mean(-1)
    alpha = rgba[..., 3]
    if alpha.min() > 0.99:
        return grey
    if alpha.max() < 0.01:
        raise PreprocessError("the image is fully transparent: nothing to see")
    stroke_level = float((grey * alpha).sum() / alpha.sum())
    backdrop = 1.0 if stroke_level < 0.5 else 0.0
    return grey * alpha + backdrop * (1.0 - alpha)


def to_ink(image: np.ndarray) -> np.ndarray:
    """Grey (H, W) in [0, 1] with bright ink on a dark background, contrast stretched.

    The paper colour is the median of the border pixels; a light paper means dark ink, so
    the image is inverted (scanned or photographed digits are dark on light).
    """
    grey = _flatten_alpha(image) if image.ndim == 3 and image.shape[2] == 4 else image
    if grey.ndim == 3:
        grey = grey.mean(-1)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    if paper > 0.5:
        grey, paper = 1.0 - grey, 1.0 - paper
    peak = float(grey.max())
    if peak - paper < 0.05:
        raise PreprocessError("the image is blank (no strokes stand out from the background)")
    ink = np.clip((grey - paper) / (peak - paper), 0.0, 1.0)
    ink[ink < max(INK_THRESHOLD, 0.5 * _otsu(ink))] = 0.0  # shading and sensor noise
    return ink.astype(np.float32)


def _otsu(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold: the level that best splits the values into two groups."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0.0
    return float(edges[int(np.argmax(between)) + 1])


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.max(1) > 0)
    cols = np.flatnonzero(ink.max(0) > 0)
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _fit_box(crop: np.ndarray, box: int = BOX) -> np.ndarray:
    """Scale so the longer side is ``box`` pixels (area-averaging keeps thin strokes)."""
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray((crop * 255).astype(np.uint8))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(img.resize(size, resample), dtype=np.float32) / 255.0


def _centre_by_mass(small: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Paste into a size x size frame with the centre of mass at the frame's centre."""
    h, w = small.shape
    ys, xs = np.mgrid[0:h, 0:w]
    mass = small.sum()
    cy, cx = (ys * small).sum() / mass, (xs * small).sum() / mass
    top = int(np.clip(round(size / 2 - 0.5 - cy), 0, size - h))
    left = int(np.clip(round(size / 2 - 0.5 - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[top: top + h, left: left + w] = small
    return out


# ----------------------------------------------------------------------------- public API

def mnistify(ink: np.ndarray) -> np.ndarray:
    """Bright-ink image (H, W) -> (28, 28): crop, fit into 20x20, centre by mass."""
    return _centre_by_mass(_fit_box(_crop_to_ink(ink)))


def downscale_exact(image: np.ndarray) -> np.ndarray | None:
    """A 28s x 28s image made of s x s blocks (our own upscaled display) -> its 28x28 source.

    Returns None when the image is not such a block upscale.
    """
    h, w = image.shape[:2]
    if h != w or h % SIZE:
        return None
    s = h // SIZE
    small = image[::s, ::s]
    if not np.array_equal(np.repeat(np.repeat(small, s, 0), s, 1), image):
        return None
    return small


def prepare(source: Any) -> np.ndarray:
    """Any input -> the (28, 28) float32 image in [0, 1] the models see (ink bright).

    28x28 images on a dark background, and our own nearest-neighbour upscales of them, are
    taken as they are: they already are MNIST-style, and a test example stays exact.
    """
    image = load_image(source)
    grey = _flatten_alpha(image) if image.ndim == 3 and image.shape[2] == 4 else image
    if grey.ndim == 3:
        grey = grey.mean(-1)
    exact = downscale_exact(grey)
    if exact is not None:
        border = np.concatenate([exact[0], exact[-1], exact[:, 0], exact[:, -1]])
        if np.median(border) < 0.5:
            if exact.max() < 0.05:
                raise PreprocessError("the image is blank: draw or upload a digit")
            return np.ascontiguousarray(exact, dtype=np.float32)
    return mnistify(to_ink(grey))


def upscale(image28: np.ndarray, scale: int = 8) -> np.ndarray:
    """(H, W) or (H, W, 3) floats in [0, 1] -> uint8 nearest-neighbour upscale (pixels show)."""
    arr = np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0)
    arr = (arr * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(np.repeat(arr, scale, 0), scale, 1)
