"""Datasets made of downloaded files: load them verified, fetch them from their mirrors.

Files are looked for in ``<data_dir>/<dataset folder>/``; the data directory is an
argument, else ``$DENSITYBENCH_DATA``, else ``<repo>/data`` (:func:`densitybench.paths.data_dir`).
Nothing is downloaded implicitly: ``densitybench data fetch NAME`` does that, and it never
overwrites a file.

:data:`REGISTRY` holds the :class:`~densitybench.datasets.verify.DatasetSpec` of every
file-based dataset; a :class:`FileSource` serves some of them and looks each spec up there
when it is asked, so a spec replaced in :data:`REGISTRY` is the one used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .core import DataMissingError, ImageData
from .fetch import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, download, remove_stale
from .registry import Source
from .verify import DatasetSpec, find_layout, verify

__all__ = ["REGISTRY", "FileSource", "load_files", "fetch_files"]

#: ``{name: DatasetSpec}`` of every dataset made of files.
REGISTRY: dict[str, DatasetSpec] = {}


def load_files(spec: DatasetSpec, data_dir: str | os.PathLike | None = None) -> ImageData:
    """Load the dataset ``spec`` from its files in the data directory, verifying each.

    Raises:
        DataMissingError: a file is absent; the message names it, where it was looked
            for and the fetch command.
        ChecksumError: a file's content differs from the canonical one.
    """
    root = paths.data_dir(data_dir)
    layout, folder = find_layout(spec, root)
    arrays = {f.name: verify(spec, f, folder / f.name) for f in layout}
    train, valid, test, *rest = spec.reader(spec, arrays)
    c, h, w = spec.image_shape
    labels = ({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in rest[0].items()}
              if rest else None)

    def t(a):
        # a copy in C order: readers hand over column-major arrays (the binarized MNIST's .npz,
        # the transposed Caltech silhouettes), and minibatches gathered from a strided split
        # cost every epoch
        return torch.from_numpy(np.array(a, dtype=np.uint8, order="C").reshape(-1, c, h, w))

    return ImageData(
        name=spec.name,
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


def fetch_files(
    spec: DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    deadline: float = DEFAULT_DEADLINE,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Download the files of ``spec``'s fetch layout into the data directory and verify them.

    Files already present are verified, not downloaded again. A file that is present but
    fails verification is never overwritten: the error says to delete it first. Each file
    is downloaded from its URLs in turn (a mirror that fails, or serves content that fails
    verification, is skipped with its reason) within ``deadline`` seconds per URL, into a
    temporary folder, and moved into place only once verified
    (:func:`densitybench.datasets.fetch.download`). Temporary folders that killed fetches
    left in the data directory are removed first.

    Returns:
        The dataset's folder, ``<data_dir>/<spec.folder>``.

    Raises:
        ChecksumError: a file already present is not the canonical one.
        FetchError: no URL of a file gave a verified download; every URL is listed with its reason.
    """
    root = paths.data_dir(data_dir)
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale(root)
    for f in spec.fetch_layout():
        target = folder / f.name
        if target.exists():
            verify(spec, f, target)
            if progress:
                print(f"{spec.name}: {target} present and verified")
            continue
        download(
            f.urls,
            target,
            lambda part, f=f: verify(spec, f, part, remedy="The download was discarded."),
            name=spec.name,
            deadline=deadline,
            timeout=timeout,
            progress=progress,
        )
    return folder


class FileSource(Source):
    """Datasets made of files in the data directory, each described by a ``DatasetSpec``.

    Args:
        specs: the datasets; they are added to :data:`REGISTRY`.
        title: what the source is.
    """

    def __init__(self, specs: list[DatasetSpec], title: str = ""):
        self.title = title
        self._names = []
        for spec in specs:
            REGISTRY[spec.name] = spec
            self._names.append(spec.name)

    def names(self) -> list[str]:
        return [n for n in self._names if n in REGISTRY]

    def spec(self, name: str) -> DatasetSpec:
        return REGISTRY[name]

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        return load_files(self.spec(name), data_dir)

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        return fetch_files(self.spec(name), data_dir, progress)

    def description(self, name: str) -> str:
        return self.spec(name).description

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        try:
            find_layout(self.spec(name), paths.data_dir(data_dir))
        except DataMissingError as e:
            return str(e).splitlines()[0]
        return None
