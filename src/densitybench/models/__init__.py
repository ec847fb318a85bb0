"""Models behind one interface: ``create(name, data_shape, *, init_seed=None, **hyperparameters)``.

Every model has ``log_prob(x)`` (nats per example, shape ``(B,)``), ``sample(n, generator)``,
``loss(x)`` and a declared ``likelihood`` kind (exact, bound, estimate or none), and declares
its capabilities (``can_complete``, ``has_latent``, ``can_encode``; see
:mod:`densitybench.models.base`). :func:`validate_hparams` checks a configuration before any
model is built.

A model registers itself: a subclass of :class:`DensityModel` with a ``name``, in any module
of this package, is found by :func:`create` and listed in :data:`MODELS` (this package imports
every module in it). Its class declares its own hyperparameter checks (``hparam_checks``,
``hparam_choices``, ``nonempty_hparams``) and a tiny configuration for the conformance tests
(``conformance_hparams``), so adding a model takes its module, its profile entry and its
chapter or table row.

The width of a network goes by several names, one per family, following each paper
(``hidden_sizes``, ``hidden_size``, ``hidden``, ``n_channels``, ``g_hidden``/``d_hidden``); the
names are part of the run keys and the checkpoints, so they stay. Instead each class declares
which of its hyperparameters are widths (``width_hparams``), and :func:`width_table` gathers
them; the table below is built from the registered classes when the package is imported.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Mapping
from pathlib import Path

import torch

from .base import LIKELIHOOD_KINDS, REGISTRY, DensityModel
from .hparams import accepted, check_hparams, is_integer

# every module of the package: each model class registers itself in REGISTRY when defined
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

#: name -> class; the names used in configs, records and tables (each class's ``name``), sorted
MODELS: dict[str, type[DensityModel]] = {name: REGISTRY[name] for name in sorted(REGISTRY)}

# the classes by their own names: ``from densitybench.models import MADE``
globals().update({cls.__name__: cls for cls in MODELS.values()})

__all__ = ["create", "validate_hparams", "save", "load", "width_table", "MODELS", "DensityModel", "LIKELIHOOD_KINDS",
           *sorted(cls.__name__ for cls in MODELS.values())]


def width_table() -> str:
    """Every registered model and the hyperparameter(s) that set the width of its network
    (its class's ``width_hparams``), as a reStructuredText table; "(none)" for a model without
    a network to widen (FVSBN, the mixtures)."""
    rows = [(f"``{name}``", ", ".join(f"``{h}``" for h in cls.width_hparams) or "(none)")
            for name, cls in MODELS.items()]
    head = ("model", "width hyperparameter(s)")
    w0, w1 = (max(len(r[i]) for r in [*rows, head]) for i in (0, 1))
    rule = f"{'=' * w0}  {'=' * w1}"
    return "\n".join([rule, f"{head[0]:<{w0}}  {head[1]}", rule, *(f"{a:<{w0}}  {b}" for a, b in rows), rule])


if __doc__ is not None:  # (None under python -OO)
    __doc__ += "\n" + width_table() + "\n"


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
