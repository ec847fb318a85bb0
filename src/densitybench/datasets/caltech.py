"""Caltech-101 Silhouettes at 28x28 (Marlin et al. 2010), Marlin's split1 ``.mat`` file."""

from __future__ import annotations

import numpy as np

from .files import FileSource
from .registry import register
from .verify import DatasetSpec, FileSpec

__all__ = ["SOURCE"]

_CALTECH_FILE = "caltech101_silhouettes_28_split1.mat"
#: SHA-256 of the uint8 arrays as stored in the .mat file (rows in MATLAB column-major
#: order, 1 = background; labels 1..101 of shape (N, 1)), before any transposition or flip.
_CALTECH_SHA256 = {
    "train_data": "e16c69228270895ecb557b51da4924fbb288b477fd5923c533614c3159aaccc3",
    "val_data": "67a4e3a2ee22d8dce7242c3227f1bd643554efcbdb4d6cce6249832f7d623754",
    "test_data": "4abecf7121e7eeb9c944d555d59efc350ef75f979951175322ba8a2842e7fe0f",
    "train_labels": "ceea4e4868a5be4e79438fa7a7e3379fa03bb0aebc9753af708a9aeb3c35d44a",
    "val_labels": "facd8da6a7aeeb9cf52a9d00bd6c384cdcf8dc416ed8f812acab132f092b4846",
    "test_labels": "ef8b3a783543c23ebbf7b0a4bd128f753de31b31a4decfcdf4a066ef850f5489",
}


def _read_caltech(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    """Rows of the .mat are 28x28 images in column-major order with 1 = background: they
    are transposed to upright images and flipped to 1 = object; labels 1..101 become 0..100."""
    m = arrays[_CALTECH_FILE]

    def images(key):
        return 1 - m[key].reshape(-1, 28, 28).transpose(0, 2, 1)

    def labels(key):
        return m[key].reshape(-1).astype(np.int64) - 1

    keys = {"train": "train", "valid": "val", "test": "test"}
    return (
        images("train_data"),
        images("val_data"),
        images("test_data"),
        {s: labels(f"{k}_labels") for s, k in keys.items()},
    )


SOURCE = register(FileSource([
    DatasetSpec(
        name="caltech101_silhouettes",
        folder="caltech101_silhouettes",
        kind="binary",
        n_levels=2,
        image_shape=(1, 28, 28),
        layouts=(
            (
                FileSpec(
                    _CALTECH_FILE,
                    ("https://people.cs.umass.edu/~marlin/data/" + _CALTECH_FILE,),
                    ("sha256-arrays", dict(_CALTECH_SHA256)),
                    "mat",
                ),
            ),
        ),
        reader=_read_caltech,
        description=(
            "Caltech-101 Silhouettes at 28x28 (Marlin et al. 2010): binary object silhouettes of "
            "101 classes, Marlin's split1 of 4,100 train / 2,264 valid / 2,307 test images, from "
            "caltech101_silhouettes_28_split1.mat. The file stores each image as a row in MATLAB "
            "column-major order with 1 = background and 0 = object; they are loaded transposed "
            "(upright) and flipped so that 1 = object (a white shape on black, like MNIST). "
            "Labels 1..101 are returned as 0..100."
        ),
        citation="marlin2010inductive",
    ),
], title="Caltech-101 Silhouettes"))
