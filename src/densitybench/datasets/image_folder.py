"""Any directory of image files as a dataset, by a name that carries how it was read.

``load("image_folder:<dir>")`` reads a folder with the defaults of :func:`load_image_folder`;
other settings are written after a ``?``, as :func:`image_folder_name` writes them:
``"image_folder:faces?size=8x8&binarize=128&seed=3"``. A relative ``<dir>`` is taken inside
the data directory. The name of the loaded :class:`~densitybench.datasets.core.ImageData`
holds the absolute folder and every setting that differs from its default, so loading that
name again gives the same arrays.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .core import DataMissingError, ImageData, ImageFolderError
from .registry import Source, register

__all__ = [
    "IMAGE_FOLDER_PREFIX",
    "IMAGE_EXTENSIONS",
    "IMAGE_FOLDER_RESAMPLE",
    "IMAGE_FOLDER_OPTIONS",
    "image_folder_name",
    "parse_image_folder_name",
    "load_image_folder",
    "ImageFolderSource",
    "SOURCE",
]

#: ``load("image_folder:<path>")`` loads a directory of images with the defaults below.
IMAGE_FOLDER_PREFIX = "image_folder:"
#: File name endings :func:`load_image_folder` reads by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The Pillow filter every image is resized with.
IMAGE_FOLDER_RESAMPLE = "LANCZOS"
#: The settings of :func:`load_image_folder` an image-folder name may carry (see :func:`image_folder_name`).
IMAGE_FOLDER_OPTIONS = ("size", "grey", "binarize", "seed", "n_valid", "n_test", "extensions")
_DEFAULT_SIZE = (64, 64)
_DEFAULT_FRACTION = 0.1
#: A folder whose name could be read as another kind of name gets its settings written out.
_AMBIGUOUS = re.compile(r".*\?.*|.*_binarized_seed\d+|.*_levels\d+", re.S)


def _extensions(extensions) -> tuple[str, ...]:
    """File name endings, lower case, each with its leading dot."""
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def image_folder_name(
    folder: str | os.PathLike,
    size: tuple[int, int] | None = _DEFAULT_SIZE,
    grey: bool = True,
    binarize: int | None = None,
    seed: int = 0,
    n_valid: float = _DEFAULT_FRACTION,
    n_test: float = _DEFAULT_FRACTION,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> str:
    """The dataset name that :func:`load` reads as ``load_image_folder(folder, size, grey, binarize, seed, ...)``.

    Settings left at their defaults are not written: ``image_folder_name("faces")`` is
    ``"image_folder:faces"``; ``image_folder_name("faces", size=(8, 8), binarize=128)`` is
    ``"image_folder:faces?size=8x8&binarize=128"``. A binarization threshold is always
    written. A folder whose own name holds a ``?`` or ends like a binarized name
    (``_binarized_seed<k>``) gets its size written even at the default, so that the name
    cannot be read another way.
    """
    size = None if size is None else (int(size[0]), int(size[1]))
    options = []
    if size != _DEFAULT_SIZE:
        options.append("size=" + ("none" if size is None else f"{size[0]}x{size[1]}"))
    if not grey:
        options.append("grey=0")
    if binarize is not None:
        options.append(f"binarize={int(binarize)}")
    if int(seed) != 0:
        options.append(f"seed={int(seed)}")
    if float(n_valid) != _DEFAULT_FRACTION:
        options.append(f"n_valid={float(n_valid)!r}")
    if float(n_test) != _DEFAULT_FRACTION:
        options.append(f"n_test={float(n_test)!r}")
    if _extensions(extensions) != _extensions(IMAGE_EXTENSIONS):
        options.append("extensions=" + ",".join(_extensions(extensions)))
    if not options and _AMBIGUOUS.fullmatch(str(folder)):
        options.append(f"size={size[0]}x{size[1]}")
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
            elif key in ("n_valid", "n_test"):
                options[key] = float(value)
            elif key == "extensions":
                options[key] = tuple(value.split(","))
                if not all(options[key]):
                    raise ValueError
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

        extensions: the file name endings read (compared case-insensitively).

    Returns:
        ``ImageData`` named :func:`image_folder_name` of the absolute folder and these
        settings (``load`` of that name gives the same arrays again), with ``uint8`` splits
        ``(N, C, H, W)`` (``C`` = 1, or 3 with ``grey=False``), no labels, and
        ``files = {split: [relative path of each image, in order]}``.

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
    wanted = _extensions(extensions)
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
        name=image_folder_name(root, size, grey, binarize, seed, n_valid, n_test, extensions),
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


class ImageFolderSource(Source):
    """Directories of image files, named ``image_folder:<dir>[?settings]``."""

    title = "image folders"

    def serves(self, name: str) -> bool:
        return name.startswith(IMAGE_FOLDER_PREFIX)

    @staticmethod
    def _where(name: str, data_dir) -> tuple[Path, dict]:
        where, options = parse_image_folder_name(name)
        folder = Path(where).expanduser()
        return (folder if folder.is_absolute() else paths.data_dir(data_dir) / folder), options

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        """Load the folder of ``name`` (a relative path is taken inside the data directory)."""
        folder, options = self._where(name, data_dir)
        return load_image_folder(folder, **options)

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        """Nothing to download: the folder, once it is known to exist."""
        folder, _ = self._where(name, data_dir)
        reason = self.missing(name, data_dir)
        if reason:
            raise DataMissingError(reason)
        return folder.resolve()

    def description(self, name: str) -> str:
        where, options = parse_image_folder_name(name)
        settings = ", ".join(f"{k}={v}" for k, v in options.items()) or "the default settings"
        return f"the images of the folder {where}, read with {settings}"

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        folder, _ = self._where(name, data_dir)
        root = folder.resolve()
        if root.is_dir():
            return None
        return f"image folder {root} {'is not a directory' if root.exists() else 'does not exist'}"


SOURCE = register(ImageFolderSource())
