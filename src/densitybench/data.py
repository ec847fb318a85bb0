"""Datasets, under the names the notebooks and the rest of the library use.

The data layer lives in :mod:`densitybench.datasets` (one module per source, the registry,
readers, verification, fetching); this module re-exports its public API: :func:`load`,
:func:`fetch`, :func:`check`, :func:`names`, :class:`ImageData`, :func:`dequantize`, ...

Every dataset is returned as an :class:`ImageData` whose splits are ``uint8`` tensors of
shape ``(N, C, H, W)`` holding integer pixel levels ``0 .. n_levels - 1`` (``n_levels = 2``
for binary data). Models take floats: :meth:`ImageData.split` converts, and
:func:`dequantize` turns integer levels into a continuous variable on ``[0, 1]^D``.

Files are looked for in ``<data_dir>/<dataset folder>/``; the data directory is an
argument, else ``$DENSITYBENCH_DATA``, else ``<repo>/data`` (:func:`densitybench.paths.data_dir`).
Content is verified on every load. Nothing is downloaded implicitly:
``densitybench data fetch NAME`` does that, and it never overwrites a file.
"""

from __future__ import annotations

from .datasets import *  # noqa: F401,F403  (the package's public API)
from .datasets.atari import ATARI
from .datasets.digits import (
    DIGITS_N_TEST,
    DIGITS_N_VALID,
    DIGITS_SHA256,
    DIGITS_SPLIT_SEED,
    DIGITS_THRESHOLD,
    EMBEDDED,
)
from .datasets.image_folder import IMAGE_EXTENSIONS, IMAGE_FOLDER_OPTIONS, IMAGE_FOLDER_PREFIX, IMAGE_FOLDER_RESAMPLE
from .datasets.readers import OCR_LETTER_DIMS, read_amat, read_idx, read_libsvm, read_ocr_letters
from .datasets.registry import fetch
from .datasets.uci import UCI_BINARY
from .datasets.verify import DatasetSpec, FileSpec
from .datasets.verify import find_layout as _find_layout  # noqa: F401  (used by the study and the tests)
from .datasets.verify import verify as _verify  # noqa: F401


def generated() -> list[str]:
    """Datasets made on this machine on first use and cached (the Atari frames)."""
    return list(ATARI)


#: every public name of this module (its re-exports and generated)
__all__ = sorted(name for name in dict(globals()) if not name.startswith("_") and name != "annotations")
