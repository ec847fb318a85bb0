"""The one interface every model wears.

Public methods validate their inputs and delegate to private ones (the shape of
``nflows``): ``log_prob`` -> ``_log_prob``, ``sample`` -> ``_sample``.

A model also carries what a generic trainer needs to train, checkpoint and record it with
no code of its own: the counters training changes (a MADE's mask schedule, a VAE's KL
warm-up, a GAN's loss trace) travel in its state dict, so a checkpoint restores them, and
four hooks, :meth:`~DensityModel.validation_criterion`, :meth:`~DensityModel.finalize`,
:meth:`~DensityModel.evaluation_extras` and :meth:`~DensityModel.artifacts`, say what the
model wants from training and evaluation beyond its likelihood.

A model declares what it can do beyond a density, so that notebooks and the library ask the
model, never its class:

- ``can_complete``: :meth:`~DensityModel.complete` fills in the rest of an image of which the
  first pixels (raster order) are observed;
- ``has_latent``: :meth:`~DensityModel.sample_latent` and :meth:`~DensityModel.from_latent`
  map latent points to the data space; ``can_encode`` adds :meth:`~DensityModel.to_latent`,
  from the data to the latent space.

Every class with a ``name`` registers itself in :data:`REGISTRY` when it is defined (see
:meth:`DensityModel.__init_subclass__`); :mod:`densitybench.models` imports every module of
the package, so a new model is one new module.

Inputs are checked in one place, :meth:`DensityModel.check_input`, which every public method
calls: the shape, a floating-point dtype, the support (binary, levels or finite); a
floating-point input of another precision (float16, float64) is then cast to the model's
:attr:`~DensityModel.float_dtype`. An empty batch gives an empty result. A trainer that has
checked a whole split once (:func:`densitybench.train.fit`) draws its minibatches from it
under :meth:`DensityModel.trusted_inputs`, which keeps the shape and dtype checks and skips
the pass over the values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch import nn

#: The kinds of likelihood a model can declare.
LIKELIHOOD_KINDS = ("exact", "bound", "estimate", "none")
#: The supports a model can declare for its inputs.
SUPPORTS = ("binary", "levels", "continuous")
#: name -> class of every model defined so far (filled by :meth:`DensityModel.__init_subclass__`)
REGISTRY: dict[str, type["DensityModel"]] = {}


def check_count(n, what: str = "the number of samples n") -> int:
    """``n`` as a count (of samples, of observed pixels): an integer (not a boolean) that is
    at least 0. ``what`` names it in the messages.

    Raises:
        TypeError: ``n`` is not an integer (``2.7``, ``"3"``, ``True``).
        ValueError: ``n`` is negative.
    """
    if not isinstance(n, Integral) or isinstance(n, bool):
        raise TypeError(f"{what} must be an integer, got {n!r} ({type(n).__name__})")
    if n < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {n!r}")
    return int(n)


class DensityModel(nn.Module):
    """Base class: a density (or a generator) over tensors shaped ``(B, *data_shape)``.

    Subclasses set:
        name: the name :func:`densitybench.models.create` builds it by; a class that sets it
            registers itself in :data:`REGISTRY` (abstract bases leave it empty).
        likelihood: one of :data:`LIKELIHOOD_KINDS`; what ``log_prob`` returns.
        trained_by_gradient: ``False`` for models fitted in closed form or by EM, which
            then implement ``fit_closed_form(train, valid, progress, max_seconds)`` and stop
            after the EM iteration that spends ``max_seconds``.
        width_hparams: the hyperparameter(s) that set the width of the network (the table in
            :mod:`densitybench.models` lists them).
        hparam_choices: ``{hyperparameter: allowed values}`` for the categorical ones.
        nonempty_hparams: list-valued hyperparameters that need at least one entry.
        hparam_checks: ``{hyperparameter: check(value, n_dims) -> problem or None}`` for the
            hyperparameters particular to the model (``n_dims`` is None when the data's shape
            is not known yet); the shared rules by name are in
            :mod:`~densitybench.models.hparams`.
        can_complete, has_latent, can_encode: the capabilities above.
        fused_adam_on_cpu: whether :meth:`configure_optimizers` uses PyTorch's fused Adam on
            a CPU (on CUDA it always does). Measured per family on one thread, batch 100:
            1.25-2.5x faster steps for the fully connected networks (MADE, NICE, the VAE, the
            GAN), where the optimiser's update is a large part of a step; 5-10% slower for the
            convolutional and recurrent ones and the one-matrix FVSBN; so True only where it
            was measured faster.
            Fused or not, Adam is deterministic on a CPU (a resumed run is bitwise the run
            that was not interrupted).
    and implement ``_log_prob(x)`` (input already validated) and ``_sample(n, generator)``
    (``n >= 1``), and :meth:`conformance_hparams`, a tiny configuration for the tests every
    model must pass. Their constructors begin with
    :func:`~densitybench.models.hparams.check_hparams` on their arguments.

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
    width_hparams: tuple[str, ...] = ()
    hparam_choices: dict[str, tuple] = {}
    nonempty_hparams: tuple[str, ...] = ()
    hparam_checks: dict[str, Callable[[Any, int | None], str | None]] = {}
    can_complete: bool = False
    has_latent: bool = False
    can_encode: bool = False
    fused_adam_on_cpu: bool = False

    def __init_subclass__(cls, **kwargs):
        """Register a class that names itself (``name = "..."`` in its own body)."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not name:
            return
        other = REGISTRY.get(name)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"model name {name!r} of {cls.__module__}.{cls.__qualname__} is already taken by "
                             f"{other.__module__}.{other.__qualname__}")
        REGISTRY[name] = cls

    @classmethod
    def conformance_hparams(cls, data_shape: tuple[int, ...]) -> dict:
        """Hyperparameters of a tiny instance for ``data_shape`` (e.g. ``(1, 4, 4)``), built in
        a fraction of a second, on which the conformance tests run every check of the
        interface. A model of ``n_levels`` levels is also tested with ``n_levels = 3``."""
        raise NotImplementedError(f"{cls.__name__} declares no conformance_hparams")

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
        """Per-example log-likelihood in nats, shape ``(B,)``, of dtype :attr:`float_dtype`.

        Args:
            x: ``(B, *data_shape)`` floating-point values in the model's support; another
                floating-point precision is cast to :attr:`float_dtype` (after the support
                check). ``B = 0`` gives an empty ``(0,)`` tensor.
        Raises:
            ValueError: ``x`` has the wrong shape, is not floating point, or holds values
                outside the model's support.
            RuntimeError: a model fitted in closed form has not been fitted yet.
        """
        if self.likelihood == "none":
            raise NotImplementedError(f"{type(self).__name__} declares no likelihood")
        self.check_fitted("log_prob")
        x = self.check_input(x)
        if x.shape[0] == 0:
            return torch.empty(0, dtype=self.float_dtype, device=x.device)
        return self._log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples shaped ``(n, *data_shape)``; ``n = 0`` gives an empty tensor.

        Raises:
            TypeError: ``n`` is not an integer (``2.7``, ``"3"``, ``True``).
            ValueError: ``n`` is negative.
            RuntimeError: a model fitted in closed form has not been fitted yet.
        """
        n = check_count(n)
        self.check_fitted("sample")
        if n == 0:
            return torch.empty(0, *self.data_shape, dtype=self.float_dtype, device=self.device)
        with torch.no_grad():
            return self._sample(n, generator)

    def complete(self, x: torch.Tensor, n_known: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Keep the first ``n_known`` pixels of each image (raster order) and sample the rest
        from the model; for models with ``can_complete``.

        ``n_known = D // 2`` for ``H x W`` images with even ``H`` hides the bottom half.

        Args:
            x: ``(B, *data_shape)`` images in the model's support (pixels at and after
                ``n_known`` are ignored).
            n_known: number of leading pixels that are observed, in ``[0, D]``.
            generator: source of the randomness (the default generator when None).
        Returns:
            ``(B, *data_shape)`` completions drawn from ``p(x_{>=n_known} | x_{<n_known})``.
        Raises:
            NotImplementedError: the model cannot complete images.
            ValueError: a bad ``x`` (as :meth:`log_prob`), ``n_known`` outside ``[0, D]``, or a
                configuration of a model that completes images in others (a MADE with random
                orderings).
            TypeError: ``n_known`` is not an integer.
        """
        if not self.can_complete:
            raise self._cannot_complete()
        x = self.check_input(x)
        n_known = check_count(n_known, "n_known")
        if n_known > self.n_dims:
            raise ValueError(f"n_known must lie in [0, {self.n_dims}], not {n_known!r}")
        if x.shape[0] == 0:
            return x.clone()
        with torch.no_grad():
            return self._complete(x.clone().to(self.device), n_known, generator)

    def _cannot_complete(self) -> Exception:
        """The error :meth:`complete` raises when ``can_complete`` is False."""
        return NotImplementedError(f"{type(self).__name__} cannot complete partly observed images")

    # ------------------------------------------------------------------ latent space
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the prior of the latent space, shape ``(n, L)`` (``has_latent``)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space")

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Latent points ``(B, L)`` -> ``(B, *data_shape)`` in the data's space, for display
        (a decoder's mean, an inverse flow, a generator's output) (``has_latent``)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space")

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(B, *data_shape)`` in the model's support -> latent points ``(B, L)``
        (``can_encode``)."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The scalar that training minimises: the mean NLL in nats by default."""
        return -self.log_prob(x).mean()

    def after_step(self) -> None:
        """Called by the trainer after every optimiser step (e.g. to resample masks)."""

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
        """The optimisers :func:`densitybench.train.fit` steps: one Adam over every parameter
        (see :meth:`adam`). Models with several players (a GAN) return one per player."""
        return [self.adam(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def adam(self, params, **settings) -> torch.optim.Adam:
        """``torch.optim.Adam(params, **settings)``, fused on CUDA, and on a CPU where
        :attr:`fused_adam_on_cpu` says it was measured faster (create the optimiser after the
        model is on its device)."""
        params = list(params)
        device = params[0].device if params else torch.device("cpu")
        fused = device.type == "cuda" or (device.type == "cpu" and self.fused_adam_on_cpu)
        return torch.optim.Adam(params, fused=True, **settings) if fused else torch.optim.Adam(params, **settings)

    @contextlib.contextmanager
    def trusted_inputs(self) -> Iterator[None]:
        """Within this block :meth:`check_input` checks shapes and dtypes but not the values:
        for a trainer whose minibatches are drawn from a split it has checked whole, once
        (the per-batch pass over the values costs a few percent of a training step and, on a
        GPU, a wait for the device). Nests; the previous setting is restored on exit."""
        before = self.__dict__.get("_inputs_trusted", False)
        self.__dict__["_inputs_trusted"] = True
        try:
            yield
        finally:
            self.__dict__["_inputs_trusted"] = before

    def training_step(self, x: torch.Tensor, optimizers, clip_grad_norm: float | None = None) -> torch.Tensor:
        """One optimisation step on the minibatch ``x``; returns the loss that was minimised as
        a detached 0-dim tensor on the model's device (reading it, ``float(loss)``, waits for
        the device: a trainer sums the losses on the device and reads them once an epoch)."""
        (opt,) = optimizers
        loss = self.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(self.parameters(), clip_grad_norm)
        opt.step()
        return loss.detach()

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

    @property
    def float_dtype(self) -> torch.dtype:
        """The floating-point dtype inputs are cast to and ``log_prob`` returns: that of the
        model's parameters, torch's default dtype for a model without parameters (the EM-fitted
        mixtures, which compute in their buffers' precision and return this one)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    def n_params(self) -> int:
        """Number of free parameters (trainable tensors, or fitted buffers for EM models)."""
        params = [p for p in self.parameters() if p.requires_grad]
        if params:
            return sum(p.numel() for p in params)
        return sum(b.numel() for b in self.buffers() if b.is_floating_point())

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """The one check of every input: shape, floating-point dtype and support.

        Args:
            x: ``(B, *data_shape)``; ``B`` may be 0.
        Returns:
            ``x``, cast to :attr:`float_dtype` when it is of another floating-point dtype.
        Raises:
            ValueError: naming the model and what is wrong.
        """
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects a floating-point tensor, got dtype {x.dtype}")
        if self.__dict__.get("_inputs_trusted", False):
            pass  # values checked once, for the whole split (trusted_inputs)
        elif self.support == "binary":
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
        dtype = self.float_dtype
        if x.dtype != dtype:
            x = x.to(dtype)
            if self.support == "continuous" and not self.__dict__.get("_inputs_trusted", False) \
                    and not torch.isfinite(x).all():
                raise ValueError(f"{type(self).__name__} expects finite values in {dtype}")
        return x

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _complete(self, x: torch.Tensor, n_known: int, generator: torch.Generator | None) -> torch.Tensor:
        raise self._cannot_complete()  # pragma: no cover


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
