"""The fixed binarized MNIST of Larochelle & Murray (2011): one stochastic binarization,
drawn once and shared by the NADE, MADE and PixelRNN papers."""

from __future__ import annotations

import numpy as np

from .files import FileSource
from .registry import register
from .verify import DatasetSpec, FileSpec

__all__ = ["SOURCE", "BINARIZED_SHA256"]

_LAROCHELLE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

#: SHA-256 of each split's uint8 array.
BINARIZED_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}


def _read_binarized(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    if "binarized_mnist.npz" in arrays:
        z = arrays["binarized_mnist.npz"]
        return z["train"], z["valid"], z["test"]
    return tuple(arrays[f"binarized_mnist_{s}.amat"] for s in ("train", "valid", "test"))


def _amat_layout(files: tuple[str, ...]) -> tuple[FileSpec, ...]:
    """Larochelle's three .amat files, each verified by its split's array checksum."""
    return tuple(
        FileSpec(f, (_LAROCHELLE + f,), ("sha256-arrays", {"split": BINARIZED_SHA256[s]}))
        for f, s in zip(files, ("train", "valid", "test"))
    )


SOURCE = register(FileSource([
    DatasetSpec(
        name="binarized_mnist",
        folder="binarized_mnist",
        kind="binary",
        n_levels=2,
        image_shape=(1, 28, 28),
        layouts=(
            (FileSpec("binarized_mnist.npz", (), ("sha256-arrays", dict(BINARIZED_SHA256))),),
            _amat_layout(tuple(f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test"))),
        ),
        reader=_read_binarized,
        description=(
            "MNIST with the fixed stochastic binarization of Larochelle & Murray (2011), "
            "50,000 train / 10,000 valid / 10,000 test images of 28x28 binary pixels."
        ),
        citation="larochelle2011nade",
    )
], title="the fixed binarized MNIST"))
