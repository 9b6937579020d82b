"""Image augmentations that give a code prior new grids of the same training images.

A code prior over-fits its 50,000 training grids long before one CPU hour is spent: moved,
turned or mirrored copies of the images, encoded afresh each epoch, are new grids of the same
digits and garments (``latentlab.fit_prior`` applies them to a share of the images per epoch).

>>> x = torch.zeros(2, 1, 5, 5); x[:, :, 2, 0] = 1                        # a dot on the left
>>> out = shift_images(x, 0, torch.Generator().manual_seed(0), mirror=1.0,
...                    mirrorable=torch.tensor([True, False]))
>>> out[:, 0, 2].tolist()                                                # only the first mirrored
[[0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math

import torch


def shift_images(x: torch.Tensor, max_shift: int, gen: torch.Generator, share: float = 1.0,
                 max_degrees: float = 0.0, mirror: float = 0.0,
                 mirrorable: torch.Tensor | None = None) -> torch.Tensor:
    """Each image (N, 1, H, W) moved by its own random (dy, dx) in [-max_shift, max_shift]^2,
    zero-filled: the same digits in other positions, so other code grids. With ``share`` < 1
    only that share of the images (drawn afresh each call) is moved at all; with
    ``max_degrees`` > 0 those are also turned by ``rotate_images``; with ``mirror`` > 0 each
    of those that ``mirrorable`` (N,) allows is mirrored left-right with that chance.

    >>> x = torch.zeros(2, 1, 5, 5); x[:, :, 2, 2] = 1
    >>> y = shift_images(x, 1, torch.Generator().manual_seed(0))
    >>> y.shape, y.sum().item(), bool((y[:, :, 1:4, 1:4].sum((1, 2, 3)) == 1).all())
    (torch.Size([2, 1, 5, 5]), 2.0, True)
    """
    s = max_shift
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (s, s, s, s))                        # (N, 1, H+2s, W+2s)
    dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=gen)
    chosen = torch.ones(n, dtype=torch.bool)
    if share < 1:  # offset s is no move; share 1 draws nothing more, so old fits replay
        chosen = torch.rand(n, generator=gen) < share
        dy[~chosen], dx[~chosen] = s, s
    out = torch.empty_like(x)
    for oy in range(2 * s + 1):  # one slice per offset: (2s+1)^2 batched copies, not N
        for ox in range(2 * s + 1):
            pick = ((dy == oy) & (dx == ox)).nonzero().squeeze(1)
            out[pick] = padded[pick, :, oy:oy + h, ox:ox + w]
    if max_degrees > 0:  # drawn after the shifts, so fits without turns replay bit for bit
        out[chosen] = rotate_images(out[chosen], max_degrees, gen)
    if mirror > 0:  # drawn last, for the same reason
        if mirrorable is None or mirrorable.shape != (n,):
            raise ValueError(f"mirror > 0 needs a mirrorable mask of shape ({n},)")
        flip = chosen & mirrorable.cpu() & (torch.rand(n, generator=gen) < mirror)   # (N,)
        out[flip] = out[flip].flip(-1)
    return out


def mirror_symmetric_classes(x: torch.Tensor, y: torch.Tensor, tolerance: float = 0.3
                             ) -> torch.Tensor:
    """Which images (N,) belong to a class whose mean image is its own mirror image, up to
    ``tolerance`` (the L1 distance between the mean and its mirror, over the mean's mass).

    A mirrored shirt is another plausible shirt; a mirrored shoe points right, which no
    Fashion-MNIST shoe does, and a mirrored digit is no digit. The class means say which is
    which (Fashion: 0.06-0.24 for tops, trousers, dresses, coats and bags, 0.58-0.99 for
    sandals, sneakers and boots; MNIST: 0.41 and more for every digit).

    >>> x = torch.zeros(4, 1, 3, 3); x[:2, :, 1, 1] = 1; x[2:, :, 1, 0] = 1  # centred, left
    >>> mirror_symmetric_classes(x, torch.tensor([0, 0, 1, 1])).tolist()
    [True, True, False, False]
    """
    keep = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    for c in y.unique():
        mean = x[y == c].mean(0)                                             # (1, H, W)
        asymmetry = (mean - mean.flip(-1)).abs().sum() / mean.abs().sum().clamp_min(1e-12)
        keep[y == c] = bool(asymmetry <= tolerance)
    return keep


def rotate_images(x: torch.Tensor, max_degrees: float, gen: torch.Generator) -> torch.Tensor:
    """Each image (N, 1, H, W) turned about the frame's centre by its own angle, uniform in
    [-max_degrees, max_degrees], bilinear and zero-filled: a slanted digit that stays centred.

    >>> x = torch.zeros(3, 1, 9, 9); x[:, :, 4, 4] = 1; x[:, :, 4, 2] = 1
    >>> y = rotate_images(x, 30.0, torch.Generator().manual_seed(0))
    >>> y[:, 0, 4, 4].tolist(), bool((y[:, 0, 4, 2] < 1).all())  # the centre stays, the rest turns
    ([1.0, 1.0, 1.0], True)
    """
    angle = (torch.rand(len(x), generator=gen) * 2 - 1) * math.radians(max_degrees)  # (N,)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                         torch.stack([sin, cos, zero], 1)], 1)               # (N, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)              # (N, 1, H, W)
