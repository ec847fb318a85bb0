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

from .autoregressive import draw
from .base import DensityModel, uniform
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


class MADE(DensityModel):
    """MADE over binary or ``n_levels``-level data.

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
    likelihood = "exact"
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
        super().__init__(data_shape, support="binary" if n_levels == 2 else "levels", n_levels=n_levels)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.n_masks = int(n_masks)
        self.ordering = ordering
        self.resample_every = int(resample_every)
        D = self.n_dims
        self.n_out = 1 if n_levels == 2 else n_levels  # outputs per dimension

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
    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        return x if self.n_out == 1 else x / (self.n_levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the conditionals under the current mask set.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, n_levels, D)`` softmax logits.
        """
        h = self._inputs(x)
        inp = h
        for layer in self.hidden:
            h = F.relu(layer(h))
        out = self.output(h)
        if self.direct is not None:
            out = out + self.direct(inp)
        if self.n_out == 1:
            return out
        return out.reshape(out.shape[0], self.n_out, self.n_dims)

    def _log_prob_current(self, x: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        target = x.reshape(x.shape[0], -1)
        if self.n_out == 1:
            return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
        return -F.cross_entropy(logits, target.long(), reduction="none").sum(1)

    def log_prob_mask(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Exact log-likelihood under mask set ``k`` alone, shape ``(B,)``."""
        self.check_input(x)
        current = self.mask_index
        self.set_mask(k)
        try:
            return self._log_prob_current(x)
        finally:
            self.set_mask(current)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_masks == 1:
            return self._log_prob_current(x)
        current = self.mask_index
        try:
            per_mask = []
            for k in range(self.n_masks):
                self.set_mask(k)
                per_mask.append(self._log_prob_current(x))
        finally:
            self.set_mask(current)
        return torch.logsumexp(torch.stack(per_mask), 0) - math.log(self.n_masks)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean NLL under the *current* mask set (training cycles through the sets)."""
        self.check_input(x)
        return -self._log_prob_current(x).mean()

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def complete(self, x: torch.Tensor, n_known: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Keep the first ``n_known`` pixels (raster order) and sample the rest from the model.

        Needs ``ordering="natural"``: with a random ordering the observed pixels are not a
        prefix. For an ensemble of mask sets, each image first draws its mask set from the
        posterior given what is observed, ``P(k | x_{<n}) ∝ p_k(x_{<n})`` (the ensemble is a
        uniform mixture of the mask sets' models), then completes under that set.

        Args:
            x: ``(B, *data_shape)`` images (pixels at and after ``n_known`` are ignored).
            n_known: number of leading pixels that are observed.
        Returns:
            ``(B, *data_shape)`` completions.
        """
        self.check_input(x)
        if self.ordering != "natural":
            raise ValueError("completion of the bottom of an image needs ordering='natural'")
        n_known = int(n_known)
        if not 0 <= n_known <= self.n_dims:
            raise ValueError(f"n_known must lie in [0, {self.n_dims}], not {n_known!r}")
        dev, current = self.device, self.mask_index
        flat = x.reshape(x.shape[0], -1).clone().float().to(dev)
        flat[:, n_known:] = 0
        try:
            log_w = []
            for k in range(self.n_masks):  # log p_k(x_{<n}): the first n_known conditionals
                self.set_mask(k)
                logits = self(flat.reshape(x.shape))
                if self.n_out == 1:
                    lp = -F.binary_cross_entropy_with_logits(logits, flat, reduction="none")
                else:
                    lp = -F.cross_entropy(logits, flat.long(), reduction="none")
                log_w.append(lp[:, :n_known].sum(1))
            cdf = torch.softmax(torch.stack(log_w, 1).double(), 1).cumsum(1)
            u = uniform((flat.shape[0],), generator, dev).double()
            ks = (u[:, None] > cdf).sum(1).clamp_max(self.n_masks - 1)
            for k in ks.unique().tolist():
                idx = (ks == k).nonzero().squeeze(1)
                self.set_mask(k)
                xk = flat[idx]
                for d in range(n_known, self.n_dims):
                    logits = self(xk.reshape(-1, *self.data_shape))
                    xk[:, d] = draw(logits[:, d] if self.n_out == 1 else logits[:, :, d], generator)
                flat[idx] = xk
        finally:
            self.set_mask(current)
        return flat.reshape(x.shape)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Ancestral sampling; for an ensemble, each sample first draws its mask set."""
        dev = self.device
        current = self.mask_index
        ks = (uniform((n,), generator, dev) * self.n_masks).long().clamp_max(self.n_masks - 1)
        x = torch.zeros(n, self.n_dims, device=dev)
        try:
            for k in ks.unique().tolist():
                idx = (ks == k).nonzero().squeeze(1)
                self.set_mask(k)
                xk = torch.zeros(len(idx), self.n_dims, device=dev)
                for d in torch.argsort(self.orders[k]).tolist():
                    logits = self(xk.reshape(-1, *self.data_shape))
                    u = uniform((len(idx),), generator, dev)
                    if self.n_out == 1:
                        xk[:, d] = (u < torch.sigmoid(logits[:, d])).float()
                    else:
                        cdf = torch.softmax(logits[:, :, d], 1).cumsum(1)
                        xk[:, d] = (u[:, None] > cdf).sum(1).clamp_max(self.n_levels - 1).float()
                x[idx] = xk
        finally:
            self.set_mask(current)
        return x.reshape(n, *self.data_shape)
