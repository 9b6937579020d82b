"""The decoders' fast transposed convolutions compute what nn.ConvTranspose2d computes."""

import pytest
import torch
from torch import nn

from models.nets import ChannelsLastConvTranspose2d, FoldConvTranspose2d


@pytest.mark.parametrize("cls", [ChannelsLastConvTranspose2d, FoldConvTranspose2d])
@pytest.mark.parametrize("shape", [(1, 8, 7, 7), (5, 4, 14, 14), (3, 2, 5, 6)])
@pytest.mark.parametrize("bias", [True, False])
def test_same_values_and_gradients_as_the_plain_layer(cls, shape, bias):
    torch.manual_seed(0)
    fast = cls(shape[1], 3, 4, stride=2, padding=1, bias=bias)
    plain = nn.ConvTranspose2d(shape[1], 3, 4, stride=2, padding=1, bias=bias)
    plain.load_state_dict(fast.state_dict())                                  # same keys
    x1 = torch.randn(shape, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = fast(x1), plain(x2)
    assert y1.shape == y2.shape
    assert y1.is_contiguous() or cls is ChannelsLastConvTranspose2d  # (its output stays NHWC)
    assert torch.allclose(y1, y2, atol=1e-5)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    assert torch.allclose(fast.weight.grad, plain.weight.grad, atol=1e-4)


def test_other_settings_fall_back_to_the_plain_kernel():
    torch.manual_seed(0)
    fast = FoldConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    plain = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 7, 7)
    assert torch.allclose(fast(x), plain(x), atol=1e-6)
