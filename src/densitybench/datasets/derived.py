"""Datasets derived from another: ``<name>_binarized_seed<k>`` and ``<name>_levels<K>``.

* ``<name>_binarized_seed<k>``: :func:`~densitybench.datasets.core.binarize_stochastic` names
  its result so; :class:`BinarizedSource` reads such a name back as the same draw from the
  dataset ``<name>``.
* ``<name>_levels<K>``: :func:`requantize` names its result so: the images of ``<name>``
  requantised to ``K`` grey levels, ``level = floor(x * K / n_levels)``, with the same splits;
  :class:`LevelsSource` reads such a name back.

``<name>`` is any name a source serves: a registered dataset, an image folder, another
derived name (``mnist_levels10_binarized_seed0``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from . import registry
from .core import ImageData, binarize_stochastic
from .registry import Source, register

__all__ = [
    "BinarizedSource",
    "SOURCE",
    "split_binarized_name",
    "LevelsSource",
    "LEVELS_SOURCE",
    "LEVELS_SUFFIX",
    "split_levels_name",
    "level_ranges",
    "levels_mapping",
    "requantize",
]

_NAME = re.compile(r"(.+)_binarized_seed(\d+)", re.S)


def split_binarized_name(name: str) -> tuple[str, int] | None:
    """``(base name, seed)`` of ``<base>_binarized_seed<seed>``, or None for another name."""
    m = _NAME.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else None


class BinarizedSource(Source):
    """``<name>_binarized_seed<k>``: the dataset ``<name>`` binarized once with seed ``k``."""

    title = "stochastic binarizations of grey-level datasets"

    def _parts(self, name: str) -> tuple[str, int]:
        parts = split_binarized_name(name)
        if parts is None:
            raise ValueError(f"{name!r} is not a name of the form <name>_binarized_seed<k>")
        return parts

    def serves(self, name: str) -> bool:
        parts = split_binarized_name(name)
        return parts is not None and registry.find_source(parts[0]) is not None

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        base, seed = self._parts(name)
        return binarize_stochastic(registry.load(base, data_dir), seed)

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        """What it is made from is fetched."""
        base, _ = self._parts(name)
        return registry.fetch(base, data_dir, progress)

    def description(self, name: str) -> str:
        base, seed = self._parts(name)
        return f"{registry.description(base)} Binarized once as x ~ Bernoulli(level / (K - 1)) with seed {seed}."

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        base, _ = self._parts(name)
        return registry.missing(base, data_dir)


SOURCE = register(BinarizedSource())


# --------------------------------------------------------------------------- fewer grey levels

#: ``requantize(ds, k)`` is named ``ds.name + LEVELS_SUFFIX.format(k)``.
LEVELS_SUFFIX = "_levels{}"
# K is written without leading zeros, so that every name served is the one its data carries
_LEVELS_NAME = re.compile(r"(.+)_levels(0|[1-9]\d*)", re.S)


def split_levels_name(name: str) -> tuple[str, int] | None:
    """``(base name, K)`` of ``<base>_levels<K>``, or None for another name."""
    m = _LEVELS_NAME.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else None


def level_ranges(n_levels: int, k: int) -> list[tuple[int, int]]:
    """The levels of the base that :func:`requantize` maps to each new level.

    Returns:
        ``k`` pairs ``(first, last)``: new level ``j`` holds the old levels ``first .. last``,
        those ``x`` with ``floor(x * k / n_levels) == j``.
    """
    return [(-(-j * n_levels // k), -(-(j + 1) * n_levels // k) - 1) for j in range(k)]


def levels_mapping(n_levels: int, k: int) -> str:
    """The mapping of :func:`requantize` in words, e.g. ``"level = floor(x * 10 / 256): 0..25 -> 0,
    26..51 -> 1, ..., 231..255 -> 9"`` (every range written out)."""
    ranges = ", ".join(f"{a}..{b} -> {j}" if a < b else f"{a} -> {j}"
                       for j, (a, b) in enumerate(level_ranges(n_levels, k)))
    return f"level = floor(x * {k} / {n_levels}): {ranges}"


def _check_levels(name: str, k: int, n_levels: int | None = None) -> None:
    """Refuse ``k`` levels for the dataset ``name`` (made from a base of ``n_levels``, when known)."""
    if k < 2:
        raise ValueError(f"{name}: cannot requantise to {k} levels: at least 2 are needed")
    if n_levels is not None and k >= n_levels:
        raise ValueError(f"{name}: cannot requantise to {k} levels: its base has only {n_levels} levels "
                         f"(0..{n_levels - 1}), so K must be 2 .. {n_levels - 1}")


def requantize(ds: ImageData, k: int) -> ImageData:
    """The images of ``ds`` with ``k`` grey levels, ``level = floor(x * k / n_levels)``.

    Each new level holds an equal share (up to one) of the old ones: for 8-bit images and
    ``k = 10``, levels 0..25 become 0, 26..51 become 1, ..., 231..255 become 9. The splits,
    their order and the labels are those of ``ds``. The result is named
    ``<ds.name>_levels<k>``, a name that :func:`densitybench.datasets.load` reads back as this
    very data.

    Args:
        ds: a dataset of integer levels (``kind == "levels"``), splits ``(N, C, H, W)``.
        k: the number of levels wanted, ``2 <= k < ds.n_levels``.
    Returns:
        An :class:`ImageData` with ``n_levels == k``, splits ``uint8`` of the same shapes.
    Raises:
        ValueError: ``ds`` is binary, or ``k`` is out of that range.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{ds.name}: the number of levels must be an integer, got {k!r}")
    name = ds.name + LEVELS_SUFFIX.format(k)
    if ds.kind != "levels":
        raise ValueError(f"{name}: {ds.name} is binary: it has no grey levels to requantise")
    _check_levels(name, k, ds.n_levels)

    def requantise(x: torch.Tensor) -> torch.Tensor:
        return torch.div(x.to(torch.int64) * k, ds.n_levels, rounding_mode="floor").to(torch.uint8)

    return ImageData(
        name=name, kind="levels", n_levels=k, image_shape=ds.image_shape,
        train=requantise(ds.train), valid=requantise(ds.valid), test=requantise(ds.test),
        description=f"{ds.description} Requantised to {k} levels as {levels_mapping(ds.n_levels, k)}; same splits.",
        files=dict(ds.files), labels=ds.labels,
    )


class LevelsSource(Source):
    """``<name>_levels<K>``: the dataset ``<name>`` requantised to ``K`` levels (:func:`requantize`)."""

    title = "grey-level datasets requantised to fewer levels"

    def _parts(self, name: str) -> tuple[str, int]:
        parts = split_levels_name(name)
        if parts is None:
            raise ValueError(f"{name!r} is not a name of the form <name>_levels<K>")
        return parts

    def serves(self, name: str) -> bool:
        parts = split_levels_name(name)
        return parts is not None and registry.find_source(parts[0]) is not None

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        base, k = self._parts(name)
        _check_levels(name, k)  # before the base is loaded
        return requantize(registry.load(base, data_dir), k)

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        """What it is made from is fetched."""
        base, _ = self._parts(name)
        return registry.fetch(base, data_dir, progress)

    def description(self, name: str) -> str:
        base, k = self._parts(name)
        return (f"{registry.description(base)} Requantised to {k} levels as level = floor(x * {k} / n), "
                f"n the number of levels of {base}; same splits.")

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        base, _ = self._parts(name)
        return registry.missing(base, data_dir)


LEVELS_SOURCE = register(LevelsSource())
