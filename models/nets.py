"""Convolutional encoder and decoder trunks shared by the VAE, VQ-VAE and classifier.

Resolution path: 28x28 -> 14x14 -> 7x7 and back, with two stride-2 convolutions, which is
what the models' 7x7 grid (VQ-VAE) and 7x7 feature map (VAE) rest on.
"""

from __future__ import annotations

from torch import nn


def conv_down(in_ch: int, channels: int) -> nn.Sequential:
    """(B, in_ch, 28, 28) -> (B, 2*channels, 7, 7)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, channels, 4, stride=2, padding=1), nn.SiLU(),          # (B, C, 14, 14)
        nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1), nn.SiLU(),   # (B, 2C, 7, 7)
    )


def conv_up(channels: int, out_ch: int) -> nn.Sequential:
    """(B, 2*channels, 7, 7) -> (B, out_ch, 28, 28), last layer linear (logits or means)."""
    return nn.Sequential(
        nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.SiLU(),  # 14x14
        nn.ConvTranspose2d(channels, out_ch, 4, stride=2, padding=1),                   # 28x28
    )
