"""scikit-learn's 8x8 handwritten digits, embedded: no file to fetch, verified by checksum.

``digits`` keeps the 17 grey levels (0..16); ``digits_binary`` thresholds them at
:data:`DIGITS_THRESHOLD`. Both share one fixed split of the 1,797 images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .core import ChecksumError, ImageData, array_sha256
from .registry import Source, register

__all__ = [
    "SOURCE",
    "DigitsSource",
    "EMBEDDED",
    "load_digits",
    "DIGITS_SHA256",
    "DIGITS_THRESHOLD",
    "DIGITS_SPLIT_SEED",
    "DIGITS_N_VALID",
    "DIGITS_N_TEST",
]

#: SHA-256 of scikit-learn's bundled 8x8 digits, ``load_digits().images`` as uint8.
DIGITS_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
#: Digits are binarized as ``level >= DIGITS_THRESHOLD`` (levels 0..16).
DIGITS_THRESHOLD = 8
#: Seed and sizes of the digits split (the rest of the 1797 images is train).
DIGITS_SPLIT_SEED = 0
DIGITS_N_VALID = 300
DIGITS_N_TEST = 300
#: Datasets made in memory, without files.
EMBEDDED = ("digits", "digits_binary")
_N_IMAGES = 1797


def _split_text(n_train: int) -> str:
    return (
        f"a fixed permutation (numpy default_rng({DIGITS_SPLIT_SEED})) of the 1,797 images: "
        f"{n_train} train / {DIGITS_N_VALID} valid / {DIGITS_N_TEST} test"
    )


def _description(binary: bool, n_train: int = _N_IMAGES - DIGITS_N_VALID - DIGITS_N_TEST) -> str:
    split = _split_text(n_train)
    return (
        f"scikit-learn's 8x8 handwritten digits, binarized as level >= {DIGITS_THRESHOLD} of 0..16; {split}."
        if binary
        else f"scikit-learn's 8x8 handwritten digits with their 17 grey levels (0..16); {split}."
    )


def load_digits(binary: bool) -> ImageData:
    """scikit-learn's 8x8 digits, verified by checksum, with the fixed split; binarized as
    ``level >= DIGITS_THRESHOLD`` when ``binary``."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.ascontiguousarray(bunch.images.astype(np.uint8))
    targets = torch.from_numpy(bunch.target.astype(np.int64))
    got = array_sha256(images)
    if got != DIGITS_SHA256:
        raise ChecksumError(
            f"digits: scikit-learn's bundled 8x8 digits have SHA-256 {got}, expected {DIGITS_SHA256}"
        )
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
    test_idx = perm[:DIGITS_N_TEST]
    valid_idx = perm[DIGITS_N_TEST : DIGITS_N_TEST + DIGITS_N_VALID]
    train_idx = perm[DIGITS_N_TEST + DIGITS_N_VALID :]
    if binary:
        images = (images >= DIGITS_THRESHOLD).astype(np.uint8)
    x = torch.from_numpy(images).reshape(-1, 1, 8, 8)
    desc = _description(binary, len(train_idx))
    return ImageData(
        name="digits_binary" if binary else "digits",
        kind="binary" if binary else "levels",
        n_levels=2 if binary else 17,
        image_shape=(1, 8, 8),
        train=x[train_idx].clone(),
        valid=x[valid_idx].clone(),
        test=x[test_idx].clone(),
        description=desc,
        labels={"train": targets[train_idx], "valid": targets[valid_idx], "test": targets[test_idx]},
    )


class DigitsSource(Source):
    """The embedded digits: made in memory from scikit-learn, nothing to fetch."""

    title = "scikit-learn's embedded 8x8 digits"

    def names(self) -> list[str]:
        return list(EMBEDDED)

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        return load_digits(binary=name == "digits_binary")

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        return paths.data_dir(data_dir)

    def description(self, name: str) -> str:
        return _description(binary=name == "digits_binary")


SOURCE = register(DigitsSource())
