"""Datasets: one registry of sources, content-verified loaders, fixed splits and dequantization.

Every dataset is returned as an :class:`ImageData` whose splits are ``uint8`` tensors of
shape ``(N, C, H, W)`` holding integer pixel levels ``0 .. n_levels - 1``; its ``name`` loads
the same data again. A *source* (:class:`~densitybench.datasets.registry.Source`) is a family
of datasets loaded and fetched the same way; each module below registers its source when it
is imported, and :func:`load` asks the registry which source serves a name:

* :mod:`.digits`: scikit-learn's 8x8 digits, embedded (``digits``, ``digits_binary``);
* :mod:`.binarized_mnist`: the fixed binarized MNIST of Larochelle & Murray;
* :mod:`.mnist`: MNIST-like idx files (``mnist``, ``fashion_mnist``);
* :mod:`.uci`: the eight UCI binary sets of NADE and MADE;
* :mod:`.caltech`: Caltech-101 Silhouettes;
* :mod:`.atari`: binarized Atari frames, generated with the emulator and cached;
* :mod:`.derived`: ``<name>_binarized_seed<k>``, a stochastic binarization of another dataset,
  and ``<name>_levels<K>``, its pixels requantised to ``K`` levels;
* :mod:`.image_folder`: ``image_folder:<dir>?<settings>``, any directory of images.

The file formats are parsed in :mod:`.readers`, verified in :mod:`.verify` and downloaded
by :mod:`.fetch` (every mirror in turn, with a deadline). Nothing is downloaded implicitly:
``densitybench data fetch NAME`` (:func:`densitybench.datasets.registry.fetch`) does that.
"""

from . import core, fetch, readers, registry, verify  # noqa: F401  (the layers, before the sources)
from . import files  # noqa: F401
from . import digits, binarized_mnist, mnist, uci, caltech, atari  # noqa: F401  (registered names, in this order)
from . import derived, image_folder  # noqa: F401  (names made of parts; derived is asked first)
from .core import (
    DEQUANTIZATION_SEED,
    ChecksumError,
    DataError,
    DataMissingError,
    ImageData,
    ImageFolderError,
    array_sha256,
    binarize_stochastic,
    bits_per_dim,
    dequantize,
)
from .fetch import FetchError
from .files import REGISTRY
from .image_folder import image_folder_name, load_image_folder, parse_image_folder_name
from .registry import Source, check, description, load, missing, names, register, source_for

__all__ = [
    "ImageData",
    "DataError",
    "DataMissingError",
    "ChecksumError",
    "ImageFolderError",
    "FetchError",
    "DEQUANTIZATION_SEED",
    "dequantize",
    "bits_per_dim",
    "array_sha256",
    "binarize_stochastic",
    "REGISTRY",
    "Source",
    "register",
    "source_for",
    "names",
    "load",
    "check",
    "description",
    "missing",
    "load_image_folder",
    "image_folder_name",
    "parse_image_folder_name",
]
