"""Latent Lab engine: data, checkpoints, training, evaluation and the model layer the app calls."""
