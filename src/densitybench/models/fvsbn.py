"""FVSBN: the fully visible sigmoid belief network, a logistic autoregression.

Frey, "Graphical Models for Machine Learning and Digital Communication", MIT Press 1998
(after Neal, "Connectionist learning of belief networks", 1992); the baseline of the
NADE and MADE papers' UCI tables (Larochelle & Murray 2011, Table 1; Germain et al. 2015,
Table 2).

Each conditional is a logistic regression on the pixels before it, in raster order:

    p(x_d = 1 | x_{<d}) = sigm(b_d + sum_{j<d} W_dj x_j),

so ``W`` is strictly lower triangular (``D (D - 1) / 2`` free weights). For ``K``-level
pixels ``W_dj`` is a ``K``-vector and the conditional a softmax over ``K`` levels, with
the input entering as ``x_j / (K - 1)``. This is MADE without hidden layers and with
direct connections, written out so that the model is one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoregressive import Autoregressive
from .hparams import check_hparams


class FVSBN(Autoregressive):
    """Logistic (or softmax) autoregression in raster order.

    Args:
        data_shape: shape of one example, e.g. ``(1, 1, 123)``.
        n_levels: 2 for Bernoulli conditionals, ``K > 2`` for a ``K``-way softmax.
    """

    name = "fvsbn"
    width_hparams = ()  # no hidden layer: one logistic regression per pixel

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {}

    def __init__(self, data_shape, n_levels: int = 2):
        check_hparams(FVSBN, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        D = self.n_dims
        self.W = nn.Parameter(torch.zeros(self.n_out, D, D))
        self.b = nn.Parameter(torch.zeros(self.n_out, D))
        #: the strict lower triangle: conditional d sees inputs j < d only
        self.register_buffer("mask", torch.ones(D, D).tril(-1))

    def n_params(self) -> int:
        """Free parameters: the strict lower triangle of ``W`` and ``b`` (the masked upper
        triangle is stored but never used)."""
        D = self.n_dims
        return self.n_out * (D * (D - 1) // 2 + D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, K, D)`` softmax logits.
        """
        v = self.scaled(x).reshape(x.shape[0], -1)  # (B, D)
        logits = torch.einsum("bj,kdj->bkd", v, self.W * self.mask) + self.b  # (B, n_out, D)
        return logits[:, 0] if self.n_out == 1 else logits
