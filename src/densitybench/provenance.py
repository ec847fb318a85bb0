"""Provenance of a record: the commit of the code, the package versions and the device.

Everything here is computed when a record is written, never when the package is imported:
the commit describes the code as it is at that moment.
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__, paths

#: packages whose versions every record carries
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib")


def git_commit(repo=None) -> dict:
    """The commit checked out in ``repo`` (default: the project's root) and whether the code
    (``src``, ``notebooks``, ``pyproject.toml``) differs from it.

    Returns:
        ``{"commit": sha or None, "dirty": bool or None}``; both None outside a git checkout
        or where git is absent.
    """

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo or paths.REPO_ROOT, capture_output=True, text=True,
                              timeout=30, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--", "src", "notebooks", "pyproject.toml").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@functools.cache
def versions() -> dict:
    """Python's version and those of the project and of :data:`PACKAGES` (None where absent).

    Cached: the installed packages do not change while a process runs.
    """
    import importlib.metadata as md

    out = {"python": platform.python_version(), "densitybench": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def describe_device(device: torch.device) -> str:
    """``"cuda: <name>"`` or ``"cpu: <model name>, <n> threads"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def provenance(device: torch.device) -> dict:
    """The provenance fields of a record, computed now.

    Returns:
        ``git_commit``, ``git_dirty``, ``versions``, ``device``, ``platform`` and ``timestamp``
        (UTC, to the second).
    """
    git = git_commit()
    return {
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "versions": versions(),
        "device": describe_device(device),
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
