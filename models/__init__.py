"""Model zoo: every kind a checkpoint can hold, with its config dataclass.

``MODEL_KINDS[kind] = (ConfigClass, ModelClass)``; the checkpoint loader rebuilds a model
from ``config.json`` through this table.
"""

from models.classifier import Classifier, ClassifierConfig
from models.vae import VAE, VAEConfig

MODEL_KINDS: dict[str, tuple[type, type]] = {
    "vae": (VAEConfig, VAE),
    "classifier": (ClassifierConfig, Classifier),
}

try:  # the VQ-VAE lives in its own module; registered when present
    from models.vqvae import VQVAE, VQVAEConfig

    MODEL_KINDS["vqvae"] = (VQVAEConfig, VQVAE)
except ImportError:  # pragma: no cover - only while the module is being written
    pass

__all__ = ["MODEL_KINDS", "VAE", "VAEConfig", "Classifier", "ClassifierConfig"]
