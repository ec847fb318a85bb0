"""The one interface every model wears.

Public methods validate their inputs and delegate to private ones (the shape of
``nflows``): ``log_prob`` -> ``_log_prob``, ``sample`` -> ``_sample``.

A model also carries what a generic trainer needs to train, checkpoint and record it with
no code of its own: the counters training changes (a MADE's mask schedule, a VAE's KL
warm-up, a GAN's loss trace) travel in its state dict, so a checkpoint restores them, and
four hooks, :meth:`~DensityModel.validation_criterion`, :meth:`~DensityModel.finalize`,
:meth:`~DensityModel.evaluation_extras` and :meth:`~DensityModel.artifacts`, say what the
model wants from training and evaluation beyond its likelihood.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

#: The kinds of likelihood a model can declare.
LIKELIHOOD_KINDS = ("exact", "bound", "estimate", "none")
#: The supports a model can declare for its inputs.
SUPPORTS = ("binary", "levels", "continuous")


class DensityModel(nn.Module):
    """Base class: a density (or a generator) over tensors shaped ``(B, *data_shape)``.

    Subclasses set:
        name: the name :func:`densitybench.models.create` builds it by.
        likelihood: one of :data:`LIKELIHOOD_KINDS`; what ``log_prob`` returns.
        trained_by_gradient: ``False`` for models fitted in closed form or by EM, which
            then implement ``fit_closed_form(train, valid, progress)``.
        hparam_choices: ``{hyperparameter: allowed values}`` for the categorical ones.
        nonempty_hparams: list-valued hyperparameters that need at least one entry.
    and implement ``_log_prob(x)`` (input already validated) and ``_sample(n, generator)``.
    Their constructors begin with :func:`~densitybench.models.hparams.check_hparams` on their
    arguments.

    A model whose training changes Python attributes (counters) keeps them in its state dict
    through ``get_extra_state`` / ``set_extra_state``, as a tensor (so that every value of
    the state dict is a tensor and ``torch.load(weights_only=True)`` reads it); loading a
    state dict written before it did so leaves those attributes as they are.

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        support: ``"binary"`` (values in {0, 1}), ``"levels"`` (integers 0..n_levels-1)
            or ``"continuous"`` (finite reals).
        n_levels: number of discrete levels for ``"levels"`` data.
    """

    name: str = ""
    likelihood: str = "exact"
    trained_by_gradient: bool = True
    hparam_choices: dict[str, tuple] = {}
    nonempty_hparams: tuple[str, ...] = ()

    def __init__(self, data_shape: tuple[int, ...], support: str = "binary", n_levels: int = 2):
        super().__init__()
        if support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, not {support!r}")
        self.data_shape = tuple(int(s) for s in data_shape)
        self.n_dims = math.prod(self.data_shape)
        self.support = support
        self.n_levels = 2 if support == "binary" else int(n_levels)
        #: what ``create`` was called with (for checkpoints); set by ``create``
        self.hparams: dict[str, Any] = {}

    # ------------------------------------------------------------------ interface
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example log-likelihood in nats, shape ``(B,)``.

        Raises:
            ValueError: ``x`` has the wrong shape, is not floating point, or holds values
                outside the model's support.
        """
        if self.likelihood == "none":
            raise NotImplementedError(f"{type(self).__name__} declares no likelihood")
        self.check_fitted("log_prob")
        self.check_input(x)
        return self._log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples shaped ``(n, *data_shape)``.

        Raises:
            RuntimeError: a model fitted in closed form has not been fitted yet.
        """
        self.check_fitted("sample")
        if int(n) < 1:
            raise ValueError(f"n must be a positive integer, not {n!r}")
        with torch.no_grad():
            return self._sample(int(n), generator)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The scalar that training minimises: the mean NLL in nats by default."""
        return -self.log_prob(x).mean()

    def after_step(self) -> None:
        """Called by the trainer after every optimiser step (e.g. to resample masks)."""

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
        """The optimisers :func:`densitybench.train.fit` steps: one Adam over every parameter.
        Models with several players (a GAN) return one per player."""
        return [torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def training_step(self, x: torch.Tensor, optimizers, clip_grad_norm: float | None = None) -> float:
        """One optimisation step on the minibatch ``x``; returns the loss that was minimised."""
        (opt,) = optimizers
        loss = self.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(self.parameters(), clip_grad_norm)
        opt.step()
        return float(loss.item())

    # ------------------------------------------------------------------ hooks of a generic trainer
    def validation_criterion(self, valid: torch.Tensor) -> float | None:
        """The number early stopping minimises on the validation data ``valid`` (prepared as
        the model's inputs), lower is better; None (the default) means the mean validation NLL."""
        return None

    def finalize(self, train: torch.Tensor, valid: torch.Tensor) -> dict:
        """A last step after training, before the test evaluation (e.g. a GAN choosing its
        Parzen width on ``valid``). Returns the fields it adds to the run's record (none here)."""
        return {}

    def evaluation_extras(self, test: torch.Tensor) -> dict:
        """Numbers of the test split the record holds besides the NLL (none here)."""
        return {}

    def artifacts(self) -> dict[str, np.ndarray]:
        """Arrays a chapter analyses later without the model in memory (none here)."""
        return {}

    # ------------------------------------------------------------------ helpers
    @property
    def is_fitted(self) -> bool:
        """Whether the model holds a density: False only for a model fitted in closed form
        (or by EM) before its fit. Read from the state, so it survives a save and a load."""
        return True

    def check_fitted(self, method: str) -> None:
        """Raise ``RuntimeError`` when the model is not fitted yet, naming ``method``."""
        if not self.is_fitted:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit_closed_form(train, valid) (or "
                f"densitybench.train.fit) before {method}"
            )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        key = prefix + "_extra_state"
        if key not in state_dict and key in missing_keys:
            # a checkpoint written before the model kept its counters: they keep their values
            missing_keys.remove(key)

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def n_params(self) -> int:
        """Number of free parameters (trainable tensors, or fitted buffers for EM models)."""
        params = [p for p in self.parameters() if p.requires_grad]
        if params:
            return sum(p.numel() for p in params)
        return sum(b.numel() for b in self.buffers() if b.is_floating_point())

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects a floating-point tensor, got dtype {x.dtype}")
        if self.support == "binary":
            if not torch.all((x == 0) | (x == 1)):
                raise ValueError(f"{type(self).__name__} models binary data: every value must be 0 or 1")
        elif self.support == "levels":
            if not torch.all((x == x.round()) & (x >= 0) & (x <= self.n_levels - 1)):
                raise ValueError(
                    f"{type(self).__name__} models {self.n_levels}-level data: every value must be an "
                    f"integer in [0, {self.n_levels - 1}]"
                )
        elif not torch.isfinite(x).all():
            raise ValueError(f"{type(self).__name__} expects finite values")

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class FittedBuffersMixin:
    """For models whose state lives in buffers whose shapes are known only after fitting:
    loading a state dict resizes those buffers first."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name, buf in list(self._buffers.items()):
            key = prefix + name
            if key in state_dict and buf is not None and buf.shape != state_dict[key].shape:
                self._buffers[name] = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def uniform(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform noise drawn from ``generator`` (on its own device), moved to ``device``."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gdev).to(device)
