"""Diagonal BiLSTM: the PixelRNN whose recurrence runs along the diagonals of the image.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016
(Section 3.2; Table 4, where a Diagonal BiLSTM of 7 layers with h = 16 reaches 79.20 nats on
binarized MNIST, the best PixelRNN).

The model is exact in raster order, ``log p(x) = sum_d log p(x_d | x_{<d})``. A 7x7 type-A
masked convolution reads the image; ``n_layers`` Diagonal BiLSTM layers follow, joined by
residual connections; two 1x1 layers (ReLU before each) give a Bernoulli logit or a ``K``-way
softmax per pixel. The layers and the head are those of :class:`~densitybench.models.pixelrnn.RowLSTM`
(one stream of ``hidden`` feature maps, ``h + layer(h)`` between layers); only the recurrence differs.

One layer, in each of two directions:

- **skew**: row ``i`` of the ``H x W`` input map is shifted right by ``i`` positions, giving an
  ``H x (W + H - 1)`` map (``n x (2n - 1)`` in the paper's square images) in which the pixels
  of one column are one diagonal ``i + j = c`` of the image;
- **input-to-state**: ``K^is``, a 1x1 convolution masked as type B, gives the four gates'
  input contributions (``4h`` maps); a 1x1 convolution does not care whether the map is skewed,
  so it runs on the image and its output is skewed;
- **state-to-state**: column by column, ``K^ss``, a ``2 x 1`` convolution of the previous
  column's hidden state in the skewed map (rows ``i - 1`` and ``i``), is added to the gates and
  the LSTM cell updates (Eq. 3): ``[o, f, i, g] = sigm/sigm/sigm/tanh(K^ss (*) h_{c-1} + K^is (*) x_c)``,
  ``c_c = f . c_{c-1} + i . g``, ``h_c = o . tanh(c_c)``. Unskewed, this is the state at pixel
  ``(i, j)`` computed from the states at ``(i - 1, j)`` (above) and ``(i, j - 1)`` (left), so it
  sees the whole quadrant above and to the left; states outside the image are zero;
- **unskew**: the ``H x W`` map is read back from the diagonals.

The right-to-left direction is the same computation, with its own ``K^is`` and ``K^ss``, on the
horizontally flipped map: its state at ``(i, j)`` sees the quadrant above and to the *right*,
which includes the pixels right of ``(i, j)`` in row ``i``, not yet generated. Its output map is
therefore shifted down by one row before it is added to the left-to-right one: pixel ``(i, j)``
receives the right-to-left state of ``(i - 1, j)``, which sees rows ``< i`` only. Together the
two directions cover every row above and the pixels to the left, the full context the paper
claims (its Figure 4), but for one pixel: the type-A first layer puts the value of pixel
``(r, c)`` in the feature maps only at positions after it, so the last pixel of a row,
``(r, W - 1)``, appears in no feature of row ``r``; the right-to-left direction, the only one that
reaches further right than the 7x7 kernel in the row above, reads rows ``< i``. As stated in the
paper, pixel ``(i, j)`` never sees ``(i - 1, W - 1)`` when ``j + 3 < W - 1``, at any depth.
``full_context`` (the default) closes that gap: the right-to-left direction of the first layer
also reads the pixel values at its own positions (a 1x1 convolution of the image into its gates),
which its shift down a row makes causal; the receptive field is then the whole raster past from
the first layer on, with no blind spot. ``full_context=False`` is the architecture exactly as the
paper states it.

The images are single-channel, so the channel masks of the paper (R, G, B) reduce to the
spatial ones: type A excludes the current pixel (first layer), type B includes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import Autoregressive
from .hparams import check_hparams
from .pixelcnn import MaskedConv2d, check_single_channel, output_head, raster_logits


def skew(x: torch.Tensor) -> torch.Tensor:
    """Shift row ``i`` right by ``i``: ``(B, C, H, W) -> (B, C, H, W + H - 1)``, zeros elsewhere.

    Pixel ``(i, j)`` lands in column ``i + j``: a column of the result is a diagonal of ``x``.
    """
    B, C, H, W = x.shape
    # rows padded to W + H, laid end to end and cut into rows of W + H - 1: each row starts
    # one element later than the previous one
    flat = F.pad(x, (0, H)).reshape(B, C, H * (W + H))[..., : H * (W + H - 1)]
    return flat.reshape(B, C, H, W + H - 1)


def unskew(s: torch.Tensor, width: int) -> torch.Tensor:
    """The inverse of :func:`skew`: ``(B, C, H, width + H - 1) -> (B, C, H, width)``."""
    B, C, H, L = s.shape
    if L != width + H - 1:
        raise ValueError(f"a skewed map of {H} rows and width {width} has {width + H - 1} columns, not {L}")
    flat = F.pad(s.reshape(B, C, H * L), (0, H)).reshape(B, C, H, L + 1)
    return flat[..., :width]


class DiagonalBiLSTMLayer(nn.Module):
    """One Diagonal BiLSTM layer: ``(B, C, H, W) -> (B, hidden, H, W)``.

    Both directions run in one loop over the skewed columns: their parameters are separate
    (the input-to-state convolution's first ``4 * hidden`` outputs and the first group of the
    state-to-state convolution belong to the left-to-right direction, the rest to the
    right-to-left one); their states are stacked along a leading axis of size 2 and each step
    is one matrix product per direction.

    Args:
        in_channels: feature maps of the input.
        hidden: ``h``, units per LSTM position in each direction.
        pixel_channels: when positive, the right-to-left direction also reads a map of that many
            channels (the image) at its own positions, through a 1x1 convolution: the pixel at
            ``(i, j)`` itself, which its output, shifted down a row, may see.
    """

    def __init__(self, in_channels: int, hidden: int, pixel_channels: int = 0):
        super().__init__()
        self.hidden = hidden
        # K^is of both directions: 1x1, type B (the current pixel's own features)
        self.input_to_state = MaskedConv2d(in_channels, 2 * 4 * hidden, 1, "B")
        if pixel_channels:
            self.pixels_to_state = nn.Conv2d(pixel_channels, 4 * hidden, 1, bias=False)
        # K^ss of both directions: a 2x1 kernel over rows i-1 and i of the previous skewed column
        self.state_to_state = nn.Conv1d(2 * hidden, 2 * 4 * hidden, 2, groups=2)

    def _state_to_state_matrix(self) -> torch.Tensor:
        """``K^ss`` as one matrix per direction, ``(2, 4h, 2h)``, acting on the previous column's
        states at rows ``i - 1`` and ``i`` stacked along the channels."""
        hd = self.hidden
        w = self.state_to_state.weight.reshape(2, 4 * hd, hd, 2)  # (direction, gate unit, unit, row)
        return w.transpose(2, 3).reshape(2, 4 * hd, 2 * hd)

    def forward(self, x: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W) -> (B, hidden, H, W)``; ``pixels`` ``(B, pixel_channels, H, W)`` when the
        layer reads them."""
        B, _, H, W = x.shape
        hd = self.hidden
        gates_in = self.input_to_state(x)  # (B, 8h, H, W)
        left, right = gates_in[:, : 4 * hd], gates_in[:, 4 * hd :]
        if hasattr(self, "pixels_to_state"):
            right = right + self.pixels_to_state(pixels)
        # the right-to-left direction works on the flipped image
        gates_in = torch.cat([left, right.flip(-1)], 1)
        gates_in = gates_in + self.state_to_state.bias[:, None, None]  # K^ss's bias, added once
        L = W + H - 1
        # one column of the skewed map per step, laid out (direction, 4h, B, H)
        gates_in = skew(gates_in).reshape(B, 2, 4 * hd, H, L).permute(4, 1, 2, 0, 3).contiguous()
        # 1 where a skewed position holds a pixel of the image, per column: (L, H)
        inside = skew(x.new_ones(1, 1, H, W))[0, 0].t().contiguous()
        k_ss = self._state_to_state_matrix()
        h = x.new_zeros(2, hd, B, H)
        c = x.new_zeros(2, hd, B, H)
        columns = []
        # unbind, not indexing: its backward stacks the columns' gradients, where indexing
        # would fill a zero tensor of the whole map for every column
        for gates_col, inside_col in zip(gates_in.unbind(0), inside.unbind(0)):
            # the previous column's states at rows i-1 (a zero row above the first) and i
            previous = torch.cat([F.pad(h, (1, 0))[..., :H], h], 1).reshape(2, 2 * hd, B * H)
            gates = (gates_col + torch.bmm(k_ss, previous).reshape(2, 4 * hd, B, H)).reshape(2, 4, hd, B, H)
            o, f, i = torch.sigmoid(gates[:, :3]).unbind(1)
            c = (f * c + i * torch.tanh(gates[:, 3])) * inside_col
            h = o * torch.tanh(c)  # zero outside the image, like the initial state
            columns.append(h)
        out = torch.stack(columns).permute(3, 1, 2, 4, 0).reshape(B, 2 * hd, H, L)
        out = unskew(out, W)  # (B, 2h, H, W)
        left, right = out[:, :hd], out[:, hd:].flip(-1)
        # the right-to-left state at (i, j) has seen row i to the right of j: shift it down a row
        right = F.pad(right, (0, 0, 1, 0))[:, :, :H]
        return left + right


def _check_boolean(value, n_dims):
    return None if isinstance(value, bool) else f"full_context must be true or false, got {value!r}"


class DiagonalBiLSTM(Autoregressive):
    """The Diagonal BiLSTM PixelRNN over single-channel images.

    Args:
        data_shape: ``(1, H, W)``.
        hidden: ``h``, feature maps of the residual stream and units per LSTM position (in
            each direction).
        n_layers: Diagonal BiLSTM layers.
        output_channels: width of the 1x1 layer before the output.
        n_levels: 2 for Bernoulli outputs, ``K`` for a ``K``-way softmax.
        full_context: the right-to-left direction of the first layer also reads the pixels at
            its positions, which closes the paper's one-pixel gap (see the module's docstring);
            False is the paper's architecture as stated.
    """

    name = "diagonal_bilstm"
    width_hparams = ("hidden",)
    hparam_checks = {"full_context": _check_boolean}

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"hidden": 4, "n_layers": 1, "output_channels": 4}

    def __init__(self, data_shape, hidden: int = 32, n_layers: int = 2, output_channels: int = 64,
                 n_levels: int = 2, full_context: bool = True):
        check_hparams(DiagonalBiLSTM, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        check_single_channel(self)
        self.input_conv = MaskedConv2d(1, hidden, 7, "A")
        self.layers = nn.ModuleList(DiagonalBiLSTMLayer(hidden, hidden, int(full_context and k == 0))
                                    for k in range(n_layers))
        self.head = output_head(hidden, output_channels, self.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional.

        Args:
            x: ``(B, 1, H, W)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, K, D)`` softmax logits.
        """
        pixels = self.scaled(x)
        h = self.input_conv(pixels)
        for layer in self.layers:
            h = h + layer(h, pixels)  # residual connection between layers
        return raster_logits(self.head(h))
