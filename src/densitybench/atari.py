"""Binarized Atari frames, generated offline with the Arcade Learning Environment.

The generator, its cache and the registry of Atari datasets live in
:mod:`densitybench.datasets.atari` (see its docstring for how a dataset is made); this
module re-exports them under the names the notebooks and the study use.
"""

from __future__ import annotations

from . import paths  # noqa: F401  (atari.paths.REPO_ROOT is where the default cache is)
from .datasets import atari as _impl
from .datasets.atari import (  # noqa: F401
    ATARI,
    CACHE_ENV,
    EPISODE_SEED_STRIDE,
    FORMAT_VERSION,
    SCREEN_SHAPE,
    SPLITS,
    AtariCacheError,
    AtariSpec,
    _play_episode,
    cache_dir,
    cache_path,
    episodes,
    generate,
    load_atari,
    preprocess,
)

__all__ = [name for name in _impl.__all__ if name not in ("AtariSource", "SOURCE")]
