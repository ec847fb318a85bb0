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
        contrib = v[:, :, None] * self.W  # (B, D, H): W_{:,d} x_d
        # a_d = c + sum_{j<d} W_{:,j} x_j: an exclusive cumulative sum over d
        a = self.c + torch.cat([torch.zeros_like(contrib[:, :1]), contrib[:, :-1].cumsum(1)], 1)
        h = torch.sigmoid(a)
        logits = torch.einsum("bdh,dkh->bkd", h, self.V) + self.b.T  # (B, n_out, D)
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
