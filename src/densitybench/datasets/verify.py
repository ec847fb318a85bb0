"""What a dataset's files are and how their content is verified.

A :class:`DatasetSpec` lists the files that make a dataset (:class:`FileSpec`, in one or
more alternative layouts) with the check of each. Content is verified on every load (array
checksums, not file bytes, so a re-compressed but identical file loads and a corrupt one
does not), and every download is verified before it is moved into place.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import paths
from .core import ChecksumError, DataError, DataMissingError, array_sha256
from .readers import CONTAINER_FORMATS, read_arrays, read_idx

__all__ = ["FileSpec", "DatasetSpec", "file_format", "verify", "find_layout"]


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    ``check`` is one of

    * ``("md5-uncompressed", hex)`` for gzip-compressed idx files (the canonical MD5 of the
      *uncompressed* content);
    * ``("sha256-arrays", {key: hex})`` for files whose arrays are verified one by one
      (:func:`~densitybench.datasets.core.array_sha256`);
    * ``("shape", {key: (N, D)})`` for binary data whose content checksum is not recorded
      yet: only each array's shape and that its values are 0/1 are verified.

    ``key`` names an array of an ``.npz``/``.mat`` file; a text file holds one array, ``"split"``.
    ``format`` says how the file is parsed: ``"idx-gz"``, ``"npz"``, ``"mat"`` (MATLAB v5),
    ``"amat"``, ``"amat-target"`` (one trailing target column, dropped), ``"libsvm"`` or
    ``"ocr_letters"``; empty means deduced from the suffix (:func:`file_format`).
    ``urls`` are the mirrors a download tries, in order.
    """

    name: str
    urls: tuple[str, ...]
    check: tuple
    format: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset made of files in ``<data_dir>/<folder>/``.

    Attributes:
        name: registry name.
        folder: the folder of the data directory its files are in.
        kind, n_levels, image_shape: as in :class:`~densitybench.datasets.core.ImageData`.
        layouts: alternatives, each a tuple of files that together make the dataset; the
            first one present is loaded.
        reader: ``reader(spec, {file name: verified array(s)})`` gives ``(train, valid, test)``
            arrays, optionally followed by ``{split: labels}``.
        description: what the data are and how the split was made.
        citation: the bibliography key of its source.
    """

    name: str
    folder: str
    kind: str
    n_levels: int
    image_shape: tuple[int, int, int]
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


_SUFFIX_FORMATS = {".gz": "idx-gz", ".npz": "npz", ".mat": "mat", ".amat": "amat", ".libsvm": "libsvm"}


def file_format(f: FileSpec) -> str:
    """``f.format``, else the format its suffix implies."""
    if f.format:
        return f.format
    suffix = Path(f.name).suffix
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(f"{f.name}: no format given and the suffix {suffix!r} does not imply one")
    return _SUFFIX_FORMATS[suffix]


def _fetch_remedy(spec: DatasetSpec) -> str:
    return (
        f"The file is corrupt or is not the canonical one. It was not loaded and not changed; "
        f"delete it and run `densitybench data fetch {spec.name}`."
    )


def verify(spec: DatasetSpec, f: FileSpec, path: Path, remedy: str | None = None):
    """Read ``path`` and verify its content; return what the reader needs: the idx array,
    the ``{name: array}`` of an ``.npz``/``.mat`` file, or the one array of a text file.

    Verified arrays are returned as ``uint8``; an array that ``uint8`` cannot hold exactly
    (a value 0.5, or 300) is refused rather than converted.

    Args:
        spec: the dataset the file belongs to.
        f: the file's spec (its check and format).
        path: where the file is.
        remedy: the last sentence of an error, what to do; by default: delete the file and fetch again.

    Raises:
        ChecksumError: the content is not the expected one, or the file cannot be read; the
            message names the file, the expected and the actual value.
    """
    kind, expected = f.check
    redo = _fetch_remedy(spec) if remedy is None else remedy
    if kind == "md5-uncompressed":
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            how = f"Delete it and run `densitybench data fetch {spec.name}`." if remedy is None else remedy
            raise ChecksumError(f"{spec.name}: {path} cannot be decompressed ({e}); it is corrupt. {how}") from None
        actual = hashlib.md5(raw).hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"{spec.name}: content checksum mismatch for {path}\n"
                f"  expected MD5 of the uncompressed content: {expected}\n"
                f"  actual:                                    {actual}\n"
                f"{redo}"
            )
        return read_idx(raw)
    if kind not in ("sha256-arrays", "shape"):
        raise DataError(f"{spec.name}: {f.name} has an unknown kind of check {kind!r}")
    fmt = file_format(f)
    try:
        arrays = read_arrays(fmt, path, int(np.prod(spec.image_shape)))
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
    return arrays if fmt in CONTAINER_FORMATS else arrays["split"]


def find_layout(spec: DatasetSpec, root: Path) -> tuple[tuple[FileSpec, ...], Path]:
    """The first layout of ``spec`` whose files are all in ``<root>/<spec.folder>``, and that folder.

    Raises:
        DataMissingError: no layout is complete; the message names the missing files, where
            they were looked for and the fetch command.
    """
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
