"""MNIST-like datasets in idx files: 8-bit MNIST and Fashion-MNIST, split 50,000 / 10,000 / 10,000."""

from __future__ import annotations

import numpy as np

from .files import FileSource
from .registry import register
from .verify import DatasetSpec, FileSpec

__all__ = ["SOURCE", "MNIST_MD5", "FASHION_MD5"]

_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

#: MD5 of the uncompressed content of each file.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


def _idx_layout(md5: dict[str, str], urls: tuple[str, ...]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(n, tuple(u + n for u in urls), ("md5-uncompressed", h)) for n, h in md5.items())


def _read_idx_splits(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    """train = first 50k of the training file, valid = last 10k, test = the test file;
    the labels split the same way."""
    train_full = arrays["train-images-idx3-ubyte.gz"]
    test = arrays["t10k-images-idx3-ubyte.gz"]
    y_full, y_test = arrays["train-labels-idx1-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]
    labels = {"train": y_full[:50000], "valid": y_full[50000:], "test": y_test}
    return train_full[:50000], train_full[50000:], test, labels


SOURCE = register(FileSource([
    DatasetSpec(
        name="mnist",
        folder="mnist",
        kind="levels",
        n_levels=256,
        image_shape=(1, 28, 28),
        layouts=(_idx_layout(MNIST_MD5, _MNIST_URLS),),
        reader=_read_idx_splits,
        description=(
            "8-bit greyscale MNIST: train = the first 50,000 images of the training file, "
            "valid = its last 10,000, test = the 10,000 images of the test file."
        ),
        citation="lecun1998mnist",
    ),
    DatasetSpec(
        name="fashion_mnist",
        folder="fashion_mnist",
        kind="levels",
        n_levels=256,
        image_shape=(1, 28, 28),
        layouts=(_idx_layout(FASHION_MD5, _FASHION_URLS),),
        reader=_read_idx_splits,
        description=(
            "8-bit greyscale Fashion-MNIST, split like MNIST: first 50,000 training images / "
            "last 10,000 / the 10,000 test images."
        ),
        citation="xiao2017fashion",
    ),
], title="MNIST-like idx files"))
