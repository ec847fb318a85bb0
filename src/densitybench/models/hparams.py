"""What a model's hyperparameters may be: one set of checks for every model.

A hyperparameter's name means the same in every model that takes it (``hidden_sizes``,
``n_components``, ``n_levels``), so the rules are stated once, by name; what is particular
to a model its class declares: the choices of a categorical one (``hparam_choices``), a
hidden layer it cannot do without (``nonempty_hparams``) and the checks of the
hyperparameters only it takes (``hparam_checks``: a Row LSTM's odd ``kernel_size``, PCA +
GMM's ``variance`` and ``n_principal``, a GAN's Adam ``betas``), so a new model with new
hyperparameters needs no change here. The constructors run these checks on their own arguments and
:func:`densitybench.models.validate_hparams` runs them on a configuration before any
model is built, so both refuse a bad value with the same message, which names the model
and the field: ``made: hidden_sizes[0] must be a positive integer, got 0``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from numbers import Integral, Real

#: widths and counts: positive integers
POSITIVE_INTEGERS = frozenset({
    "hidden_size", "hidden", "n_channels", "output_channels", "n_blocks", "n_layers", "n_couplings",
    "n_hidden_layers", "latent_dim", "n_components", "noise_dim", "k_eval", "k_chunk", "k_train", "n_masks",
    "resample_every", "parzen_n_samples", "max_iter", "patience",
})
#: widths of successive layers: lists of positive integers
POSITIVE_INTEGER_LISTS = frozenset({"hidden_sizes", "g_hidden", "d_hidden"})
#: seeds: any integer
INTEGERS = frozenset({"seed", "eval_seed", "parzen_seed"})
#: step counts that may be zero
NON_NEGATIVE_INTEGERS = frozenset({"kl_warmup"})
#: strengths of priors and regularisers: non-negative reals
NON_NEGATIVE_REALS = frozenset({"alpha", "reg_covar"})
#: switches
BOOLEANS = frozenset({"direct"})


def is_integer(value) -> bool:
    """An integer that is not a boolean (``True`` is an ``int`` in Python, not a count here)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite real number that is not a boolean."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def accepted(cls) -> list[str]:
    """The hyperparameters ``cls``'s constructor takes: its arguments after ``data_shape``."""
    params = list(inspect.signature(cls.__init__).parameters)
    return [p for p in params[1:] if p != "data_shape"]


def _check_shared(field: str, value, cls) -> str | None:
    """What is wrong with ``value`` by the rule of its name shared by every model (None when
    nothing is, or when no shared rule names ``field``)."""
    if field in POSITIVE_INTEGERS:
        if not is_integer(value) or value < 1:
            return f"{field} must be a positive integer, got {value!r}"
    elif field in POSITIVE_INTEGER_LISTS:
        if not isinstance(value, (list, tuple)):
            return f"{field} must be a list of positive integers, got {value!r}"
        if not value and field in cls.nonempty_hparams:
            return f"{field} must hold at least one layer, got {value!r}"
        for i, h in enumerate(value):
            if not is_integer(h) or h < 1:
                return f"{field}[{i}] must be a positive integer, got {h!r}"
    elif field in INTEGERS:
        if not is_integer(value):
            return f"{field} must be an integer, got {value!r}"
    elif field in NON_NEGATIVE_INTEGERS:
        if not is_integer(value) or value < 0:
            return f"{field} must be a non-negative integer, got {value!r}"
    elif field in NON_NEGATIVE_REALS:
        if not is_real(value) or value < 0:
            return f"{field} must be a non-negative number, got {value!r}"
    elif field in BOOLEANS:
        if not isinstance(value, bool):
            return f"{field} must be true or false, got {value!r}"
    elif field == "n_levels":
        if not is_integer(value) or value < 2:
            return f"n_levels must be an integer >= 2, got {value!r}"
    return None


def _check_one(field: str, value, n_dims: int | None, cls) -> str | None:
    """What is wrong with ``value`` for hyperparameter ``field`` of model class ``cls``: the
    shared rule of its name, then the class's own check, then its allowed choices (None when
    nothing is)."""
    problem = _check_shared(field, value, cls)
    if problem is None and field in cls.hparam_checks:
        problem = cls.hparam_checks[field](value, n_dims)
    if problem is not None:
        return problem
    if field in cls.hparam_choices and value not in cls.hparam_choices[field]:
        return f"{field} must be one of {', '.join(map(repr, cls.hparam_choices[field]))}, got {value!r}"
    return None


def check_hparams(cls, data_shape, hparams: Mapping) -> None:
    """Refuse degenerate values of the hyperparameters ``hparams`` of model class ``cls``.

    Only the names ``cls``'s constructor takes are checked, so a constructor may pass its
    ``locals()``; :func:`densitybench.models.validate_hparams` refuses unknown names first.

    Args:
        cls: the model class; its ``name`` starts every message.
        data_shape: shape of one example, or None when not known yet (the checks that
            need it are skipped).
        hparams: ``{name: value}``.
    Raises:
        ValueError: naming the model and the first offending field.
    """
    n_dims = None
    if data_shape is not None:
        try:
            shape = [] if isinstance(data_shape, (str, bytes)) else list(data_shape)
        except TypeError:
            shape = []
        if not shape or not all(is_integer(s) and s >= 1 for s in shape):
            raise ValueError(f"{cls.name}: data_shape must be a non-empty list of positive integers, got {data_shape!r}")
        n_dims = math.prod(int(s) for s in shape)
    names = set(accepted(cls))
    for field, value in hparams.items():
        if field not in names:
            continue
        problem = _check_one(field, value, n_dims, cls)
        if problem is not None:
            raise ValueError(f"{cls.name}: {problem}")
