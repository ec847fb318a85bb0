"""Datasets: one registry, content-verified loaders, fixed splits and dequantization.

Every dataset is returned as an :class:`ImageData` whose splits are ``uint8`` tensors of
shape ``(N, C, H, W)`` holding integer pixel levels ``0 .. n_levels - 1`` (``n_levels = 2``
for binary data). Models take floats: :meth:`ImageData.split` converts, and
:func:`dequantize` turns integer levels into a continuous variable on ``[0, 1]^D``.

Files are looked for in ``<data_dir>/<dataset folder>/``; the data directory is an
argument, else ``$DENSITYBENCH_DATA``, else ``<repo>/data`` (:func:`densitybench.paths.data_dir`).
Content is verified on every load (array checksums, not file bytes, so a re-compressed
but identical file loads and a corrupt one does not). Nothing is downloaded implicitly:
``densitybench data fetch NAME`` does that, and it never overwrites a file.

Besides the registry, :func:`load_image_folder` (or ``load("image_folder:<path>")``) turns
any directory of image files into an :class:`ImageData`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import re
import shutil
import struct
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import paths

__all__ = [
    "ImageData",
    "DatasetSpec",
    "DataError",
    "DataMissingError",
    "ChecksumError",
    "ImageFolderError",
    "REGISTRY",
    "UCI_BINARY",
    "load",
    "load_image_folder",
    "image_folder_name",
    "parse_image_folder_name",
    "fetch",
    "check",
    "dequantize",
    "read_idx",
    "read_amat",
    "read_libsvm",
    "read_ocr_letters",
]


class DataError(Exception):
    """Base class of the data layer's errors."""


class DataMissingError(DataError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class ChecksumError(DataError, ValueError):
    """A dataset file is present but its content is not the expected one."""


class ImageFolderError(DataError, ValueError):
    """An image folder given to :func:`load_image_folder` cannot be made into a dataset."""


@dataclass
class ImageData:
    """A dataset with its fixed train/valid/test split.

    Attributes:
        name: registry name.
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
        if which not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', not {which!r}")
        return getattr(self, which).float()

    def sizes(self) -> dict[str, int]:
        return {s: int(getattr(self, s).shape[0]) for s in ("train", "valid", "test")}


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


# --------------------------------------------------------------------------- readers


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's ``uint8`` C-order bytes (the content checksum of a split)."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def read_idx(raw: bytes) -> np.ndarray:
    """Parse an (uncompressed) idx file: big-endian header, then ``uint8`` data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an idx file of unsigned bytes (bad magic number)")
    n_dim = raw[3]
    shape = struct.unpack(">" + "I" * n_dim, raw[4 : 4 + 4 * n_dim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"idx header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def _binary_row(tokens: list[bytes], path, number: int) -> np.ndarray:
    """The numbers ``tokens`` as ``uint8``; a value other than 0 or 1 is an error that names
    the file and the line ``number``."""
    try:
        a = np.array(tokens, dtype=np.float64)
    except ValueError:
        a = None
    if a is None or not np.isfinite(a).all():
        raise ValueError(f"{path}, line {number}: not a line of numbers")
    bad = (a != 0) & (a != 1)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"{path}, line {number}: value {a[j]:g} in column {j + 1}; binary data must hold only 0 and 1"
        )
    return a.astype(np.uint8)


def read_amat(path: Path, n_dims: int, has_target: bool = False) -> np.ndarray:
    """Parse Larochelle's ``.amat`` text: one example per line, ``n_dims`` values 0/1.

    With ``has_target`` every line holds ``n_dims + 1`` values and the last one, a target
    that density estimation does not use (the dummy "bidon" target of the nips files, the
    class of the rcv1 files), is dropped. Returns ``uint8`` of shape ``(N, n_dims)``.
    A line with another number of values, or a value other than 0/1, is an error naming
    the file and the line.
    """
    raw = Path(path).read_bytes()
    want = n_dims + 1 if has_target else n_dims
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != want:
            what = f" ({n_dims} values and a target)" if has_target else ""
            raise ValueError(f"{path}, line {number}: expected {want} values per line{what}, got {len(tokens)}")
        rows.append(_binary_row(tokens[:n_dims], path, number))
    if not rows:
        raise ValueError(f"{path}: no examples (the file is empty)")
    return np.stack(rows)


def read_libsvm(path: Path, n_dims: int) -> np.ndarray:
    """Parse a binary LIBSVM/svmlight file into a dense ``uint8`` array ``(N, n_dims)``.

    Each line is ``label idx:val idx:val ...`` with 1-based feature indices: feature ``k``
    becomes column ``k - 1`` and absent features are 0. The label is not used. A value
    other than 0/1, an index outside ``1 .. n_dims`` or a malformed pair is an error that
    names the file and the line.
    """
    raw = Path(path).read_bytes()
    out = []
    for number, line in enumerate(raw.splitlines(), 1):
        tokens = line.split(b"#", 1)[0].split()
        if not tokens:
            continue
        if b":" in tokens[0]:
            raise ValueError(f"{path}, line {number}: the line does not start with a label")
        row = np.zeros(n_dims, dtype=np.uint8)
        for pair in tokens[1:]:
            idx, sep, val = pair.partition(b":")
            try:
                k, v = int(idx), float(val)
            except ValueError:
                k, v = None, None
            if not sep or k is None:
                text = pair.decode(errors="replace")
                raise ValueError(f"{path}, line {number}: {text!r} is not an 'index:value' pair")
            if not 1 <= k <= n_dims:
                raise ValueError(f"{path}, line {number}: feature index {k} outside 1..{n_dims}")
            if v not in (0.0, 1.0):
                raise ValueError(
                    f"{path}, line {number}: feature {k} has value {v:g}; binary data must hold only 0 and 1"
                )
            row[k - 1] = int(v)
        out.append(row)
    if not out:
        raise ValueError(f"{path}: no examples (the file is empty)")
    return np.stack(out)


#: OCR letters: 16 x 8 binary pixels per letter, each followed by its class (0..25).
OCR_LETTER_DIMS = 128


def read_ocr_letters(path: Path, n_dims: int = OCR_LETTER_DIMS) -> np.ndarray:
    """Parse the OCR letters ``.txt`` files into ``uint8`` of shape ``(N, n_dims)``.

    Each line holds one or more letters, each written as ``n_dims`` binary pixel values
    followed by one target value (the letter's class, not used): the tokens of a line are
    cut into groups of ``n_dims + 1`` and the first ``n_dims`` of each group are kept. A
    line whose token count is not a multiple of ``n_dims + 1``, or a pixel value other than
    0/1, is an error naming the file and the line.
    """
    raw = Path(path).read_bytes()
    group = n_dims + 1
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) % group:
            raise ValueError(
                f"{path}, line {number}: {len(tokens)} values is not a whole number of letters "
                f"({n_dims} pixels and 1 target each, {group} values per letter); "
                f"{len(tokens) % group} left over"
            )
        for start in range(0, len(tokens), group):
            rows.append(_binary_row(tokens[start : start + n_dims], path, number))
    if not rows:
        raise ValueError(f"{path}: no examples (the file is empty)")
    return np.stack(rows)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    ``check`` is one of

    * ``("md5-uncompressed", hex)`` for gzip-compressed idx files (the canonical MD5 of the
      *uncompressed* content);
    * ``("sha256-arrays", {key: hex})`` for files whose arrays are verified one by one
      (:func:`array_sha256`);
    * ``("shape", {key: (N, D)})`` for binary data whose content checksum is not recorded
      yet: only each array's shape and that its values are 0/1 are verified.

    ``key`` names an array of an ``.npz``/``.mat`` file; a text file holds one array, ``"split"``.
    ``format`` says how the file is parsed: ``"idx-gz"``, ``"npz"``, ``"mat"`` (MATLAB v5),
    ``"amat"``, ``"amat-target"`` (one trailing target column, dropped), ``"libsvm"`` or
    ``"ocr_letters"``; empty means deduced from the suffix (:func:`_file_format`).
    """

    name: str
    urls: tuple[str, ...]
    check: tuple
    format: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    kind: str
    n_levels: int
    image_shape: tuple[int, int, int]
    #: alternatives: each is a tuple of files that together make the dataset
    layouts: tuple[tuple[FileSpec, ...], ...]
    reader: Callable[["DatasetSpec", dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray]]
    description: str
    citation: str

    def fetch_layout(self) -> tuple[FileSpec, ...]:
        """The layout ``fetch`` downloads: the first one with download URLs."""
        for layout in self.layouts:
            if all(f.urls for f in layout):
                return layout
        raise DataError(f"{self.name}: no layout has download URLs")


_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
_LAROCHELLE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
_BINARIZED_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
#: SHA-256 of scikit-learn's bundled 8x8 digits, ``load_digits().images`` as uint8.
DIGITS_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
#: Digits are binarized as ``level >= DIGITS_THRESHOLD`` (levels 0..16).
DIGITS_THRESHOLD = 8
#: Seed and sizes of the digits split (the rest of the 1797 images is train).
DIGITS_SPLIT_SEED = 0
DIGITS_N_VALID = 300
DIGITS_N_TEST = 300


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


def _read_binarized(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    if "binarized_mnist.npz" in arrays:
        z = arrays["binarized_mnist.npz"]
        return z["train"], z["valid"], z["test"]
    return tuple(arrays[f"binarized_mnist_{s}.amat"] for s in ("train", "valid", "test"))


def _amat_layout(files: tuple[str, ...]) -> tuple[FileSpec, ...]:
    """Larochelle's three .amat files, each verified by its split's array checksum."""
    return tuple(
        FileSpec(f, (_LAROCHELLE + f,), ("sha256-arrays", {"split": _BINARIZED_SHA256[s]}))
        for f, s in zip(files, ("train", "valid", "test"))
    )


REGISTRY: dict[str, DatasetSpec] = {}


def _register(spec: DatasetSpec) -> None:
    REGISTRY[spec.name] = spec


_register(
    DatasetSpec(
        name="binarized_mnist",
        folder="binarized_mnist",
        kind="binary",
        n_levels=2,
        image_shape=(1, 28, 28),
        layouts=(
            (FileSpec("binarized_mnist.npz", (), ("sha256-arrays", dict(_BINARIZED_SHA256))),),
            _amat_layout(tuple(f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test"))),
        ),
        reader=_read_binarized,
        description=(
            "MNIST with the fixed stochastic binarization of Larochelle & Murray (2011), "
            "50,000 train / 10,000 valid / 10,000 test images of 28x28 binary pixels."
        ),
        citation="larochelle2011nade",
    )
)
_register(
    DatasetSpec(
        name="mnist",
        folder="mnist",
        kind="levels",
        n_levels=256,
        image_shape=(1, 28, 28),
        layouts=(_idx_layout(_MNIST_MD5, _MNIST_URLS),),
        reader=_read_idx_splits,
        description=(
            "8-bit greyscale MNIST: train = the first 50,000 images of the training file, "
            "valid = its last 10,000, test = the 10,000 images of the test file."
        ),
        citation="lecun1998mnist",
    )
)
_register(
    DatasetSpec(
        name="fashion_mnist",
        folder="fashion_mnist",
        kind="levels",
        n_levels=256,
        image_shape=(1, 28, 28),
        layouts=(_idx_layout(_FASHION_MD5, _FASHION_URLS),),
        reader=_read_idx_splits,
        description=(
            "8-bit greyscale Fashion-MNIST, split like MNIST: first 50,000 training images / "
            "last 10,000 / the 10,000 test images."
        ),
        citation="xiao2017fashion",
    )
)

# ----------------------------------------------------------- UCI binary sets of NADE/MADE

_LAROCHELLE_DATASETS = "http://www.cs.toronto.edu/~larocheh/public/datasets/"
_MADE_RAW = "https://raw.githubusercontent.com/mgermain/MADE/master/datasets/"
_MADE_RELEASE = "https://github.com/mgermain/MADE/releases/download/ICML2015/"


@dataclass(frozen=True)
class _UCI:
    """One UCI binary dataset: dimension, split sizes, Larochelle's files, what it is."""

    name: str
    n_dims: int
    sizes: tuple[int, int, int]  # train, valid, test
    #: Larochelle's files: path under ``_LAROCHELLE_DATASETS`` with ``{}`` for the split
    canonical: str
    format: str
    npz_url: str
    what: str
    #: SHA-256 of each split's uint8 array, or None where no verified copy was available
    sha256: dict[str, str] | None = None


#: The eight binary datasets of Larochelle, Bengio & Turian (2010), as used by NADE and MADE.
UCI_BINARY: dict[str, _UCI] = {
    u.name: u
    for u in (
        _UCI(
            "adult", 123, (5000, 1414, 26147), "adult/a5a_{}.libsvm", "libsvm", _MADE_RAW + "adult.npz",
            "UCI Adult (census records; LIBSVM's a5a encoding): 14 attributes as 123 binary "
            "indicators; feature k of the libsvm files is column k-1, and feature 123 occurs "
            "only in the test file",
            {
                "train": "51f7e476ddebd27c873cfaf59d08af97930089470434483e8023bfb529c37e4f",
                "valid": "e7e7fe06cb496ce3a400b320fa238e156123c3d155543740250cb10e664c4aa3",
                "test": "ec473624d775ed4f946238b5e944f8e6895b583a9d1c4c24a01f5cec717a2f60",
            },
        ),
        _UCI(
            "connect4", 126, (16000, 4000, 47557), "connect-4/connect-4_{}.libsvm", "libsvm",
            _MADE_RAW + "connect4.npz",
            "UCI Connect-4 (legal 8-ply board positions): 42 cells x 3 states as 126 binary indicators",
        ),
        _UCI(
            "dna", 180, (1400, 600, 1186), "dna/dna_scale_{}.libsvm", "libsvm", _MADE_RAW + "dna.npz",
            "Statlog DNA (primate splice-junction sequences; LIBSVM's dna.scale): 60 nucleotides "
            "as 180 binary indicators",
            {
                "train": "425f2f6eb1b989bd0e41e88fd0c004bfee8c2b1b398b50a974ea0764966a30aa",
                "valid": "99063a569f2e3733e99aacc610a295ce92a604c41f102e7c5fcc67799bc96c7c",
                "test": "183aa2a8acb410c9d950e26030da5b30e3176da04b2ed2566c03565a5c3479a1",
            },
        ),
        _UCI(
            "mushrooms", 112, (2000, 500, 5624), "mushrooms/mushrooms_{}.libsvm", "libsvm",
            _MADE_RAW + "mushrooms.npz",
            "UCI Mushroom (descriptions of gilled mushrooms; LIBSVM's mushrooms): 22 categorical "
            "attributes as 112 binary indicators",
            {
                "train": "bdc96ef5b74d908aa8f0665aad1a060c95c29e3f0140e0c004f538785e7f37f4",
                "valid": "a02bb4bbe086e12738e27dca9436d43823ee5c6c6a2f684eb4eff51ebf924ecc",
                "test": "02d2b76d77c88d8f7e9c4e5b6be68e16d242c5e9db55b16bea81a953c3823d3c",
            },
        ),
        _UCI(
            "nips", 500, (400, 100, 1240), "nips-0-12/nips-0-12_all_shuffled_bidon_target_{}.amat",
            "amat-target", _MADE_RAW + "nips.npz",
            "NIPS 0-12 (papers of NIPS volumes 0 to 12): presence of each of 500 frequent words",
            {
                "train": "d3533784ce37bd8ca6c195160c47b7fc18447917e639781f6b9f4ceee743bf37",
                "valid": "b389c16873bbb94a617d83a5525e6be9bc9ef6d00f49621e1c8dcfed85f9ceea",
                "test": "7163c55ede1f8077131fb918de107b5782dce395e1c5b9fe33d8b82236a8ec9a",
            },
        ),
        _UCI(
            "ocr_letters", OCR_LETTER_DIMS, (32152, 10000, 10000), "ocr_letters/ocr_letters_{}.txt",
            "ocr_letters", _MADE_RAW + "ocr_letters.npz",
            "OCR letters (handwritten lower-case letters of Kassel's set, as prepared by Taskar et "
            "al.): 16 x 8 binary pixels, flattened to 128 values",
        ),
        _UCI(
            "rcv1", 150, (40000, 10000, 150000), "rcv1/rcv1_all_subset.binary_{}_voc_150.amat",
            "amat-target", _MADE_RELEASE + "rcv1.npz",
            "Reuters RCV1 (news stories): presence of each of 150 frequent words",
        ),
        _UCI(
            "web", 300, (14000, 3188, 32561), "web/w6a_{}.libsvm", "libsvm", _MADE_RAW + "web.npz",
            "Web (LIBSVM's w6a, the web page categorisation data of Platt 1998): 300 binary keyword attributes",
        ),
    )
}

_SPLITS = ("train", "valid", "test")


def _uci_layouts(u: _UCI) -> tuple[tuple[FileSpec, ...], ...]:
    """MADE's ``<name>.npz`` (one file, arrays train/valid/test) or Larochelle's three files,
    checked by the recorded checksums where there are some, else by shape and 0/1 values."""
    kind = "sha256-arrays" if u.sha256 is not None else "shape"

    def expected(split: str):
        return u.sha256[split] if u.sha256 is not None else (u.sizes[_SPLITS.index(split)], u.n_dims)

    npz = FileSpec(f"{u.name}.npz", (u.npz_url,), (kind, {s: expected(s) for s in _SPLITS}), "npz")
    canonical = tuple(
        FileSpec(
            u.canonical.format(s).rsplit("/", 1)[-1],
            (_LAROCHELLE_DATASETS + u.canonical.format(s),),
            (kind, {"split": expected(s)}),
            u.format,
        )
        for s in _SPLITS
    )
    return (npz,), canonical


def _read_uci(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    """MADE's npz (arrays ``train``, ``valid``, ``test``; other arrays such as adult's
    ``*_labels`` are ignored) or Larochelle's three files in the order train, valid, test."""
    npz = f"{spec.name}.npz"
    if npz in arrays:
        z = arrays[npz]
        return z["train"], z["valid"], z["test"]
    train, valid, test = arrays.values()
    return train, valid, test


def _uci_description(u: _UCI) -> str:
    n_train, n_valid, n_test = u.sizes
    files = u.canonical.rsplit("/", 1)[-1].format("{train,valid,test}")
    verified = (
        "Verified by the SHA-256 of each split's uint8 array."
        if u.sha256 is not None
        else "The content checksum is not recorded yet (no verified copy was available): only "
        "the shape of each split and that its values are 0/1 are checked."
    )
    return (
        f"{u.what}. {n_train:,} train / {n_valid:,} valid / {n_test:,} test examples, the split of "
        f"Larochelle, Bengio & Turian (2010) used by NADE and MADE, each a vector of {u.n_dims} "
        f"values 0/1 (loaded as uint8 of shape (N, 1, 1, {u.n_dims})). Source: Larochelle's "
        f"{files} or MADE's {u.name}.npz. {verified}"
    )


for _u in UCI_BINARY.values():
    _register(
        DatasetSpec(
            name=_u.name,
            folder="uci_binary",
            kind="binary",
            n_levels=2,
            image_shape=(1, 1, _u.n_dims),
            layouts=_uci_layouts(_u),
            reader=_read_uci,
            description=_uci_description(_u),
            citation="larochelle2010rbforest",
        )
    )


# --------------------------------------------------------- Caltech-101 Silhouettes (28x28)

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


_register(
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
    )
)

#: Datasets made in memory, without files.
EMBEDDED = ("digits", "digits_binary")


def generated() -> list[str]:
    """Datasets made on this machine on first use and cached (the Atari frames)."""
    from .atari import ATARI

    return list(ATARI)


def names() -> list[str]:
    return list(EMBEDDED) + list(REGISTRY) + generated()


# --------------------------------------------------------------------------- verification


_SUFFIX_FORMATS = {".gz": "idx-gz", ".npz": "npz", ".mat": "mat", ".amat": "amat", ".libsvm": "libsvm"}
#: formats whose file holds several named arrays (the others hold one split, ``"split"``)
_CONTAINER_FORMATS = ("npz", "mat")
#: MADE's own npz files name their splits ``train_data``, ``valid_data``, ``test_data``
_NPZ_ALIASES = {"train_data": "train", "valid_data": "valid", "test_data": "test"}


def _file_format(f: FileSpec) -> str:
    """``f.format``, else the format its suffix implies."""
    if f.format:
        return f.format
    suffix = Path(f.name).suffix
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(f"{f.name}: no format given and the suffix {suffix!r} does not imply one")
    return _SUFFIX_FORMATS[suffix]


def _read_arrays(spec: DatasetSpec, fmt: str, path: Path) -> dict[str, np.ndarray]:
    """The arrays of a (non-idx) dataset file, by name; a text file gives ``{"split": a}``."""
    n_dims = int(np.prod(spec.image_shape))
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        for made, ours in _NPZ_ALIASES.items():
            if made in arrays and ours not in arrays:
                arrays[ours] = arrays[made]
        return arrays
    if fmt == "mat":
        import scipy.io

        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    if fmt in ("amat", "amat-target"):
        return {"split": read_amat(path, n_dims, has_target=fmt == "amat-target")}
    if fmt == "libsvm":
        return {"split": read_libsvm(path, n_dims)}
    if fmt == "ocr_letters":
        return {"split": read_ocr_letters(path, n_dims)}
    raise AssertionError(fmt)


def _verify(spec: DatasetSpec, f: FileSpec, path: Path):
    """Read ``path`` and verify its content; return what the reader needs: the idx array,
    the ``{name: array}`` of an ``.npz``/``.mat`` file, or the one array of a text file.

    Verified arrays are returned as ``uint8``; an array that ``uint8`` cannot hold exactly
    (a value 0.5, or 300) is refused rather than converted."""
    kind, expected = f.check
    redo = (
        f"The file is corrupt or is not the canonical one. It was not loaded and not changed; "
        f"delete it and run `densitybench data fetch {spec.name}`."
    )
    if kind == "md5-uncompressed":
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise ChecksumError(
                f"{spec.name}: {path} cannot be decompressed ({e}); it is corrupt. "
                f"Delete it and run `densitybench data fetch {spec.name}`."
            ) from None
        actual = _md5(raw)
        if actual != expected:
            raise ChecksumError(
                f"{spec.name}: content checksum mismatch for {path}\n"
                f"  expected MD5 of the uncompressed content: {expected}\n"
                f"  actual:                                    {actual}\n"
                f"{redo}"
            )
        return read_idx(raw)
    if kind not in ("sha256-arrays", "shape"):
        raise AssertionError(kind)
    fmt = _file_format(f)
    try:
        arrays = _read_arrays(spec, fmt, path)
    except Exception as e:  # a truncated zip, a text file with junk, a value that is not 0/1, ...
        detail = str(e) if str(e).startswith(str(path)) else f"{path} cannot be read ({type(e).__name__}: {e})"
        raise ChecksumError(f"{spec.name}: {detail}\n{redo}") from None
    for key, want in expected.items():
        if key not in arrays:
            raise ChecksumError(f"{spec.name}: {path} has no array {key!r} (has {sorted(arrays)})")
        a = np.asarray(arrays[key])
        as_uint8 = a.astype(np.uint8)
        if a.dtype != np.uint8 and not np.array_equal(as_uint8, a):
            raise ChecksumError(
                f"{spec.name}: {path} (array {key!r}) holds values that are not integers 0..255 "
                f"(dtype {a.dtype}).\n{redo}"
            )
        if kind == "sha256-arrays":
            got = array_sha256(as_uint8)
            if got != want:
                raise ChecksumError(
                    f"{spec.name}: content checksum mismatch for {path} (array {key!r})\n"
                    f"  expected SHA-256 of the uint8 array: {want}\n"
                    f"  actual:                              {got}\n"
                    f"{redo}"
                )
        else:  # "shape": no content checksum is recorded for this dataset yet
            if tuple(as_uint8.shape) != tuple(want):
                raise ChecksumError(
                    f"{spec.name}: shape mismatch for {path} (array {key!r})\n"
                    f"  expected (examples, dimensions): {tuple(want)}\n"
                    f"  actual:                          {tuple(as_uint8.shape)}\n"
                    f"No content checksum is recorded for {spec.name} yet, so its shape and "
                    f"0/1 values are what is verified. {redo}"
                )
            if as_uint8.max(initial=0) > 1:
                raise ChecksumError(
                    f"{spec.name}: {path} (array {key!r}) holds values other than 0 and 1 "
                    f"(largest {int(as_uint8.max())}); {spec.name} is binary data.\n{redo}"
                )
        arrays[key] = as_uint8
    return arrays if fmt in _CONTAINER_FORMATS else arrays["split"]


def _find_layout(spec: DatasetSpec, root: Path) -> tuple[tuple[FileSpec, ...], Path]:
    folder = root / spec.folder
    for layout in spec.layouts:
        if all((folder / f.name).is_file() for f in layout):
            return layout, folder
    wanted = " or ".join("{" + ", ".join(f.name for f in layout) + "}" for layout in spec.layouts)
    missing = [f.name for f in spec.layouts[0] if not (folder / f.name).is_file()]
    raise DataMissingError(
        f"{spec.name}: missing file(s) {', '.join(missing)}.\n"
        f"  looked in: {folder}  (data directory {root}: the data_dir argument, else "
        f"${paths.DATA_ENV}, else <repo>/data)\n"
        f"  needed: {wanted}\n"
        f"  get them with: densitybench data fetch {spec.name} --data-dir {root}\n"
        f"  (downloads {spec.fetch_layout()[0].urls[0]} and the rest, then verifies them)"
    )


def load(name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
    """Load and verify a registered dataset.

    Args:
        name: one of :func:`names`, or ``"image_folder:<path>"`` for a directory of images
            loaded by :func:`load_image_folder` with its defaults (a relative ``<path>`` is
            taken inside the data directory), or with other settings as
            :func:`image_folder_name` writes them, e.g. ``"image_folder:faces?size=8x8&binarize=128&seed=0"``.
        data_dir: the data directory (see :func:`densitybench.paths.data_dir`).

    Raises:
        DataMissingError: a file is absent; the message names it, where it was looked
            for and the fetch command.
        ChecksumError: a file's content differs from the canonical one.
    """
    if name.startswith(IMAGE_FOLDER_PREFIX):
        where, options = parse_image_folder_name(name)
        folder = Path(where).expanduser()
        ds = load_image_folder(folder if folder.is_absolute() else paths.data_dir(data_dir) / folder, **options)
        if options:  # the name says how the images were read, so a run on them can be redone
            ds = dataclasses.replace(ds, name=image_folder_name(ds.name[len(IMAGE_FOLDER_PREFIX) :], **options))
        return ds
    if name in generated():
        from .atari import load_atari

        return load_atari(name)
    if name in EMBEDDED:
        return _load_digits(binary=name == "digits_binary")
    derived = re.fullmatch(r"(.+)_binarized_seed(\d+)", name)
    if derived and derived.group(1) in names():  # what binarize_stochastic names its result
        return binarize_stochastic(load(derived.group(1), data_dir), int(derived.group(2)))
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names())}")
    spec = REGISTRY[name]
    root = paths.data_dir(data_dir)
    layout, folder = _find_layout(spec, root)
    arrays = {f.name: _verify(spec, f, folder / f.name) for f in layout}
    train, valid, test, *rest = spec.reader(spec, arrays)
    c, h, w = spec.image_shape
    labels = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in rest[0].items()} if rest else None

    def t(a):
        return torch.from_numpy(np.array(a, dtype=np.uint8).reshape(-1, c, h, w))

    return ImageData(
        name=name,
        kind=spec.kind,
        n_levels=spec.n_levels,
        image_shape=spec.image_shape,
        train=t(train),
        valid=t(valid),
        test=t(test),
        description=spec.description,
        files={f.name: str(folder / f.name) for f in layout},
        labels=labels,
    )


def _load_digits(binary: bool) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
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
    split = (
        f"a fixed permutation (numpy default_rng({DIGITS_SPLIT_SEED})) of the 1,797 images: "
        f"{len(train_idx)} train / {DIGITS_N_VALID} valid / {DIGITS_N_TEST} test"
    )
    desc = (
        f"scikit-learn's 8x8 handwritten digits, binarized as level >= {DIGITS_THRESHOLD} of 0..16; {split}."
        if binary
        else f"scikit-learn's 8x8 handwritten digits with their 17 grey levels (0..16); {split}."
    )
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


def binarize_stochastic(ds: ImageData, seed: int = 0) -> ImageData:
    """Binary images drawn as ``x ~ Bernoulli(level / (K - 1))`` once, with ``seed`` (the
    process behind the fixed binarized MNIST, here keeping the labels of ``ds``)."""
    if ds.kind != "levels":
        raise ValueError(f"{ds.name} is already binary")
    g = torch.Generator().manual_seed(seed)

    def draw(x):
        return torch.bernoulli(x.float() / (ds.n_levels - 1), generator=g).to(torch.uint8)

    return ImageData(
        name=f"{ds.name}_binarized_seed{seed}", kind="binary", n_levels=2, image_shape=ds.image_shape,
        train=draw(ds.train), valid=draw(ds.valid), test=draw(ds.test),
        description=f"{ds.description} Binarized once as x ~ Bernoulli(level / {ds.n_levels - 1}) with seed {seed}.",
        files=dict(ds.files), labels=ds.labels,
    )


# --------------------------------------------------------------------------- image folders

#: ``load("image_folder:<path>")`` loads a directory of images with the defaults below.
IMAGE_FOLDER_PREFIX = "image_folder:"
#: File name endings :func:`load_image_folder` reads by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The Pillow filter every image is resized with.
IMAGE_FOLDER_RESAMPLE = "LANCZOS"
#: The settings of :func:`load_image_folder` an image-folder name may carry (see :func:`image_folder_name`).
IMAGE_FOLDER_OPTIONS = ("size", "grey", "binarize", "seed")


def image_folder_name(folder: str | os.PathLike, size: tuple[int, int] | None = (64, 64), grey: bool = True,
                      binarize: int | None = None, seed: int = 0) -> str:
    """The dataset name that :func:`load` reads as ``load_image_folder(folder, size, grey, binarize, seed)``.

    Settings left at their defaults are not written: ``image_folder_name("faces")`` is
    ``"image_folder:faces"``; ``image_folder_name("faces", size=(8, 8), binarize=128)`` is
    ``"image_folder:faces?size=8x8&binarize=128"``.
    """
    options = []
    if size != (64, 64):
        options.append("size=" + ("none" if size is None else f"{int(size[0])}x{int(size[1])}"))
    if not grey:
        options.append("grey=0")
    if binarize is not None:
        options.append(f"binarize={int(binarize)}")
    if seed != 0:
        options.append(f"seed={int(seed)}")
    return IMAGE_FOLDER_PREFIX + str(folder) + ("?" + "&".join(options) if options else "")


def parse_image_folder_name(name: str) -> tuple[str, dict]:
    """``(folder, settings of load_image_folder)`` of a name :func:`image_folder_name` wrote.

    Raises:
        ValueError: a setting that is not one of :data:`IMAGE_FOLDER_OPTIONS`, or a malformed value.
    """
    rest = name[len(IMAGE_FOLDER_PREFIX) :] if name.startswith(IMAGE_FOLDER_PREFIX) else name
    folder, sep, query = rest.rpartition("?")
    if not sep:
        return rest, {}
    options = {}
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if not eq or key not in IMAGE_FOLDER_OPTIONS:
            raise ValueError(f"image folder {name!r}: unknown setting {item!r}; known: {', '.join(IMAGE_FOLDER_OPTIONS)}")
        try:
            if key == "size":
                options[key] = None if value == "none" else tuple(int(v) for v in value.split("x", 1))
                if options[key] is not None and len(options[key]) != 2:
                    raise ValueError
            elif key == "grey":
                options[key] = {"1": True, "0": False}[value]
            else:
                options[key] = int(value)
        except (ValueError, KeyError):
            raise ValueError(f"image folder {name!r}: malformed {key} {value!r}") from None
    return folder, options


def load_image_folder(
    folder: str | os.PathLike,
    size: tuple[int, int] | None = (64, 64),
    grey: bool = True,
    binarize: int | None = None,
    n_valid: float = 0.1,
    n_test: float = 0.1,
    seed: int = 0,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> ImageData:
    """Any directory of images as an :class:`ImageData` with a seeded train/valid/test split.

    The images are the files under ``folder`` (searched recursively) whose names end in one
    of ``extensions``, in the order of their sorted relative paths. Each is read with Pillow
    (the first frame of an animated GIF), converted to 8-bit greyscale (Pillow mode ``"L"``;
    ``grey=False``: mode ``"RGB"``; an alpha channel is dropped, not composited) and resized
    to ``size`` with Pillow's LANCZOS filter, without keeping the aspect ratio. With
    ``size=None`` the images are kept as they are and must all have the same size.

    Args:
        folder: the directory (a relative path is taken from the current directory).
        size: ``(height, width)`` of every image, or None to keep the images' own size.
        grey: one greyscale channel (True) or three RGB channels (False).
        binarize: None for 256 levels (kind ``"levels"``), else a threshold ``t`` in
            ``1..255``: ``level >= t`` becomes 1, the rest 0 (kind ``"binary"``).
        n_valid, n_test: fractions of the images in the valid and test splits (rounded to
            whole images); the rest is train.
        seed: the split is ``numpy.random.default_rng(seed).permutation(N)``: its first
            ``round(n_test * N)`` images are test, the next ``round(n_valid * N)`` valid and
            the rest train; each split keeps the sorted order of the files.

    Returns:
        ``ImageData`` named ``"image_folder:<folder>"`` with ``uint8`` splits ``(N, C, H, W)``
        (``C`` = 1, or 3 with ``grey=False``),
        no labels, and ``files = {split: [relative path of each image, in order]}``.

    Raises:
        DataMissingError: ``folder`` does not exist or is not a directory.
        ImageFolderError: no image files in it (the message lists the extensions looked
            for), an image Pillow cannot read (named), or, with ``size=None``, images of
            different sizes (one file of each of two sizes is named).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("load_image_folder needs Pillow: pip install Pillow") from None

    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"load_image_folder: size must be (height, width), positive, not {size}")
    if binarize is not None and not 1 <= int(binarize) <= 255:
        raise ValueError(
            f"load_image_folder: binarize is a threshold in 1..255 (level >= threshold -> 1), not {binarize}"
        )
    if not (0 <= n_valid < 1 and 0 <= n_test < 1 and n_valid + n_test < 1):
        raise ValueError(
            f"load_image_folder: n_valid and n_test are fractions with n_valid + n_test < 1, "
            f"not {n_valid} and {n_test}"
        )
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataMissingError(f"image folder {root} {what}")
    wanted = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise ImageFolderError(
            f"no images in {root}: looked (recursively) for files ending in {', '.join(wanted)}"
        )

    resample = getattr(Image.Resampling, IMAGE_FOLDER_RESAMPLE)
    images, first_of_size = [], {}
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                image = im.convert("L" if grey else "RGB")
        except Exception as e:  # Pillow raises several types for unreadable or truncated files
            raise ImageFolderError(f"{p}: cannot read this image ({type(e).__name__}: {e})") from None
        if size is not None:
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), resample=resample)
        else:
            hw = (image.height, image.width)
            first_of_size.setdefault(hw, p)
            if len(first_of_size) > 1:
                (hw_a, p_a), (hw_b, p_b) = list(first_of_size.items())[:2]
                raise ImageFolderError(
                    f"images of different sizes in {root} and size=None: {p_a} is "
                    f"{hw_a[0]}x{hw_a[1]} but {p_b} is {hw_b[0]}x{hw_b[1]} (height x width); "
                    f"pass size=(height, width) to resize them all"
                )
        a = np.asarray(image, dtype=np.uint8)
        images.append(a[None] if grey else a.transpose(2, 0, 1))

    x = np.stack(images)
    if binarize is not None:
        x = (x >= int(binarize)).astype(np.uint8)
    n = len(x)
    k_test, k_valid = int(round(n_test * n)), int(round(n_valid * n))
    if n - k_test - k_valid < 1:
        raise ImageFolderError(f"{root}: {n} images leave none for train with n_valid={n_valid}, n_test={n_test}")
    perm = np.random.default_rng(seed).permutation(n)
    idx = {
        "test": np.sort(perm[:k_test]),
        "valid": np.sort(perm[k_test : k_test + k_valid]),
        "train": np.sort(perm[k_test + k_valid :]),
    }
    c, h, w = x.shape[1:]
    how = (
        f"resized to {h}x{w} with Pillow's {IMAGE_FOLDER_RESAMPLE} filter (aspect ratio not kept)"
        if size is not None
        else f"all {h}x{w}, not resized"
    )
    levels = f"binarized as level >= {int(binarize)}" if binarize is not None else "256 grey levels"
    return ImageData(
        name=IMAGE_FOLDER_PREFIX + str(root),
        kind="binary" if binarize is not None else "levels",
        n_levels=2 if binarize is not None else 256,
        image_shape=(int(c), int(h), int(w)),
        train=torch.from_numpy(x[idx["train"]]),
        valid=torch.from_numpy(x[idx["valid"]]),
        test=torch.from_numpy(x[idx["test"]]),
        description=(
            f"{n} images from {root} (searched recursively, sorted by path), converted to "
            f"{'greyscale' if grey else 'RGB'} and {how}, {levels}; split by numpy default_rng({seed}) into "
            f"{len(idx['train'])} train / {len(idx['valid'])} valid / {len(idx['test'])} test."
        ),
        files={s: [files[i].relative_to(root).as_posix() for i in ix] for s, ix in idx.items()},
    )


# --------------------------------------------------------------------------- fetch / check


def fetch(name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download a dataset from its canonical URLs into the data directory and verify it
    (a generated dataset, e.g. Atari frames, is generated and cached instead).

    Files already present are verified, not downloaded again. A file that is present but
    fails verification is never overwritten: the error says to delete it first. Each
    download goes to a temporary file that is moved into place only once verified.
    """
    if name in EMBEDDED:
        return paths.data_dir(data_dir)
    if name in generated():  # nothing to download: generate with the emulator and cache
        from . import atari

        atari.load_atari(name, progress=progress)
        return atari.cache_path(name)
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names())}")
    spec = REGISTRY[name]
    folder = paths.data_dir(data_dir) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for f in spec.fetch_layout():
        target = folder / f.name
        if target.exists():
            _verify(spec, f, target)
            if progress:
                print(f"{name}: {target} present and verified")
            continue
        errors = []
        for url in f.urls:
            # download into a private temporary folder under the real file name, verify,
            # and only then move it into place
            with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
                part = Path(tmp) / f.name
                try:
                    if progress:
                        print(f"{name}: downloading {url}")
                    with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as out:
                        shutil.copyfileobj(r, out)
                except OSError as e:
                    errors.append(f"{url}: {e}")
                    continue
                _verify(spec, f, part)
                os.replace(part, target)
                break
        else:
            raise DataError(f"{name}: could not download {f.name}:\n  " + "\n  ".join(errors))
    return folder


def check(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Verify every registered dataset that is present: ``{name: "ok" | "missing" | error}``."""
    from . import atari

    status = {}
    for name in names():
        if name in generated() and not atari.cache_path(name).is_file():
            status[name] = "not generated yet (made and cached on first use)"
            continue
        try:
            load(name, data_dir)
            status[name] = "ok"
        except DataMissingError:
            status[name] = "missing"
        except DataError as e:
            status[name] = "CORRUPT: " + str(e).splitlines()[0]
    return status
