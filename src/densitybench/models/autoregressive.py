"""What every autoregressive model shares (NADE, MADE, FVSBN, PixelCNN, the PixelRNNs).

A model over examples ``x`` of ``D`` dimensions (``C * H * W`` pixels of an image) factorises

    log p(x) = sum_{i=1}^{D} log p(x_{o(i)} | x_{o(1)}, ..., x_{o(i-1)})

over an ordering ``o`` of the dimensions: the raster order (row by row, left to right;
channels of a pixel in order) unless the model says otherwise. A subclass
implements ``forward(x)``, the logits of every conditional computed in one pass with the
guarantee that the logits of pixel ``d`` depend only on pixels before ``d`` in the ordering: shape ``(B, D)``
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


class Autoregressive(DensityModel):
    """Base class of the autoregressive models: exact over an ordering of the ``D`` dimensions.

    A subclass implements ``forward(x)``: the logits of every conditional in one pass, indexed
    by dimension (``logits[..., d]`` is the conditional of ``x_d``, whatever its place in the
    ordering), each depending only on the dimensions before ``d`` in the ordering. The ordering
    is the raster order unless :meth:`sampling_order` says otherwise (MADE's random orderings);
    a model that keeps several orderings or connectivities (MADE's mask ensemble) overrides
    ``_log_prob`` and ``_complete`` and reuses :meth:`_draw_in_order`.

    Images are completed from a raster prefix (:meth:`~DensityModel.complete`): every model in
    the raster order can (``can_complete``).

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``.
        n_levels: 2 for Bernoulli outputs; ``K > 2`` for a ``K``-way softmax per pixel.
    """

    likelihood = "exact"
    can_complete = True

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

    def sampling_order(self) -> torch.Tensor:
        """The dimensions in the order of the chain rule: ``order[i]`` is the index (in the
        flattened example) of the ``i``-th dimension; ``arange(D)``, the raster order, here."""
        return torch.arange(self.n_dims)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return conditional_log_prob(self(x), x)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        x = torch.zeros(n, *self.data_shape, device=self.device)
        return self._complete(x, 0, generator)

    def _complete(self, x: torch.Tensor, start: int, generator: torch.Generator | None) -> torch.Tensor:
        """Sample the dimensions ``sampling_order()[start:]`` in order, keeping the others;
        one full forward pass per pixel (subclasses with a cheaper incremental pass override
        this)."""
        flat = x.reshape(x.shape[0], -1)
        return self._draw_in_order(flat, self.sampling_order()[start:], generator).reshape(x.shape)

    def _draw_in_order(self, flat: torch.Tensor, dims: torch.Tensor, generator: torch.Generator | None
                       ) -> torch.Tensor:
        """Draw ``flat[:, d]`` for every ``d`` of ``dims`` in turn from its conditional under the
        current network, in place.

        Args:
            flat: ``(B, D)`` examples; the dimensions before ``dims`` in the ordering are given.
            dims: dimension indices, in the ordering.
        Returns:
            ``flat``.
        """
        for d in dims.tolist():
            logits = self(flat.reshape(flat.shape[0], *self.data_shape))
            flat[:, d] = draw(logits[..., d], generator)
        return flat


#: the name of the base before it took orderings other than the raster one
RasterAutoregressive = Autoregressive


def dependency_map(model: Autoregressive, position: int, x: torch.Tensor | None = None) -> torch.Tensor:
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


def blind_spot(seen: torch.Tensor, position: int) -> torch.Tensor:
    """The blind spot of a receptive field: the pixels before ``position`` (raster order) that
    lie within the field's extent but are not seen.

    Args:
        seen: ``(H, W)`` boolean map of the pixels the conditional of ``position`` depends on
            (e.g. ``dependency_map(...)[0] > 0``).
        position: the pixel's raster index.
    Returns:
        ``(H, W)`` boolean map: before ``position``, inside the bounding box of ``seen`` (rows
        from the first seen row to the pixel's own, columns from the leftmost to the rightmost
        seen one) and not seen. A field limited only by depth has none; a hole inside it is the
        blind spot (a PixelCNN's, up and to the right).
    """
    seen = torch.as_tensor(seen).bool()
    H, W = seen.shape
    before = torch.arange(H * W).reshape(H, W) < position
    if not seen.any():
        return torch.zeros_like(seen)
    rows, cols = seen.nonzero(as_tuple=True)
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    box = (i >= rows.min()) & (i <= position // W) & (j >= cols.min()) & (j <= cols.max())
    return before & box & ~seen
