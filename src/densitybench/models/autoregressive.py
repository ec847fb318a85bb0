"""What every raster-order autoregressive image model shares.

A model over images ``x`` of ``D = C * H * W`` pixels factorises

    log p(x) = sum_{d=1}^{D} log p(x_d | x_{<d})

in the raster order (row by row, left to right; channels of a pixel in order). A subclass
implements ``forward(x)``, the logits of every conditional computed in one pass with the
guarantee that the logits of pixel ``d`` depend only on pixels before ``d``: shape ``(B, D)``
for Bernoulli outputs, ``(B, K, D)`` for a ``K``-way softmax. This module turns those logits
into the exact ``log_prob``, ancestral sampling, and completions of partly observed images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import DensityModel, uniform


def conditional_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_d log p(x_d | x_{<d})`` from the logits of the conditionals.

    Args:
        logits: ``(B, D)`` Bernoulli logits or ``(B, K, D)`` softmax logits.
        x: ``(B, ...)`` with ``D`` values per example, in {0, 1} or {0, ..., K-1}.
    Returns:
        ``(B,)`` log-likelihoods in nats.
    """
    target = x.reshape(x.shape[0], -1)
    if logits.ndim == 2:
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
    return -F.cross_entropy(logits, target.long(), reduction="none").sum(1)


def draw(logits_d: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One value per row from the conditional of one pixel.

    Args:
        logits_d: ``(B,)`` Bernoulli logits or ``(B, K)`` softmax logits.
    Returns:
        ``(B,)`` float values in {0, 1} or {0, ..., K-1}.
    """
    u = uniform((logits_d.shape[0],), generator, logits_d.device)
    if logits_d.ndim == 1:
        return (u < torch.sigmoid(logits_d)).float()
    cdf = torch.softmax(logits_d.double(), 1).cumsum(1)
    return (u[:, None].double() > cdf).sum(1).clamp_max(logits_d.shape[1] - 1).float()


class RasterAutoregressive(DensityModel):
    """Base class of the raster-order models (NADE, PixelCNN, the PixelRNNs).

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        n_levels: 2 for Bernoulli outputs; ``K > 2`` for a ``K``-way softmax per pixel.
    """

    likelihood = "exact"

    def __init__(self, data_shape, n_levels: int = 2):
        if int(n_levels) < 2:
            raise ValueError(f"n_levels must be at least 2, not {n_levels!r}")
        super().__init__(data_shape, support="binary" if n_levels == 2 else "levels", n_levels=n_levels)
        #: outputs per pixel: one logit (Bernoulli) or K (softmax)
        self.n_out = 1 if n_levels == 2 else int(n_levels)

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """The network's view of the input: levels mapped to [0, 1]."""
        x = x.float()
        return x if self.n_out == 1 else x / (self.n_levels - 1)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return conditional_log_prob(self(x), x)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        x = torch.zeros(n, *self.data_shape, device=self.device)
        return self._complete(x, 0, generator)

    def complete(self, x: torch.Tensor, n_known: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Keep the first ``n_known`` pixels of each image (raster order) and sample the rest.

        ``n_known = D // 2`` for ``H x W`` images with even ``H`` hides the bottom half.

        Args:
            x: ``(B, *data_shape)`` images in the model's support (pixels at and after
                ``n_known`` are ignored).
            n_known: number of leading pixels that are observed.
        Returns:
            ``(B, *data_shape)`` completions drawn from ``p(x_{>=n_known} | x_{<n_known})``.
        """
        self.check_input(x)
        if not 0 <= int(n_known) <= self.n_dims:
            raise ValueError(f"n_known must lie in [0, {self.n_dims}], not {n_known!r}")
        with torch.no_grad():
            return self._complete(x.clone().to(self.device), int(n_known), generator)

    def _complete(self, x: torch.Tensor, start: int, generator: torch.Generator | None) -> torch.Tensor:
        """Sample pixels ``start, ..., D-1`` in order; one full forward pass per pixel
        (subclasses with a cheaper incremental pass override this)."""
        flat = x.reshape(x.shape[0], -1)
        for d in range(start, self.n_dims):
            logits = self(flat.reshape(x.shape))
            flat[:, d] = draw(logits[..., d], generator)
        return flat.reshape(x.shape)


def dependency_map(model: RasterAutoregressive, position: int, x: torch.Tensor | None = None) -> torch.Tensor:
    """Which input pixels the conditional of pixel ``position`` depends on.

    The gradient of that pixel's logits with respect to every input, at ``x`` (random
    data by default): non-zero entries are the receptive field; an autoregressive model
    must have none at or after ``position``.

    Returns:
        ``data_shape``-shaped float tensor of ``|d logits_position / d x|`` summed over outputs.
    """
    if x is None:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, model.n_levels, (1, *model.data_shape), generator=g).float()
    x = x[:1].clone().to(model.device).requires_grad_(True)
    logits = model(x)
    logits[..., position].sum().backward()
    return x.grad[0].abs().detach().cpu()
