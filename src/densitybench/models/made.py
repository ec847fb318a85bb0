"""MADE: Masked Autoencoder for Distribution Estimation.

Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
Estimation", ICML 2015.

An autoencoder whose weight matrices are multiplied by binary masks so that output
``d`` depends only on inputs earlier in an ordering; the outputs are then the
conditionals of an autoregressive model and

    log p(x) = sum_d log p(x_d | x_{<d}).

Symbols follow the paper: ``m^l(k)`` is the connectivity (degree) of unit ``k`` in layer
``l``; the input degrees ``m^0`` are the ordering. Hidden masks use ``m^{l-1}(k') <= m^l(k)``,
the output mask ``m^L(k') < m^0(d)`` (strict). Masks are buffers applied as ``W * M`` at
call time, never written into the weights.

Connectivity-agnostic training keeps ``n_masks`` mask sets and cycles through them every
``resample_every`` optimiser steps (the step count and the current set are part of the state
dict, so a checkpoint resumes the cycle where it was); at test time the ensemble is the mixture

    log p(x) = logsumexp_k log p_k(x) - log K,

a normalised density (averaging logits across masks would not be). The ensemble is evaluated
without touching the layers' masks: the masks of every set are built once and kept on the
model's device (:meth:`MADE.mask_tensors`), unless they would take more than
:attr:`MADE.mask_cache_bytes`, and mask sets that share an ordering share the direct
connections' term. The numbers are those of switching the layers to each set in turn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import Autoregressive, conditional_log_prob
from .base import uniform
from .hparams import check_hparams


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed binary mask at call time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        # masks are rebuilt from the connectivity buffers, so they are not checkpointed
        self.register_buffer("mask", torch.ones(out_features, in_features), persistent=False)

    def set_mask(self, mask: torch.Tensor) -> None:
        """``mask``: ``(in_features, out_features)`` booleans, True where a connection exists."""
        self.mask.copy_(mask.T.to(self.mask.dtype))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ (M * W).T + b`` with the layer's mask ``M``, or with ``mask`` (``(out_features,
        in_features)``, the dtype of the weight) when given, which leaves the layer's own as it is."""
        return F.linear(x, (self.mask if mask is None else mask) * self.weight, self.bias)


class MADE(Autoregressive):
    """MADE over binary or ``n_levels``-level data.

    An :class:`~densitybench.models.autoregressive.Autoregressive` model whose ordering is
    that of its current mask set (the raster order with ``ordering="natural"``), and whose
    density with several mask sets is their mixture.

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``; flattened in C order.
        hidden_sizes: units per hidden layer.
        n_masks: number of mask sets (connectivity and, with ``ordering="random"``,
            orderings); 1 gives an ordinary MADE.
        ordering: ``"natural"`` (raster order for every mask set) or ``"random"``
            (one random ordering per mask set: order-agnostic training).
        resample_every: optimiser steps between switching to the next mask set.
        direct: add direct input-to-output connections (masked, strict).
        n_levels: 2 for Bernoulli outputs; more for a softmax over levels per pixel.
        seed: seed of the connectivity and orderings.
    """

    name = "made"
    fused_adam_on_cpu = True  # measured faster (see DensityModel)
    #: Largest size in bytes of the masks of all mask sets kept on the model's device for the
    #: ensemble's ``log_prob``; above it each set's masks are built again at every call.
    mask_cache_bytes = 256 * 2**20
    width_hparams = ("hidden_sizes",)
    hparam_choices = {"ordering": ("natural", "random")}
    nonempty_hparams = ("hidden_sizes",)

    def __init__(
        self,
        data_shape,
        hidden_sizes=(500,),
        n_masks: int = 1,
        ordering: str = "natural",
        resample_every: int = 20,
        direct: bool = False,
        n_levels: int = 2,
        seed: int = 0,
    ):
        check_hparams(MADE, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.n_masks = int(n_masks)
        self.ordering = ordering
        self.resample_every = int(resample_every)
        D = self.n_dims

        sizes = (D,) + self.hidden_sizes
        self.hidden = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = MaskedLinear(sizes[-1], D * self.n_out)
        self.direct = MaskedLinear(D, D * self.n_out, bias=False) if direct else None

        # connectivity of every mask set, drawn once from `seed`
        g = torch.Generator().manual_seed(int(seed))
        orders, degrees = [], [[] for _ in self.hidden_sizes]
        for _ in range(self.n_masks):
            m0 = torch.randperm(D, generator=g) if ordering == "random" else torch.arange(D)
            orders.append(m0)
            prev = m0
            for l, h in enumerate(self.hidden_sizes):
                # m^l(k) uniform in [min m^{l-1}, D-2]: a unit of degree D-1 would feed nothing
                low = int(prev.min())
                m = torch.randint(low, max(D - 1, low + 1), (h,), generator=g)
                degrees[l].append(m)
                prev = m
        #: m^0 for every mask set: ``orders[k][d]`` is the position of input d in ordering k
        self.register_buffer("orders", torch.stack(orders))
        for l, ms in enumerate(degrees):
            self.register_buffer(f"degrees_{l}", torch.stack(ms))
        self.mask_index = 0
        self._steps = 0
        self._mask_cache = None
        self.set_mask(0)

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"hidden_sizes": [8], "n_masks": 2, "ordering": "random", "direct": True}

    @property
    def can_complete(self) -> bool:
        """Only with ``ordering="natural"``: with a random ordering the observed pixels of a
        raster prefix are not the first ones in the ordering."""
        return self.ordering == "natural"

    def _cannot_complete(self) -> Exception:
        return ValueError("completion of the bottom of an image needs ordering='natural'")

    def sampling_order(self, k: int | None = None) -> torch.Tensor:
        """The ordering of mask set ``k`` (the current one when None): the dimensions sorted by
        their degree ``m^0``."""
        return torch.argsort(self.orders[self.mask_index if k is None else k])

    # ------------------------------------------------------------------ masks
    def degrees(self, k: int) -> list[torch.Tensor]:
        """``[m^0, m^1, ..., m^L]`` of mask set ``k``."""
        return [self.orders[k]] + [getattr(self, f"degrees_{l}")[k] for l in range(len(self.hidden_sizes))]

    def connectivity(self, k: int) -> tuple[torch.Tensor, ...]:
        """The masks of mask set ``k`` as ``(out_features, in_features)`` booleans, True where a
        connection exists: one per hidden layer (``m^{l-1}(k') <= m^l(k)``), the output layer's
        (``m^L(k') < m^0(d)`` for output unit ``j * D + d``) and, with ``direct``, the direct
        connections' (``m^0(d') < m^0(d)``)."""
        if not 0 <= k < self.n_masks:
            raise ValueError(f"mask index {k} outside [0, {self.n_masks})")
        ms = self.degrees(k)
        masks = [m[:, None] >= m_prev[None, :] for m_prev, m in zip(ms[:-1], ms[1:])]
        m0 = ms[0]
        masks.append((m0[:, None] > ms[-1][None, :]).repeat(self.n_out, 1))  # unit j*D + d -> dim d
        if self.direct is not None:
            masks.append((m0[:, None] > m0[None, :]).repeat(self.n_out, 1))
        return tuple(masks)

    def set_mask(self, k: int) -> None:
        """Use mask set ``k`` for the following forward passes."""
        layers = list(self.hidden) + [self.output] + ([self.direct] if self.direct is not None else [])
        for layer, mask in zip(layers, self.connectivity(k)):
            layer.mask.copy_(mask)
        self.mask_index = k

    def mask_tensors(self, k: int, cache: bool = True) -> tuple[torch.Tensor, ...]:
        """:meth:`connectivity` of mask set ``k`` as tensors like the layers' masks (their dtype,
        on their device), ready for :meth:`MaskedLinear.forward`.

        With ``cache``, the masks of every set are built at the first call and kept for the
        following ones, unless they would take more than :attr:`mask_cache_bytes` (then they
        are built again at each call); moving the model (``.to``) or loading a state dict drops
        them. Sets with the same ordering share one direct-connection mask.
        """
        if not 0 <= k < self.n_masks:
            raise ValueError(f"mask index {k} outside [0, {self.n_masks})")
        if cache:
            sets = self._cached_masks()[1]
            if sets is not None:
                return sets[k]
        return tuple(m.to(self.output.mask.dtype) for m in self.connectivity(k))

    def _cached_masks(self) -> tuple[list[int], list[tuple[torch.Tensor, ...]] | None]:
        """``(groups, sets)``: for every mask set, the first set with the same ordering (so the
        same direct mask), and the masks of every set, None above :attr:`mask_cache_bytes`."""
        like = self.output.mask
        key = (like.device, like.dtype, self.mask_cache_bytes)
        if self._mask_cache is None or self._mask_cache[0] != key:
            self._mask_cache = None  # the old masks are freed before the new ones are made
            first = {}
            groups = [first.setdefault(tuple(o.tolist()), k) for k, o in enumerate(self.orders)]
            per_set = sum(layer.mask.numel() for layer in list(self.hidden) + [self.output])
            shared = self.direct.mask.numel() * len(first) if self.direct is not None else 0
            sets = None
            if (self.n_masks * per_set + shared) * like.element_size() <= self.mask_cache_bytes:
                sets, direct = [], {}
                for k in range(self.n_masks):
                    masks = tuple(m.to(like.dtype) for m in self.connectivity(k))
                    if self.direct is not None:
                        masks = masks[:-1] + (direct.setdefault(groups[k], masks[-1]),)
                    sets.append(masks)
            self._mask_cache = (key, groups, sets)
        return self._mask_cache[1:]

    def _apply(self, fn, recurse=True):
        self._mask_cache = None  # built again, on the new device and in the new dtype
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._mask_cache = None  # the orderings and degrees may be new
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def after_step(self) -> None:
        self._steps += 1
        if self.n_masks > 1 and self._steps % self.resample_every == 0:
            self.set_mask((self.mask_index + 1) % self.n_masks)

    def get_extra_state(self) -> torch.Tensor:
        """The mask schedule's position: ``[steps taken, current mask set]``."""
        return torch.tensor([self._steps, self.mask_index], dtype=torch.long)

    def set_extra_state(self, state: torch.Tensor) -> None:
        steps, k = (int(v) for v in state.tolist())
        self._steps = steps
        self.set_mask(k)

    # ------------------------------------------------------------------ network
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the conditionals under the current mask set.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, n_levels, D)`` softmax logits.
        """
        return self._logits(self.scaled(x.reshape(x.shape[0], -1)))

    def _logits(self, inp: torch.Tensor, masks: tuple[torch.Tensor, ...] | None = None,
                direct: torch.Tensor | None = None) -> torch.Tensor:
        """The network on the scaled, flattened input ``inp`` (``(B, D)``), with the layers' masks
        or with ``masks`` (:meth:`mask_tensors`); ``direct``, when given, is the direct
        connections' term ``(B, D * n_out)`` already computed for this ordering."""
        h = inp
        for l, layer in enumerate(self.hidden):
            h = F.relu(layer(h, None if masks is None else masks[l]))
        out = self.output(h, None if masks is None else masks[len(self.hidden)])
        if self.direct is not None:
            out = out + (direct if direct is not None else self._direct_term(inp, masks))
        if self.n_out == 1:
            return out
        return out.reshape(out.shape[0], self.n_out, self.n_dims)

    def _direct_term(self, inp: torch.Tensor, masks: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        return self.direct(inp, None if masks is None else masks[-1])

    def log_prob_mask(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Exact log-likelihood under mask set ``k`` alone, shape ``(B,)``; the current mask set
        stays as it is."""
        x = self.check_input(x)
        inp = self.scaled(x.reshape(x.shape[0], -1))
        return conditional_log_prob(self._logits(inp, self.mask_tensors(k)), x)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_masks == 1:
            return conditional_log_prob(self(x), x)
        inp = self.scaled(x.reshape(x.shape[0], -1))
        groups = self._cached_masks()[0]
        direct = {}  # the direct term of each ordering, computed once
        per_mask = []
        for k in range(self.n_masks):
            masks = self.mask_tensors(k)
            shared = None
            if self.direct is not None:
                shared = direct.get(groups[k])
                if shared is None:
                    shared = direct[groups[k]] = self._direct_term(inp, masks)
            per_mask.append(conditional_log_prob(self._logits(inp, masks, shared), x))
        return torch.logsumexp(torch.stack(per_mask), 0) - math.log(self.n_masks)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean NLL under the *current* mask set (training cycles through the sets)."""
        x = self.check_input(x)
        return -conditional_log_prob(self(x), x).mean()

    # ------------------------------------------------------------------ sampling
    def _complete(self, x: torch.Tensor, start: int, generator: torch.Generator | None) -> torch.Tensor:
        """Sample the dimensions from place ``start`` of the ordering on, given those before it.

        With one mask set, ancestral sampling in its ordering. For an ensemble, each example
        first draws its mask set from the posterior given what is observed,
        ``P(k | x_{<start}) ∝ p_k(x_{<start})`` (the ensemble is a uniform mixture of the mask
        sets' models; with nothing observed, the uniform distribution), then completes under
        that set. With ``start > 0`` the observed dimensions must be the first ones of every
        mask set's ordering, which :meth:`~DensityModel.complete` ensures by asking for the
        natural ordering.

        Args:
            x: ``(B, *data_shape)`` on the model's device (dimensions from ``start`` on are
                ignored).
            start: number of observed dimensions.
        Returns:
            ``(B, *data_shape)`` samples.
        """
        dev, current = self.device, self.mask_index
        flat = x.reshape(x.shape[0], -1)
        observed = self.sampling_order(0)[:start]
        hidden = torch.ones(self.n_dims, dtype=torch.bool)
        hidden[observed] = False
        flat[:, hidden.to(flat.device)] = 0
        try:
            log_w = []
            for k in range(self.n_masks):  # log p_k(x_{<start}): the observed conditionals
                self.set_mask(k)
                target = flat.reshape(x.shape)
                logits = self(target)
                if self.n_out == 1:
                    lp = -F.binary_cross_entropy_with_logits(logits, flat, reduction="none")
                else:
                    lp = -F.cross_entropy(logits, flat.long(), reduction="none")
                log_w.append(lp[:, observed.to(dev)].sum(1))
            cdf = torch.softmax(torch.stack(log_w, 1).double(), 1).cumsum(1)
            u = uniform((flat.shape[0],), generator, dev).double()
            ks = (u[:, None] > cdf).sum(1).clamp_max(self.n_masks - 1)
            for k in ks.unique().tolist():
                idx = (ks == k).nonzero().squeeze(1)
                self.set_mask(k)
                flat[idx] = self._draw_in_order(flat[idx], self.sampling_order(k)[start:], generator)
        finally:
            self.set_mask(current)
        return flat.reshape(x.shape)
