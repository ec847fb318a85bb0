"""NADE: the Neural Autoregressive Distribution Estimator.

Larochelle & Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011;
Uria, Côté, Gregor, Murray & Larochelle, "Neural Autoregressive Distribution Estimation",
JMLR 2016.

With a fixed ordering (raster order here) every conditional is computed by a
one-hidden-layer network whose input weights are shared across the conditionals:

    a_1 = c,   a_{d+1} = a_d + W_{:,d} x_d,   h_d = sigm(a_d),
    p(x_d = 1 | x_{<d}) = sigm(b_d + V_d . h_d).

The running pre-activation ``a_d`` makes the D conditionals cost O(DH) together instead
of O(D^2 H) for D separate networks. For ``K``-level pixels ``V_d`` is a ``K x H`` matrix
and ``b_d`` a ``K``-vector, the conditional a softmax; the input enters as ``x_d / (K-1)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .autoregressive import RasterAutoregressive, draw


class _Conditionals(torch.autograd.Function):
    """The logits of all D conditionals with a hand-written backward pass.

    Autograd would keep several ``(B, D, H)`` intermediates (the contributions, their
    cumulative sum, the pre-activations); this keeps only ``h`` and reuses one buffer in the
    backward pass, which makes training about twice as fast on a CPU, where the pass is
    limited by memory traffic. ``tests/test_autoregressive.py`` checks it against autograd.

    Inputs: ``v`` (B, D) the scaled pixels, ``W`` (D, H), ``c`` (H,), ``V`` (D, K, H),
    ``b`` (D, K). Output: logits (B, K, D).
    """

    @staticmethod
    def forward(ctx, v, W, c, V, b):
        B, D = v.shape
        h = v.new_empty(B, D, W.shape[1])
        h[:, 0] = 0
        torch.mul(v[:, :-1, None], W[:-1], out=h[:, 1:])  # W_{:,d-1} x_{d-1} in row d
        h.cumsum_(1).add_(c).sigmoid_()  # h_d = sigm(c + sum_{j<d} W_{:,j} x_j)
        ctx.save_for_backward(v, W, V, h)
        return torch.einsum("bdh,dkh->bkd", h, V) + b.T

    @staticmethod
    def backward(ctx, g):
        v, W, V, h = ctx.saved_tensors
        dV = torch.einsum("bkd,bdh->dkh", g, h)
        db = g.sum(0).T
        da = torch.einsum("bkd,dkh->bdh", g, V)  # dL/dh_d, then dL/da_d
        da.mul_(h).mul_(1 - h)
        dc = da.sum((0, 1))
        # a_d sums W_{:,j} x_j over j < d, so x_j and W_{:,j} receive S_j = sum_{d>j} dL/da_d,
        # a reverse cumulative sum (summed from the end, so that it is exactly 0 where it must be)
        S = da.flip(1).cumsum(1).flip(1)[:, 1:]  # (B, D-1, H): S_0 .. S_{D-2}; S_{D-1} = 0
        dW = torch.zeros_like(W)
        dW[:-1] = torch.einsum("bj,bjh->jh", v[:, :-1], S)
        dv = None
        if ctx.needs_input_grad[0]:
            dv = torch.zeros_like(v)
            dv[:, :-1] = torch.einsum("bjh,jh->bj", S, W[:-1])
        return dv, dW, dc, dV, db


class NADE(RasterAutoregressive):
    """NADE with a fixed raster ordering and sigmoid hidden units.

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        hidden_size: ``H``, the number of hidden units (500 in both papers' MNIST runs).
        n_levels: 2 for Bernoulli conditionals, ``K > 2`` for a ``K``-way softmax.
    """

    def __init__(self, data_shape, hidden_size: int = 500, n_levels: int = 2):
        super().__init__(data_shape, n_levels)
        D, H = self.n_dims, int(hidden_size)
        self.hidden_size = H
        # W[d] is the paper's column W_{:,d}; V[d] its V_d (one row per output of pixel d)
        self.W = nn.Parameter(torch.empty(D, H).uniform_(-1, 1) / math.sqrt(D))
        self.c = nn.Parameter(torch.zeros(H))
        self.V = nn.Parameter(torch.empty(D, self.n_out, H).uniform_(-1, 1) / math.sqrt(H))
        self.b = nn.Parameter(torch.zeros(D, self.n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional in one O(BDH) pass.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, K, D)`` softmax logits.
        """
        v = self.scaled(x).reshape(x.shape[0], -1)  # (B, D)
        logits = _Conditionals.apply(v, self.W, self.c, self.V, self.b)  # (B, n_out, D)
        return logits[:, 0] if self.n_out == 1 else logits

    def _complete(self, x: torch.Tensor, start: int, generator: torch.Generator | None) -> torch.Tensor:
        """Ancestral sampling with the running pre-activation: O(DH) per image."""
        flat = x.reshape(x.shape[0], -1)
        v = self.scaled(flat)
        a = self.c + v[:, :start] @ self.W[:start]  # (B, H)
        for d in range(start, self.n_dims):
            logits = torch.sigmoid(a) @ self.V[d].T + self.b[d]  # (B, n_out)
            flat[:, d] = draw(logits[:, 0] if self.n_out == 1 else logits, generator)
            a = a + self.scaled(flat[:, d : d + 1]) * self.W[d]
        return flat.reshape(x.shape)
