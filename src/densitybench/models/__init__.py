"""Models behind one interface: ``create(name, data_shape, *, init_seed=None, **hyperparameters)``.

Every model has ``log_prob(x)`` (nats per example, shape ``(B,)``), ``sample(n, generator)``,
``loss(x)`` and a declared ``likelihood`` kind (exact, bound, estimate or none).
:func:`validate_hparams` checks a configuration before any model is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .base import LIKELIHOOD_KINDS, DensityModel
from .hparams import accepted, check_hparams, is_integer
from .made import MADE
from .mixtures import BernoulliMixture, PCAGMM
from .fvsbn import FVSBN
from .gan import GAN
from .nade import NADE
from .pixelcnn import PixelCNN
from .pixelrnn import PixelLSTM, RowLSTM
from .nice import NICE
from .vae import VAE

#: name -> class; the names used in configs, records and tables (each class's ``name``)
MODELS: dict[str, type[DensityModel]] = {
    cls.name: cls for cls in (MADE, BernoulliMixture, PCAGMM, GAN, NADE, FVSBN, PixelCNN, PixelLSTM, RowLSTM, NICE, VAE)
}

__all__ = ["create", "validate_hparams", "save", "load", "MODELS", "DensityModel", "LIKELIHOOD_KINDS", "MADE", "BernoulliMixture", "PCAGMM", "NADE", "FVSBN", "PixelCNN", "PixelLSTM", "RowLSTM", "NICE", "VAE", "GAN"]


def validate_hparams(name: str, data_shape, hparams) -> None:
    """Check a model's configuration without building the model.

    Args:
        name: a key of :data:`MODELS`.
        data_shape: shape of one example, or None when not known yet (then the checks that
            need it, such as ``n_principal`` at most the number of dimensions, are skipped).
        hparams: ``{hyperparameter: value}``, as given to :func:`create`.
    Raises:
        ValueError: an unknown model (the message lists the known ones), an unknown
            hyperparameter (the message lists those the model takes), or a degenerate value
            (``made: hidden_sizes[0] must be a positive integer, got 0``); every message names
            the offending field.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    cls = MODELS[name]
    if not isinstance(hparams, Mapping):
        raise ValueError(f"{name}: hyperparameters must be a mapping of names to values, got {hparams!r}")
    names = accepted(cls)
    for field in hparams:
        if field not in names:
            raise ValueError(f"{name}: unknown hyperparameter {field!r}; {name} takes: {', '.join(names)}")
    check_hparams(cls, data_shape, hparams)


def create(name: str, data_shape, *, init_seed: int | None = None, **hyperparameters) -> DensityModel:
    """Build model ``name`` for examples shaped ``data_shape``.

    Args:
        name: a key of :data:`MODELS`.
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        init_seed: when given, the initial weights are drawn from torch's global generator
            seeded with it inside :func:`torch.random.fork_rng`: the same ``init_seed`` gives the
            same weights whatever the global state, which it leaves untouched. It is not a
            hyperparameter and is not kept in ``model.hparams``.
        **hyperparameters: the model's constructor arguments; kept in ``model.hparams`` with
            ``name`` and ``data_shape`` so that :func:`load` can rebuild the model.
    Raises:
        ValueError: as :func:`validate_hparams`, or ``init_seed`` is not an integer.
    """
    validate_hparams(name, data_shape, hyperparameters)
    shape = tuple(int(s) for s in data_shape)
    if init_seed is None:
        model = MODELS[name](shape, **hyperparameters)
    else:
        if not is_integer(init_seed):
            raise ValueError(f"init_seed must be an integer, got {init_seed!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(init_seed))
            model = MODELS[name](shape, **hyperparameters)
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
