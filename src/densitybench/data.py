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
"""

from __future__ import annotations

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
    "REGISTRY",
    "load",
    "fetch",
    "check",
    "dequantize",
    "read_idx",
    "read_amat",
]


class DataError(Exception):
    """Base class of the data layer's errors."""


class DataMissingError(DataError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class ChecksumError(DataError, ValueError):
    """A dataset file is present but its content is not the expected one."""


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


def read_amat(path: Path, n_dims: int) -> np.ndarray:
    """Parse Larochelle's ``.amat`` text: one example per line, ``n_dims`` values 0/1."""
    raw = Path(path).read_bytes()
    rows = [r.split() for r in raw.splitlines() if r.strip()]
    a = np.array(rows, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != n_dims:
        raise ValueError(f"{path}: expected {n_dims} values per line, got shape {a.shape}")
    return a.astype(np.uint8)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    ``check`` is ``("md5-uncompressed", hex)`` for gzip-compressed idx files (the canonical
    MD5 of the *uncompressed* content) or ``("sha256-arrays", {key: hex})`` for files whose
    arrays are verified one by one.
    """

    name: str
    urls: tuple[str, ...]
    check: tuple


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

#: Datasets made in memory, without files.
EMBEDDED = ("digits", "digits_binary")


def names() -> list[str]:
    return list(EMBEDDED) + list(REGISTRY)


# --------------------------------------------------------------------------- verification


def _verify(spec: DatasetSpec, f: FileSpec, path: Path):
    """Read ``path`` and verify its content; return what the reader needs."""
    kind, expected = f.check
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
                f"The file is corrupt or is not the canonical one. It was not loaded and "
                f"not changed; delete it and run `densitybench data fetch {spec.name}`."
            )
        return read_idx(raw)
    if kind == "sha256-arrays":
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            else:
                arrays = {"split": read_amat(path, int(np.prod(spec.image_shape)))}
        except Exception as e:  # a truncated zip, a text file with junk, ...
            raise ChecksumError(
                f"{spec.name}: {path} cannot be read ({type(e).__name__}: {e}); it is corrupt. "
                f"Delete it and run `densitybench data fetch {spec.name}`."
            ) from None
        for key, want in expected.items():
            if key not in arrays:
                raise ChecksumError(f"{spec.name}: {path} has no array {key!r} (has {sorted(arrays)})")
            got = array_sha256(arrays[key])
            if got != want:
                raise ChecksumError(
                    f"{spec.name}: content checksum mismatch for {path} (array {key!r})\n"
                    f"  expected SHA-256 of the uint8 array: {want}\n"
                    f"  actual:                              {got}\n"
                    f"The file is corrupt or is not the canonical one. It was not loaded and "
                    f"not changed; delete it and run `densitybench data fetch {spec.name}`."
                )
        return arrays if path.suffix == ".npz" else arrays["split"]
    raise AssertionError(kind)


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
        name: one of :func:`names`.
        data_dir: the data directory (see :func:`densitybench.paths.data_dir`).

    Raises:
        DataMissingError: a file is absent; the message names it, where it was looked
            for and the fetch command.
        ChecksumError: a file's content differs from the canonical one.
    """
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


# --------------------------------------------------------------------------- fetch / check


def fetch(name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download a dataset from its canonical URLs into the data directory and verify it.

    Files already present are verified, not downloaded again. A file that is present but
    fails verification is never overwritten: the error says to delete it first. Each
    download goes to a temporary file that is moved into place only once verified.
    """
    if name in EMBEDDED:
        return paths.data_dir(data_dir)
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
    status = {}
    for name in names():
        try:
            load(name, data_dir)
            status[name] = "ok"
        except DataMissingError:
            status[name] = "missing"
        except DataError as e:
            status[name] = "CORRUPT: " + str(e).splitlines()[0]
    return status
