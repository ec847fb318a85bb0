"""Every path the project uses resolves here, never from the current directory."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (two levels above this file in a source checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Environment variable that names the data directory.
DATA_ENV = "DENSITYBENCH_DATA"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$DENSITYBENCH_DATA``, else ``<repo>/data``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return REPO_ROOT / "data"


def results_dir(profile: str, root: str | os.PathLike | None = None) -> Path:
    """Where the runs of one study profile write their records: ``<repo>/results/<profile>``."""
    base = Path(root) if root is not None else REPO_ROOT / "results"
    return (base / profile).resolve()


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def book_dir() -> Path:
    return REPO_ROOT / "book"


def resolve(path: str | os.PathLike | None, profile: str) -> Path:
    """A run folder given to a notebook: None -> ``results_dir(profile)``; a relative path is
    taken from the repository root (so executed notebooks carry no machine-specific path)."""
    if path is None:
        return results_dir(profile)
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def relative_to_repo(path: str | os.PathLike) -> str:
    """``path`` relative to the repository root when it lies inside it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(p)
