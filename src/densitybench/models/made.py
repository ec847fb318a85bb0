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

a normalised density (averaging logits across masks would not be).
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.mask * self.weight, self.bias)


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

    def set_mask(self, k: int) -> None:
        """Use mask set ``k`` for the following forward passes."""
        if not 0 <= k < self.n_masks:
            raise ValueError(f"mask index {k} outside [0, {self.n_masks})")
        ms = self.degrees(k)
        for layer, m_prev, m in zip(self.hidden, ms[:-1], ms[1:]):
            layer.set_mask(m_prev[:, None] <= m[None, :])
        m0 = ms[0]
        out = (ms[-1][:, None] < m0[None, :]).repeat(1, self.n_out)  # unit j*D + d -> dim d
        self.output.set_mask(out)
        if self.direct is not None:
            self.direct.set_mask((m0[:, None] < m0[None, :]).repeat(1, self.n_out))
        self.mask_index = k

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
        h = self.scaled(x.reshape(x.shape[0], -1))
        inp = h
        for layer in self.hidden:
            h = F.relu(layer(h))
        out = self.output(h)
        if self.direct is not None:
            out = out + self.direct(inp)
        if self.n_out == 1:
            return out
        return out.reshape(out.shape[0], self.n_out, self.n_dims)

    def log_prob_mask(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Exact log-likelihood under mask set ``k`` alone, shape ``(B,)``."""
        x = self.check_input(x)
        current = self.mask_index
        self.set_mask(k)
        try:
            return conditional_log_prob(self(x), x)
        finally:
            self.set_mask(current)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_masks == 1:
            return conditional_log_prob(self(x), x)
        current = self.mask_index
        try:
            per_mask = []
            for k in range(self.n_masks):
                self.set_mask(k)
                per_mask.append(conditional_log_prob(self(x), x))
        finally:
            self.set_mask(current)
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
