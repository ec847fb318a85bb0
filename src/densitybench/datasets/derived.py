"""Datasets derived from another by a stochastic binarization: ``<name>_binarized_seed<k>``.

:func:`~densitybench.datasets.core.binarize_stochastic` names its result so; this source
reads such a name back as the same draw from the dataset ``<name>`` (any name a source
serves: a registered dataset, an image folder, ...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import registry
from .core import ImageData, binarize_stochastic
from .registry import Source, register

__all__ = ["BinarizedSource", "SOURCE", "split_binarized_name"]

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
