"""Model zoo: every kind a checkpoint can hold, with its config dataclass.

``MODEL_KINDS[kind] = (ConfigClass, ModelClass)``; the checkpoint loader rebuilds a model
from ``config.json`` through this table.
"""

from models.classifier import Classifier, ClassifierConfig
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig
from models.vqvae2 import VQVAE2, VQVAE2Config

MODEL_KINDS: dict[str, tuple[type, type]] = {
    "vae": (VAEConfig, VAE),
    "classifier": (ClassifierConfig, Classifier),
    "vqvae": (VQVAEConfig, VQVAE),
    "vqvae2": (VQVAE2Config, VQVAE2),
}

__all__ = [
    "MODEL_KINDS",
    "VAE",
    "VQVAE",
    "VQVAE2",
    "Classifier",
    "ClassifierConfig",
    "VAEConfig",
    "VQVAE2Config",
    "VQVAEConfig",
]
