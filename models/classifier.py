"""A small CNN classifier: the judge of sample quality (confidence, coverage, Frechet distance).

>>> clf = Classifier(ClassifierConfig())
>>> clf(torch.rand(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild the classifier from ``config.json``.

    >>> ClassifierConfig(dataset="fashion").features
    128
    """

    dataset: str = "mnist"
    channels: int = 16      # two conv blocks of 16/32 reach >99% on MNIST; cheap on a CPU
    features: int = 128     # penultimate width: the space the Frechet distance is taken in
    dropout: float = 0.3    # the only regulariser; keeps Fashion-MNIST from overfitting


class Classifier(nn.Module):
    """Conv-conv-pool twice, then a feature layer and the class logits.

    >>> clf = Classifier(ClassifierConfig(channels=4, features=8)).eval()
    >>> f = clf.features(torch.rand(3, 1, 28, 28))
    >>> f.shape, clf.logits_from_features(f).shape
    (torch.Size([3, 8]), torch.Size([3, 10]))
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.MaxPool2d(2),                                              # (B, C, 14, 14)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.MaxPool2d(2),                                              # (B, 2C, 7, 7)
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(2 * c * 49, config.features), nn.ReLU(),            # (B, F)
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.features, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, F) of grey images in [0, 1]."""
        return self.body(x)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 10) from ``features(x)``, so callers need one pass for both."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
