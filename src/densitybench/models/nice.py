"""NICE: Non-linear Independent Components Estimation.

Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation",
arXiv:1410.8516 (ICLR 2015 workshop).

A bijection ``h = f(x)`` from data to a latent vector with independent components
``h_d ~ p_{H_d}``; by the change of variables the density of the data is exact:

    log p_X(x) = sum_d log p_{H_d}(f_d(x)) + log |det df/dx|.

Symbols follow the paper. ``f`` is a stack of *additive coupling layers*: the dimensions
are split into a partition ``(I_1, I_2)`` and

    y_{I_1} = x_{I_1},    y_{I_2} = x_{I_2} + m(x_{I_1}),

whose inverse is ``x_{I_2} = y_{I_2} - m(y_{I_1})`` and whose Jacobian is unit
triangular (log-determinant 0) whatever the coupling function ``m``, here a ReLU MLP.
The partition alternates from one layer to the next so that every dimension is changed.
The stack ends with a diagonal scaling ``h = exp(s) * y`` (the paper's ``S_ii = exp(s_i)``),
the only part with a non-zero log-determinant ``sum_d s_d``. The prior is the standard
logistic, ``log p_{H_d}(h) = -(softplus(h) + softplus(-h))``, or a standard Gaussian.

The paper's MNIST setting (the constructor's defaults): 4 coupling layers, each ``m`` with
5 hidden ReLU layers of 1000 units, dimensions partitioned into odd and even indices,
logistic prior. The data are dequantized 8-bit images ``y = (x + u) / 256``,
``u ~ U(0, 1)^D``, a density on ``[0, 1]^D``.

Conversion to the bits/dim of the 8-bit data (the one the book uses): the scaling by
``1/256`` in each of the ``D`` dimensions has Jacobian ``256^{-D}``, so a negative
log-likelihood of ``nll`` nats on ``[0, 1]^D`` is ``nll + D ln 256`` nats on the 8-bit
scale and

    bits/dim = (nll / D + ln 256) / ln 2.

For the paper's MNIST number, a log-likelihood of 1980.50 nats (``nll = -1980.50``) with
``D = 784``:

>>> import math
>>> round((-1980.50 / 784 + math.log(256)) / math.log(2), 2)
4.36

The model itself returns ``log p`` on the data it is given; the ``D ln 256`` shift is
added by :func:`densitybench.evaluate.nll_summary`, never here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import DensityModel, check_count, uniform
from .hparams import check_hparams

#: the priors ``p_H`` the model offers
PRIORS = ("logistic", "gaussian")
#: the partitions ``(I_1, I_2)`` the model offers
PARTITIONS = ("alternate", "half")


def partition_indices(n_dims: int, partition: str, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The partition ``(I_1, I_2)`` of coupling layer ``layer`` (``I_1`` is kept, ``I_2`` changed).

    Args:
        n_dims: ``D``, the number of (flattened) dimensions.
        partition: ``"alternate"``: the paper's split into even and odd (0-based) indices,
            ``I_1`` the even ones in layers 0, 2, ... and the odd ones in layers 1, 3, ...;
            ``"half"``: the first ``ceil(D/2)`` indices against the rest, swapped likewise.
        layer: index of the coupling layer, from 0.

    Returns:
        ``(I_1, I_2)``: two sorted ``long`` tensors that together hold ``0..D-1`` once.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
    d = torch.arange(n_dims)
    if partition == "alternate":
        first = d % 2 == 0
    else:
        first = d < (n_dims + 1) // 2
    keep = first if layer % 2 == 0 else ~first
    return d[keep], d[~keep]


class AdditiveCoupling(nn.Module):
    """``y_{I_1} = x_{I_1}``, ``y_{I_2} = x_{I_2} + m(x_{I_1})``; log-determinant 0.

    Args:
        index_1: ``I_1``, the indices passed through unchanged and fed to ``m``.
        index_2: ``I_2``, the indices shifted by ``m(x_{I_1})``.
        hidden_size: units of each hidden layer of ``m``.
        n_hidden_layers: number of hidden ReLU layers of ``m``.
    """

    def __init__(self, index_1: torch.Tensor, index_2: torch.Tensor, hidden_size: int, n_hidden_layers: int):
        super().__init__()
        if len(index_1) == 0 or len(index_2) == 0:
            raise ValueError("both halves of a coupling partition must be non-empty")
        # the partition is rebuilt from the constructor's arguments: not checkpointed
        self.register_buffer("index_1", index_1.long(), persistent=False)
        self.register_buffer("index_2", index_2.long(), persistent=False)
        # y = cat(y_{I_1}, y_{I_2})[:, unpermute] puts every dimension back in its place
        self.register_buffer("unpermute", torch.argsort(torch.cat([index_1, index_2])), persistent=False)
        sizes = [len(index_1)] + [int(hidden_size)] * int(n_hidden_layers)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(sizes[-1], len(index_2))
        # m starts at exactly zero, so every coupling starts as the identity: the initial
        # flow is the prior itself and the deep stack of MLPs cannot blow the first
        # gradients up (the zero initialisation of Glow's last layers, for the same reason)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        #: the coupling function ``m``: ``(B, |I_1|) -> (B, |I_2|)``
        self.m = nn.Sequential(*layers)

    def _couple(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        x1 = x[:, self.index_1]
        x2 = x[:, self.index_2] + sign * self.m(x1)
        return torch.cat([x1, x2], 1)[:, self.unpermute]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``(B, D)`` -> ``(y, logabsdet)`` with ``y`` ``(B, D)`` and zeros ``(B,)``."""
        return self._couple(x, 1.0), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y``: ``(B, D)`` -> ``(x, logabsdet)`` with ``x_{I_2} = y_{I_2} - m(y_{I_1})``."""
        return self._couple(y, -1.0), y.new_zeros(y.shape[0])


class DiagonalScaling(nn.Module):
    """``h = exp(s) * y``, log-determinant ``sum_d s_d`` (the paper's diagonal ``S``).

    Args:
        n_dims: ``D``.
    """

    def __init__(self, n_dims: int):
        super().__init__()
        #: ``s``, the log of the scale of each dimension; 0 (the identity) at the start
        self.s = nn.Parameter(torch.zeros(n_dims))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y``: ``(B, D)`` -> ``(h, logabsdet)``, ``h`` ``(B, D)``, ``logabsdet`` ``(B,)``."""
        return y * self.s.exp(), self.s.sum().expand(y.shape[0])

    def inverse(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h``: ``(B, D)`` -> ``(y, logabsdet)`` with ``y = exp(-s) * h``."""
        return h * (-self.s).exp(), (-self.s.sum()).expand(h.shape[0])


class NICE(DensityModel):
    """NICE: additive coupling layers, a diagonal scaling and a factorised prior.

    A density on continuous data (e.g. dequantized images in ``[0, 1]^D``).

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``; flattened in C order.
        n_couplings: number of additive coupling layers.
        hidden_size: units of each hidden layer of every coupling function ``m``.
        n_hidden_layers: hidden ReLU layers of every ``m``.
        prior: ``"logistic"`` (the paper's choice for MNIST) or ``"gaussian"``.
        partition: ``"alternate"`` (odd and even indices, the paper's) or ``"half"``
            (first and second half of the flattened vector); either way the two halves
            swap roles from one coupling layer to the next.
    """

    name = "nice"
    fused_adam_on_cpu = True  # measured faster (see DensityModel)
    likelihood = "exact"
    width_hparams = ("hidden_size",)
    hparam_choices = {"prior": PRIORS, "partition": PARTITIONS}
    has_latent = True
    can_encode = True  # the flow itself: h = f(x), exactly invertible

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"n_couplings": 2, "hidden_size": 4, "n_hidden_layers": 1}

    def __init__(
        self,
        data_shape,
        n_couplings: int = 4,
        hidden_size: int = 1000,
        n_hidden_layers: int = 5,
        prior: str = "logistic",
        partition: str = "alternate",
    ):
        check_hparams(NICE, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, support="continuous")
        if self.n_dims < 2:
            raise ValueError(f"NICE needs at least 2 dimensions to partition, got data_shape {self.data_shape}")
        self.n_couplings = int(n_couplings)
        self.hidden_size = int(hidden_size)
        self.n_hidden_layers = int(n_hidden_layers)
        self.prior = prior
        self.partition = partition
        self.couplings = nn.ModuleList(
            AdditiveCoupling(*partition_indices(self.n_dims, partition, k), self.hidden_size, self.n_hidden_layers)
            for k in range(self.n_couplings)
        )
        self.scaling = DiagonalScaling(self.n_dims)

    # ------------------------------------------------------------------ the bijection
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h = f(x)`` and ``log |det df/dx|``.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(h, logabsdet)``: ``h`` ``(B, D)``, ``logabsdet`` ``(B,)``.
        """
        if x.ndim != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"NICE.forward expects shape (B, {', '.join(map(str, self.data_shape))}), "
                             f"got {tuple(x.shape)}")
        h = x.reshape(x.shape[0], self.n_dims)
        logabsdet = h.new_zeros(h.shape[0])
        for coupling in self.couplings:
            h, ld = coupling(h)
            logabsdet = logabsdet + ld
        h, ld = self.scaling(h)
        return h, logabsdet + ld

    def inverse(self, h: torch.Tensor) -> torch.Tensor:
        """``x = f^{-1}(h)``.

        Args:
            h: ``(B, D)``.
        Returns:
            ``x``: ``(B, *data_shape)``.
        """
        if h.ndim != 2 or h.shape[1] != self.n_dims:
            raise ValueError(f"NICE.inverse expects shape (B, {self.n_dims}), got {tuple(h.shape)}")
        x, _ = self.scaling.inverse(h)
        for coupling in reversed(self.couplings):
            x, _ = coupling.inverse(x)
        return x.reshape(h.shape[0], *self.data_shape)

    # ------------------------------------------------------------------ the prior
    def log_prior(self, h: torch.Tensor) -> torch.Tensor:
        """``sum_d log p_{H_d}(h_d)``: ``h`` ``(B, D)`` -> ``(B,)`` nats."""
        if self.prior == "logistic":
            return -(F.softplus(h) + F.softplus(-h)).sum(1)
        return -0.5 * (h.pow(2) + math.log(2 * math.pi)).sum(1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of ``h`` from the prior, shape ``(n, D)``.

        The logistic is drawn by its inverse CDF, ``h = log u - log(1 - u)``, ``u ~ U(0, 1)``.
        """
        dev, dtype = self.device, self.scaling.s.dtype
        if self.prior == "logistic":
            u = uniform((n, self.n_dims), generator, dev).to(dtype)
            # torch.rand can return exactly 0, whose logit is -inf
            u = u.clamp_min(torch.finfo(u.dtype).tiny)
            return u.log() - torch.log1p(-u)
        gdev = generator.device if generator is not None else torch.device("cpu")
        return torch.randn((n, self.n_dims), generator=generator, device=gdev).to(device=dev, dtype=dtype)

    # ------------------------------------------------------------------ the interface
    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p_H(f(x)) + log |det df/dx|``: ``x`` ``(B, *data_shape)`` -> ``(B,)`` nats."""
        h, logabsdet = self(x)
        return self.log_prior(h) + logabsdet

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``f^{-1}(h)`` with ``h`` from the prior: ``(n, *data_shape)``, continuous values
        (not clamped to ``[0, 1]``: that is for display only)."""
        return self.inverse(self.sample_prior(n, generator))

    # ------------------------------------------------------------------ the latent space
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``h`` from the prior: ``(n, D)`` (see :meth:`sample_prior`)."""
        return self.sample_prior(check_count(n), generator)

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The exact code ``h = f(x)``: ``(B, *data_shape)`` continuous -> ``(B, D)``."""
        h, _ = self(self.check_input(x))
        return h

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``x = f^{-1}(h)``: ``(B, D)`` -> ``(B, *data_shape)`` (see :meth:`inverse`)."""
        return self.inverse(z)
