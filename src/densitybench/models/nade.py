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

from .autoregressive import Autoregressive, draw
from .hparams import check_hparams


# elements of one chunk's ``(D, B_chunk, H)`` buffers: 8 MB of float32, which stays in a
# CPU's last-level cache while the chunk's passes run over it
_CHUNK_ELEMENTS = 2**21


def _cumsum_(x: torch.Tensor, block: int = 16) -> torch.Tensor:
    """In-place cumulative sum over the first dimension, in blocks of ``block`` rows.

    The same sums as ``x.cumsum_(0)`` (in another order of additions); on a CPU about twice
    as fast, since each step adds whole rows with vector instructions: a running sum inside
    every block, then each block's offset, the cumulative sum of the blocks' totals.
    """
    n_blocks = x.shape[0] // block
    if n_blocks < 2:
        return x.cumsum_(0)
    y = x[: n_blocks * block].view(n_blocks, block, *x.shape[1:])
    for i in range(1, block):
        y[:, i] += y[:, i - 1]
    totals = y[:, -1].cumsum(0)
    y[1:] += totals[:-1, None]
    rest = x[n_blocks * block :]
    if len(rest):
        rest[0] += totals[-1]
        rest.cumsum_(0)
    return x


def _chunk(B: int, D: int, H: int) -> int:
    """Examples per chunk: as many as fit in ``_CHUNK_ELEMENTS``, at least one, at most ``B``."""
    return max(1, min(B, _CHUNK_ELEMENTS // (D * H)))


def _hidden(vT: torch.Tensor, W: torch.Tensor, c: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``h_d = sigm(c + sum_{j<d} W_{:,j} x_j)`` for a chunk, into ``out`` of shape (D, B, H)."""
    out[0] = 0
    torch.mul(vT[:-1, :, None], W[:-1, None], out=out[1:])  # W_{:,d-1} x_{d-1} in row d
    return _cumsum_(out).add_(c).sigmoid_()


class _Conditionals(torch.autograd.Function):
    """The logits of all D conditionals with a hand-written backward pass.

    Autograd would keep several ``(B, D, H)`` intermediates (the contributions, their
    cumulative sum, the pre-activations) and stream each through memory. This pass works on
    chunks of the batch small enough to stay in the processor's cache, lays them out as
    ``(D, B, H)`` so that the per-pixel products are batched matrix products, reuses two
    buffers instead of allocating, and recomputes ``h`` in the backward pass instead of
    keeping it. On a CPU that is several times faster than autograd.
    ``tests/test_autoregressive.py`` checks it against autograd.

    Inputs: ``v`` (B, D) the scaled pixels, ``W`` (D, H), ``c`` (H,), ``V`` (D, K, H),
    ``b`` (D, K). Output: logits (B, K, D).
    """

    @staticmethod
    def forward(ctx, v, W, c, V, b):
        B, D = v.shape
        chunk = _chunk(B, D, W.shape[1])
        h = v.new_empty(D, chunk, W.shape[1])
        vT = v.T
        out = v.new_empty(D, B, V.shape[1])
        for s in range(0, B, chunk):
            n = min(chunk, B - s)
            hs = _hidden(vT[:, s : s + n], W, c, h[:, :n])
            out[:, s : s + n] = torch.bmm(hs, V.transpose(1, 2))  # V_d . h_d
        ctx.save_for_backward(v, W, c, V)
        return out.permute(1, 2, 0) + b.T

    @staticmethod
    def backward(ctx, g):
        v, W, c, V = ctx.saved_tensors
        B, D = v.shape
        H = W.shape[1]
        chunk = _chunk(B, D, H)
        h, da = v.new_empty(D, chunk, H), v.new_empty(D, chunk, H)
        vT = v.T.contiguous()
        gT = g.permute(2, 1, 0).contiguous()  # (D, K, B)
        gD = g.permute(2, 0, 1).contiguous()  # (D, B, K)
        dV, dW, dc = torch.zeros_like(V), torch.zeros_like(W), torch.zeros_like(c)
        db = g.sum(0).T
        dv = v.new_zeros(D, B) if ctx.needs_input_grad[0] else None
        for s in range(0, B, chunk):
            n = min(chunk, B - s)
            hs, das, vs = h[:, :n], da[:, :n], vT[:, s : s + n]
            _hidden(vs, W, c, hs)
            dV.baddbmm_(gT[:, :, s : s + n], hs)  # dV_d += g_d^T h_d
            hs.addcmul_(hs, hs, value=-1)  # h (1 - h), the sigmoid's derivative
            torch.bmm(gD[:, s : s + n], V, out=das)  # dL/dh_d
            das.mul_(hs)  # dL/da_d
            dc += das.sum((0, 1))
            # a_d sums W_{:,j} x_j over j < d, so x_j and W_{:,j} receive S_j = sum_{d>j} dL/da_d:
            # the total minus the cumulative sum up to j (exactly 0 where every later term is)
            _cumsum_(das)
            S = das[:-1].neg_().add_(das[-1])  # (D-1, n, H): S_0 .. S_{D-2}; S_{D-1} = 0
            dW[:-1, None].baddbmm_(vs[:-1, None, :], S)
            if dv is not None:
                dv[:-1, s : s + n] = (S * W[:-1, None, :]).sum(-1)
        return None if dv is None else dv.T, dW, dc, dV, db


class NADE(Autoregressive):
    """NADE with a fixed raster ordering and sigmoid hidden units.

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        hidden_size: ``H``, the number of hidden units (500 in both papers' MNIST runs).
        n_levels: 2 for Bernoulli conditionals, ``K > 2`` for a ``K``-way softmax.
    """

    name = "nade"
    width_hparams = ("hidden_size",)

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"hidden_size": 5}

    def __init__(self, data_shape, hidden_size: int = 500, n_levels: int = 2):
        check_hparams(NADE, data_shape, locals())  # the constructor's arguments
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
