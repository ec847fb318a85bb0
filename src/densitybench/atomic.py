"""Files written whole or not at all: a temporary file beside the target, then a rename.

A process killed while writing leaves the previous file (or none), never half of a new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def replace_with(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Flush ``tmp`` to disk and rename it onto ``path``."""
    tmp, path = Path(tmp), Path(path)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_text(text)
    return replace_with(tmp, path)


def write_json(path: str | os.PathLike, obj, default=None) -> Path:
    """Strict JSON (a NaN or an infinity is an error, never written)."""
    return write_text(path, json.dumps(obj, indent=2, default=default, allow_nan=False) + "\n")


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    path = Path(path)
    tmp = _tmp(path)
    fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)
    return replace_with(tmp, path)


def write_with(path: str | os.PathLike, write) -> Path:
    """``write(f)`` into a temporary binary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        write(f)
    return replace_with(tmp, path)


def save_numpy(path: str | os.PathLike, array) -> Path:
    import numpy as np

    return write_with(path, lambda f: np.save(f, array))


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    import numpy as np

    return write_with(path, lambda f: np.savez_compressed(f, **arrays))


def save_torch(path: str | os.PathLike, obj) -> Path:
    import torch

    return write_with(path, lambda f: torch.save(obj, f))
