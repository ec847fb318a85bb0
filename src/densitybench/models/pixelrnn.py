"""PixelRNN: recurrent autoregressive models of images.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016.

Two models, both exact in raster order ``log p(x) = sum_d log p(x_d | x_{<d})``:

- :class:`PixelLSTM`: an LSTM run over the image flattened to a sequence of ``D`` pixels,
  reading ``x_{d-1}`` at step ``d`` (a zero start token at step 1) and predicting ``x_d``;
  the model of the study's seed assignment (784 categorical outputs over 10 levels).
- :class:`RowLSTM` (Section 3.1 of the paper): a 7x7 type-A masked convolution, then
  LSTM layers that process the image row by row. Each layer's input-to-state component is
  a ``1 x k`` convolution masked to the current pixel and those to its left (type B), computed
  for the whole image at once; its state-to-state component is a ``1 x k`` convolution of the
  previous row's hidden state. The receptive field is a triangle above the pixel.
  Residual connections join the layers; two 1x1 layers give the outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from .autoregressive import Autoregressive, draw
from .hparams import check_hparams, is_integer
from .pixelcnn import MaskedConv2d, check_single_channel, output_head, raster_logits


class PixelLSTM(Autoregressive):
    """An LSTM over the raster sequence of pixels.

    Args:
        data_shape: shape of one example; flattened in raster (C) order.
        hidden_size: LSTM units per layer.
        n_layers: stacked LSTM layers.
        n_levels: 2 for Bernoulli outputs, ``K`` for a ``K``-way softmax.
    """

    name = "pixel_lstm"
    width_hparams = ("hidden_size",)

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"hidden_size": 4}

    def __init__(self, data_shape, hidden_size: int = 128, n_layers: int = 1, n_levels: int = 2):
        check_hparams(PixelLSTM, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        self.lstm = nn.LSTM(1, hidden_size, n_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, self.n_out)

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.output(h)  # (B, T, n_out)
        return logits[..., 0] if self.n_out == 1 else logits.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional: ``(B, D)`` or ``(B, K, D)``."""
        v = self.scaled(x).reshape(x.shape[0], -1, 1)
        shifted = torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], 1)  # step d reads x_{d-1}
        h, _ = self.lstm(shifted)
        return self._readout(h)

    def _complete(self, x: torch.Tensor, start: int, generator: torch.Generator | None) -> torch.Tensor:
        """Ancestral sampling carrying the LSTM state: one LSTM step per pixel."""
        flat = x.reshape(x.shape[0], -1)
        v = self.scaled(flat)[:, :, None]
        inputs = torch.cat([torch.zeros_like(v[:, :1]), v[:, :start]], 1)  # steps 1..start+1
        h, state = self.lstm(inputs)
        for d in range(start, self.n_dims):
            logits = self._readout(h[:, -1:])
            flat[:, d] = draw(logits[:, 0] if self.n_out == 1 else logits[:, :, 0], generator)
            if d + 1 < self.n_dims:
                h, state = self.lstm(self.scaled(flat[:, d : d + 1])[:, :, None], state)
        return flat.reshape(x.shape)


def _check_kernel_size(value, n_dims):
    if not is_integer(value) or value < 1 or value % 2 == 0:
        return f"kernel_size must be a positive odd integer, got {value!r}"
    return None


class RowLSTMLayer(nn.Module):
    """One Row LSTM layer: ``(B, C, H, W) -> (B, hidden, H, W)``.

    Gates at row ``i``: ``K_is (*) x_i + K_ss (*) h_{i-1}`` with ``K_is`` a masked ``1 x k``
    convolution (type B) over the row and ``K_ss`` a ``1 x k`` convolution of the previous
    row's hidden state; then the usual LSTM cell update.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, kernel_size), "B")
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W), all rows at once
        h = x.new_zeros(B, self.hidden, W)
        c = x.new_zeros(B, self.hidden, W)
        rows = []
        for i in range(H):
            o, f, g_in, g = (gates_in[:, :, i] + self.state_to_state(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(g_in) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(h)
        return torch.stack(rows, 2)


class RowLSTM(Autoregressive):
    """The Row LSTM PixelRNN over single-channel images.

    Args:
        data_shape: ``(1, H, W)``.
        hidden: feature maps of the residual stream and units per LSTM position.
        n_layers: Row LSTM layers.
        kernel_size: width ``k`` of the input-to-state and state-to-state convolutions.
        output_channels: width of the 1x1 layer before the output.
        n_levels: 2 for Bernoulli outputs, ``K`` for a ``K``-way softmax.
    """

    name = "row_lstm"
    width_hparams = ("hidden",)
    hparam_checks = {"kernel_size": _check_kernel_size}

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"hidden": 4, "n_layers": 1, "output_channels": 4}

    def __init__(self, data_shape, hidden: int = 32, n_layers: int = 2, kernel_size: int = 3,
                 output_channels: int = 64, n_levels: int = 2):
        check_hparams(RowLSTM, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        check_single_channel(self)
        self.input_conv = MaskedConv2d(1, hidden, 7, "A")
        self.layers = nn.ModuleList(RowLSTMLayer(hidden, hidden, kernel_size) for _ in range(n_layers))
        self.head = output_head(hidden, output_channels, self.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional: ``(B, D)`` or ``(B, K, D)``."""
        h = self.input_conv(self.scaled(x))
        for layer in self.layers:
            h = h + layer(h)  # residual connection between layers
        return raster_logits(self.head(h))
