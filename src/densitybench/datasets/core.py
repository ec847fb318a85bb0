"""What every dataset is made of: :class:`ImageData`, the errors, dequantization and checksums.

Every dataset is returned as an :class:`ImageData` whose splits are ``uint8`` tensors of
shape ``(N, C, H, W)`` holding integer pixel levels ``0 .. n_levels - 1`` (``n_levels = 2``
for binary data). Models take floats: :meth:`ImageData.split` converts, and
:func:`dequantize` turns integer levels into a continuous variable on ``[0, 1]^D``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "ImageData",
    "DataError",
    "DataMissingError",
    "ChecksumError",
    "ImageFolderError",
    "SPLITS",
    "DEQUANTIZATION_SEED",
    "dequantize",
    "bits_per_dim",
    "array_sha256",
    "binarize_stochastic",
    "BINARIZED_SUFFIX",
]

#: The three splits of every dataset, in this order.
SPLITS = ("train", "valid", "test")


class DataError(Exception):
    """Base class of the data layer's errors."""


class DataMissingError(DataError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class ChecksumError(DataError, ValueError):
    """A dataset file is present but its content is not the expected one."""


class ImageFolderError(DataError, ValueError):
    """An image folder given to :func:`~densitybench.datasets.image_folder.load_image_folder`
    cannot be made into a dataset."""


@dataclass
class ImageData:
    """A dataset with its fixed train/valid/test split.

    Attributes:
        name: the name :func:`densitybench.datasets.load` loads this very data by again.
        kind: ``"binary"`` (values {0, 1}) or ``"levels"`` (integers ``0 .. n_levels-1``).
        n_levels: number of pixel levels (2 for binary, 256 for 8-bit, 17 for digits).
        image_shape: ``(C, H, W)``.
        train, valid, test: ``uint8`` tensors ``(N, C, H, W)``.
        description: what the data are and how the split was made.
        labels: class labels of each split (``int64`` tensors ``(N,)``) where the source has
            them, else None (the fixed binarized MNIST is shuffled and unlabelled).
    """

    name: str
    kind: str
    n_levels: int
    image_shape: tuple[int, int, int]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    description: str = ""
    files: dict = field(default_factory=dict)
    labels: dict[str, torch.Tensor] | None = None

    @property
    def n_dims(self) -> int:
        return int(np.prod(self.image_shape))

    def split(self, which: str) -> torch.Tensor:
        """The split ``which`` as ``float32`` integer levels, shape ``(N, C, H, W)``."""
        if which not in SPLITS:
            raise ValueError(f"split must be 'train', 'valid' or 'test', not {which!r}")
        return getattr(self, which).float()

    def sizes(self) -> dict[str, int]:
        return {s: int(getattr(self, s).shape[0]) for s in SPLITS}


#: seed of the one dequantization draw used for every validation and test number
DEQUANTIZATION_SEED = 1234


def dequantize(x: torch.Tensor, n_levels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization ``y = (x + u) / n_levels`` with ``u ~ U(0, 1)^D``.

    For 8-bit data (``n_levels = 256``) this is the NICE/RealNVP protocol. A density
    ``p(y)`` on ``[0, 1]^D`` bounds the discrete model it induces:
    ``log P(x) >= E_u[log p(y)] - D log(n_levels)`` (Jensen, and the Jacobian of the
    scaling by ``1 / n_levels`` in each of the D dimensions).
    """
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32, device=x.device)
    return (x.float() + u) / n_levels


def bits_per_dim(nll_nats: float, n_dims: int) -> float:
    """Bits per dimension of a discrete NLL given in nats per example."""
    return nll_nats / (n_dims * math.log(2.0))


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's ``uint8`` C-order bytes (the content checksum of a split)."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


#: ``binarize_stochastic(ds, k)`` is named ``ds.name + BINARIZED_SUFFIX.format(k)``.
BINARIZED_SUFFIX = "_binarized_seed{}"


def binarize_stochastic(ds: ImageData, seed: int = 0) -> ImageData:
    """Binary images drawn as ``x ~ Bernoulli(level / (K - 1))`` once, with ``seed`` (the
    process behind the fixed binarized MNIST, here keeping the labels of ``ds``).

    The result is named ``<ds.name>_binarized_seed<seed>``, a name that
    :func:`densitybench.datasets.load` reads back as this very draw.
    """
    if ds.kind != "levels":
        raise ValueError(f"{ds.name} is already binary")
    g = torch.Generator().manual_seed(seed)

    def draw(x):
        return torch.bernoulli(x.float() / (ds.n_levels - 1), generator=g).to(torch.uint8)

    return ImageData(
        name=ds.name + BINARIZED_SUFFIX.format(seed), kind="binary", n_levels=2, image_shape=ds.image_shape,
        train=draw(ds.train), valid=draw(ds.valid), test=draw(ds.test),
        description=f"{ds.description} Binarized once as x ~ Bernoulli(level / {ds.n_levels - 1}) with seed {seed}.",
        files=dict(ds.files), labels=ds.labels,
    )
