"""Model zoo: every kind a checkpoint can hold, with its config dataclass.

``MODEL_KINDS[kind] = (ConfigClass, ModelClass)``; the checkpoint loader rebuilds a model
from ``config.json`` through this table.
"""

from models.classifier import Classifier, ClassifierConfig
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

MODEL_KINDS: dict[str, tuple[type, type]] = {
    "vae": (VAEConfig, VAE),
    "classifier": (ClassifierConfig, Classifier),
    "vqvae": (VQVAEConfig, VQVAE),
}

__all__ = ["MODEL_KINDS", "VAE", "VQVAE", "Classifier", "ClassifierConfig", "VAEConfig",
           "VQVAEConfig"]
