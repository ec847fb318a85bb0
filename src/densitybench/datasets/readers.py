"""Parsers of the file formats datasets come in: idx, ``.amat``, LIBSVM, OCR letters, ``.npz``, ``.mat``.

Each returns ``uint8`` arrays; a malformed file is an error that names the file (and, for text
formats, the line), so the user can find what is wrong.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = [
    "read_idx",
    "read_amat",
    "read_libsvm",
    "read_ocr_letters",
    "read_arrays",
    "OCR_LETTER_DIMS",
    "FORMATS",
    "CONTAINER_FORMATS",
]


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


#: How :func:`read_arrays` parses a file (``"idx-gz"`` files are read by the idx verification).
FORMATS = ("idx-gz", "npz", "mat", "amat", "amat-target", "libsvm", "ocr_letters")
#: Formats whose file holds several named arrays (the others hold one split, ``"split"``).
CONTAINER_FORMATS = ("npz", "mat")
#: MADE's own npz files name their splits ``train_data``, ``valid_data``, ``test_data``.
_NPZ_ALIASES = {"train_data": "train", "valid_data": "valid", "test_data": "test"}


def read_arrays(fmt: str, path: Path, n_dims: int) -> dict[str, np.ndarray]:
    """The arrays of a (non-idx) dataset file, by name; a text file gives ``{"split": a}``.

    Args:
        fmt: one of :data:`FORMATS` but ``"idx-gz"``.
        path: the file.
        n_dims: values per example of the text formats (``C * H * W``).
    """
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
    raise ValueError(f"unknown file format {fmt!r}; known: {', '.join(FORMATS)}")
