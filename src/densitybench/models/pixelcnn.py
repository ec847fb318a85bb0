"""PixelCNN: masked convolutions as an autoregressive model of images.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016
(Section 3.5 and Table 4, where the PixelCNN reaches 81.30 nats on binarized MNIST).

Each conditional ``p(x_{i,j} | x_{<(i,j)})`` in raster order is read off one stack of
convolutions whose kernels are masked so that nothing at or after pixel ``(i, j)`` reaches
its output. The first layer uses a mask of type ``A`` (the centre pixel excluded), later
ones type ``B`` (the centre included: it then only carries context from before it).
Layers: a 7x7 type-A convolution, ``n_blocks`` residual blocks (1x1 down to h/2 channels,
3x3 type B, 1x1 up to h, as in the paper's Figure 5), two 1x1 ReLU layers and the output:
a Bernoulli logit or a ``K``-way softmax per pixel.

Stacked masked 3x3 convolutions leave a *blind spot*: pixels above and to the right of
the current one that the receptive field never covers (see :func:`dependency_map`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import Autoregressive
from .hparams import check_hparams


def check_single_channel(model) -> None:
    """Refuse data other than single-channel images ``(1, H, W)``: the masks of the image
    models here order the pixels of one channel (the papers' R, G, B masks are not implemented)."""
    if len(model.data_shape) != 3 or model.data_shape[0] != 1:
        raise ValueError(f"{type(model).__name__} models single-channel images (1, H, W), not {model.data_shape}")


def output_head(channels: int, output_channels: int, n_out: int) -> nn.Sequential:
    """The papers' output layers: ReLU, a 1x1 convolution to ``output_channels``, ReLU, a 1x1
    convolution to ``n_out`` logits per pixel (a pixel's own features only, so causality is kept)."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(channels, output_channels, 1),
        nn.ReLU(), nn.Conv2d(output_channels, n_out, 1),
    )


def raster_logits(out: torch.Tensor) -> torch.Tensor:
    """``(B, n_out, H, W)`` maps to the conditionals' logits in raster order: ``(B, H*W)`` for
    Bernoulli outputs (``n_out = 1``), ``(B, K, H*W)`` for a ``K``-way softmax."""
    out = out.reshape(out.shape[0], out.shape[1], -1)
    return out[:, 0] if out.shape[1] == 1 else out


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel sees only pixels before the centre in raster order.

    Args:
        mask_type: ``"A"`` excludes the centre (first layer), ``"B"`` includes it.
        kernel_size: an odd int or an ``(kh, kw)`` pair of odd ints.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask_type: str, bias: bool = True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, not {(kh, kw)}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        mask = torch.ones(kh, kw)
        mask[kh // 2, kw // 2 + (mask_type == "B"):] = 0  # right of the centre (and it, for A)
        mask[kh // 2 + 1:] = 0  # rows below
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None].expand_as(self.weight).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3_B(relu(conv1x1(relu(x))))))`` with h -> h/2 -> h/2 -> h channels."""

    def __init__(self, channels: int):
        super().__init__()
        half = max(channels // 2, 1)
        self.net = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, half, 1),
            nn.ReLU(), MaskedConv2d(half, half, 3, "B"),
            nn.ReLU(), nn.Conv2d(half, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PixelCNN(Autoregressive):
    """PixelCNN over single-channel images.

    Args:
        data_shape: ``(1, H, W)``.
        n_channels: ``h``, feature maps of the residual stream.
        n_blocks: residual blocks after the first layer.
        output_channels: width of the two 1x1 layers before the output.
        n_levels: 2 for Bernoulli outputs, ``K`` (up to 256) for a ``K``-way softmax.
    """

    name = "pixelcnn"
    width_hparams = ("n_channels",)

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"n_channels": 4, "n_blocks": 1, "output_channels": 4}

    def __init__(self, data_shape, n_channels: int = 64, n_blocks: int = 7, output_channels: int = 64,
                 n_levels: int = 2):
        check_hparams(PixelCNN, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, n_levels)
        check_single_channel(self)
        self.input_conv = MaskedConv2d(1, n_channels, 7, "A")
        self.blocks = nn.Sequential(*[ResidualBlock(n_channels) for _ in range(n_blocks)])
        self.head = output_head(n_channels, output_channels, self.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every conditional.

        Args:
            x: ``(B, 1, H, W)``.
        Returns:
            ``(B, D)`` Bernoulli logits, or ``(B, K, D)`` softmax logits.
        """
        return raster_logits(self.head(self.blocks(self.input_conv(self.scaled(x)))))
