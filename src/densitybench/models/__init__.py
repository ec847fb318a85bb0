"""Models behind one interface: ``create(name, data_shape, **hyperparameters)``.

Every model has ``log_prob(x)`` (nats per example, shape ``(B,)``), ``sample(n, generator)``,
``loss(x)`` and a declared ``likelihood`` kind (exact, bound, estimate or none).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .base import LIKELIHOOD_KINDS, DensityModel
from .made import MADE
from .mixtures import BernoulliMixture, PCAGMM
from .fvsbn import FVSBN
from .gan import GAN
from .nade import NADE
from .pixelcnn import PixelCNN
from .pixelrnn import PixelLSTM, RowLSTM
from .nice import NICE
from .vae import VAE

#: name -> class; the names used in configs, records and tables
MODELS: dict[str, type[DensityModel]] = {
    "made": MADE,
    "bernoulli_mixture": BernoulliMixture,
    "pca_gmm": PCAGMM,
    "gan": GAN,
    "nade": NADE,
    "fvsbn": FVSBN,
    "pixelcnn": PixelCNN,
    "pixel_lstm": PixelLSTM,
    "row_lstm": RowLSTM,
    "nice": NICE,
    "vae": VAE,
}

__all__ = ["create", "save", "load", "MODELS", "DensityModel", "LIKELIHOOD_KINDS", "MADE", "BernoulliMixture", "PCAGMM", "NADE", "FVSBN", "PixelCNN", "PixelLSTM", "RowLSTM", "NICE", "VAE", "GAN"]


def create(name: str, data_shape, **hyperparameters) -> DensityModel:
    """Build model ``name`` for examples shaped ``data_shape``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    model = MODELS[name](tuple(data_shape), **hyperparameters)
    model.hparams = {"name": name, "data_shape": list(data_shape), **hyperparameters}
    return model


def save(model: DensityModel, path: str | os.PathLike) -> Path:
    """Write ``{name, hparams, state_dict}``; :func:`load` rebuilds the model from it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"hparams": model.hparams, "state_dict": state}, path)
    return path


def load(path: str | os.PathLike, map_location="cpu") -> DensityModel:
    """Rebuild a model saved by :func:`save`."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    hp = dict(ckpt["hparams"])
    name, shape = hp.pop("name"), hp.pop("data_shape")
    model = create(name, shape, **hp)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model
