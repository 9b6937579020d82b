"""Image augmentations for the code prior: shifts, turns and mirrors of chosen images."""

import pytest
import torch

from latentlab.augment import mirror_symmetric_classes, rotate_images, shift_images


def test_shift_images_moves_each_image_within_the_bound():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = torch.rand(64, 1, 8, 8) + 0.1                   # a blob off the border
    y = shift_images(x, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)))              # nothing cut off
    for a, b in zip(x, y):
        moved = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(a, (dy, dx), (1, 2)), b)]
        assert len(moved) == 1
    offsets = {tuple((torch.nonzero(b[0])[0] - 10).tolist()) for b in y}
    assert len(offsets) > 10                                                 # many different shifts


def test_a_share_of_the_images_is_shifted_and_the_rest_kept():
    torch.manual_seed(0)
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 10:18, 10:18] = torch.rand(400, 1, 8, 8) + 0.1
    y = shift_images(x, 1, torch.Generator().manual_seed(0), share=0.25)
    unmoved = (y == x).flatten(1).all(1).float().mean().item()
    # 75 % kept, and a moved image lands on offset (0, 0) by chance 1/9 of the time
    assert unmoved == pytest.approx(0.75 + 0.25 / 9, abs=0.06)
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)))
    # share 1 draws nothing extra: the fits made before the option replay exactly
    assert torch.equal(shift_images(x, 1, torch.Generator().manual_seed(3), share=1.0),
                       shift_images(x, 1, torch.Generator().manual_seed(3)))


def _orientation_degrees(y: torch.Tensor) -> torch.Tensor:
    """The angle of each image's (N, 1, H, W) main axis from its second moments."""
    h, w = y.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=y.dtype), torch.arange(w, dtype=y.dtype),
                            indexing="ij")
    m = y[:, 0] / y[:, 0].sum((1, 2), keepdim=True)                          # (N, H, W)
    cy, cx = (m * yy).sum((1, 2)), (m * xx).sum((1, 2))                      # (N,)
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]                  # (N, H, W)
    cov_xx, cov_yy, cov_xy = (m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * cov_xy, cov_xx - cov_yy))


def test_rotate_images_turns_each_image_about_the_centre_within_the_bound():
    x = torch.zeros(200, 1, 28, 28)
    x[:, :, 13:15, 4:24] = 1                                                 # a bar through the centre
    assert torch.allclose(rotate_images(x, 0.0, torch.Generator()), x, atol=1e-5)  # no blur
    y = rotate_images(x, 15.0, torch.Generator().manual_seed(0))
    angle = _orientation_degrees(y)
    assert angle.abs().max() <= 15.5 and angle.max() - angle.min() > 25     # spread over +-15
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.02)   # the bar stays whole
    mass = y[:, 0].sum((1, 2))                                                # (N,)
    rows = (y[:, 0].sum(2) * torch.arange(28)).sum(1) / mass                 # centre of mass
    cols = (y[:, 0].sum(1) * torch.arange(28)).sum(1) / mass
    assert max((rows - 13.5).abs().max(), (cols - 13.5).abs().max()) < 0.1  # still centred


def test_turns_go_to_the_chosen_share_and_leave_shift_only_fits_as_they_were():
    torch.manual_seed(0)
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 10:18, 10:18] = torch.rand(400, 1, 8, 8) + 0.1
    turned = shift_images(x, 0, torch.Generator().manual_seed(1), share=0.25, max_degrees=20.0)
    kept = (turned == x).flatten(1).all(1)
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.06)
    # the same draws pick the same images: a turn is added to exactly the moved ones
    moved = shift_images(x, 1, torch.Generator().manual_seed(2), share=0.3)
    both = shift_images(x, 1, torch.Generator().manual_seed(2), share=0.3, max_degrees=20.0)
    chosen = ~(both == x).flatten(1).all(1)
    assert torch.equal(moved[~chosen], both[~chosen]) and chosen.float().mean() > 0.2


def _half_blobs(n: int) -> torch.Tensor:
    """Images (N, 1, 28, 28) with a blob in the left half only: a mirror shows at once."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 10:18, 4:12] = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    return x


def test_mirror_symmetric_classes_picks_the_classes_whose_mean_is_its_own_mirror():
    x = _half_blobs(30)
    x[10:20] = x[10:20] + x[10:20].flip(-1)                                  # class 1: symmetric
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    x[20:25] = x[20:25].flip(-1)                      # class 2: half face each way, mean symmetric
    assert mirror_symmetric_classes(x, y).tolist() == [False] * 10 + [True] * 20


def test_mirrors_go_to_moved_mirrorable_images_only_and_leave_other_fits_as_they_were():
    x = _half_blobs(800)
    mirrorable = torch.arange(800) % 2 == 0
    out = shift_images(x, 0, torch.Generator().manual_seed(1), share=0.5, mirror=0.5,
                       mirrorable=mirrorable)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((mirrored ^ kept).all()) and not mirrored[~mirrorable].any()  # nothing else done
    # a quarter of the mirrorable ones: moved (a half) and then mirrored (a half)
    assert mirrored[mirrorable].float().mean().item() == pytest.approx(0.25, abs=0.05)
    moved = shift_images(x, 1, torch.Generator().manual_seed(2), share=0.3)
    both = shift_images(x, 1, torch.Generator().manual_seed(2), share=0.3, mirror=1.0,
                        mirrorable=torch.ones(800, dtype=torch.bool))
    # the same draws pick the same images and moves; mirror 1 then mirrors every chosen one
    shifted = ~(moved == x).flatten(1).all(1)      # chosen, less those drawn offset (0, 0)
    assert torch.equal(both[shifted], moved[shifted].flip(-1))
    same = (both == moved).flatten(1).all(1)
    assert bool((same | (both == moved.flip(-1)).flatten(1).all(1)).all())
    assert (~same[~shifted]).float().mean().item() < 0.1    # the unchosen are left alone
    with pytest.raises(ValueError, match="mirrorable mask"):
        shift_images(x, 1, torch.Generator(), mirror=0.5)
