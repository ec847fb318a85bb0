"""Gated PixelCNN: two stacks of gated convolutions, without the PixelCNN's blind spot.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, "Conditional Image
Generation with PixelCNN Decoders", NeurIPS 2016 (Sections 2.1-2.2 and Figure 2).

The model is exact in raster order, like :class:`~densitybench.models.pixelcnn.PixelCNN`, whose
layout it keeps (a 7x7 first layer, ``n_blocks`` 3x3 layers with residual connections, two 1x1
ReLU layers and the output), with two changes:

- **Gated activations**: every layer computes ``2p`` maps and combines them as
  ``y = tanh(W_f (*) x) . sigm(W_g (*) x)`` (Eq. 2) instead of a ReLU.
- **Two stacks**: a masked ``n x n`` kernel leaves a blind spot, the pixels above and to the
  right of the current one that no stack of such kernels reaches. The *vertical stack*
  convolves with ``(n // 2 + 1) x n`` kernels padded so that its output at ``(i, j)`` sees rows
  ``i - n // 2 .. i`` only, the full width of the kernel; stacked, it covers every row above
  with no hole. The *horizontal stack* convolves over the current row with ``1 x (n // 2 + 1)``
  kernels, the pixels left of ``(i, j)`` (type A, first layer) and ``(i, j)`` itself with them
  (type B, later layers, whose features at ``(i, j)`` carry only the past). The vertical stack
  feeds the horizontal one, not the other way round: its pre-activations (``2p`` maps) are
  shifted down one row, so that row ``i`` receives what row ``i - 1`` saw (rows ``< i``), and added
  to the horizontal stack's through a 1x1 convolution. The vertical stack's own output at
  ``(i, j)`` sees row ``i`` (to the right of ``j`` too) and reaches the output only through that
  shifted link. The horizontal stack's gated output goes through a 1x1 convolution and, after
  the first layer, a residual connection.

The receptive field of pixel ``(i, j)`` after the 7x7 layer and ``n_blocks`` 3x3 layers is every
pixel before it in raster order within ``3 + n_blocks + 1`` rows above, ``3 + n_blocks`` columns
either side in those rows and ``3 + n_blocks`` to the left in its own row: the raster past,
cut to that window, with no blind spot (:func:`~densitybench.models.autoregressive.dependency_map`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import Autoregressive
from .hparams import check_hparams
from .pixelcnn import check_single_channel, output_head, raster_logits


def gate(pre: torch.Tensor) -> torch.Tensor:
    """``tanh(a) . sigm(b)`` of the two halves ``[a, b]`` of the channels: ``(B, 2p, ...) -> (B, p, ...)``."""
    a, b = pre.chunk(2, 1)
    return torch.tanh(a) * torch.sigmoid(b)


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of the result is row ``i - 1`` of ``x`` (zeros in the first row)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, : x.shape[2]]


class GatedLayer(nn.Module):
    """One gated layer of both stacks: ``(v, h) -> (v', h')``, each ``(B, channels, H, W)``.

    Args:
        in_channels: feature maps of the inputs ``v`` and ``h``.
        channels: ``p``, feature maps of the outputs.
        kernel_size: ``n``, odd.
        mask_type: ``"A"``, the first layer (the horizontal stack excludes the current pixel,
            no residual connection), or ``"B"``.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, mask_type: str):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, not {kernel_size}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
        self.half = kernel_size // 2
        self.mask_type = mask_type
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        mask = torch.ones_like(self.horizontal.weight)
        if mask_type == "A":
            mask[..., -1] = 0  # the kernel's last column is the current pixel
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.half
        v_pre = self.vertical(F.pad(v, (n, n, n, 0)))  # (i, j) sees rows i-n..i, columns j-n..j+n
        h_pre = F.conv2d(F.pad(h, (n, 0, 0, 0)), self.horizontal.weight * self.mask, self.horizontal.bias)
        h_pre = h_pre + self.vertical_to_horizontal(down_shift(v_pre))  # rows above only
        h_out = self.horizontal_out(gate(h_pre))
        if self.mask_type == "B":
            h_out = h + h_out  # residual connection of the horizontal stack
        return gate(v_pre), h_out


class GatedPixelCNN(Autoregressive):
    """Gated PixelCNN over single-channel images.

    Args:
        data_shape: ``(1, H, W)``.
        n_channels: ``p``, feature maps of both stacks.
        n_blocks: gated 3x3 layers after the first (7x7) one.
        output_channels: width of the 1x1 layer before the output.
        n_levels: 2 for Bernoulli outputs, ``K`` (up to 256) for a ``K``-way softmax.
    """

    name = "gated_pixelcnn"
    width_hparams = ("n_channels",)

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"n_channels": 4, "n_blocks": 1, "output_channels": 4}

    def __init__(self, data_shape, n_channels: int = 64, n_blocks: int = 7, output_channels: int = 64,
                 n_levels: int = 2):
        check_hparams(GatedPixelCNN, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        check_single_channel(self)
        self.layers = nn.ModuleList(
            [GatedLayer(1, n_channels, 7, "A")] + [GatedLayer(n_channels, n_channels, 3, "B") for _ in range(n_blocks)]
        )
        self.head = output_head(n_channels, output_channels, self.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional.

        Args:
            x: ``(B, 1, H, W)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, K, D)`` softmax logits.
        """
        v = h = self.scaled(x)
        for layer in self.layers:
            v, h = layer(v, h)
        return raster_logits(self.head(h))
