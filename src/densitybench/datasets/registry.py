"""The registry of sources: which source serves a dataset name, and the calls every source answers.

A :class:`Source` is a family of datasets that are found, loaded and fetched the same way
(idx files, the UCI sets, generated Atari frames, image folders, ...). Each source module
makes its source and calls :func:`register` when it is imported; :func:`load`, :func:`fetch`,
:func:`check` and :func:`names` only ask the registry. A name is served by

1. the source that lists it among its :meth:`Source.names` (the registered datasets), else
2. the first source, in the order they were registered, whose :meth:`Source.serves` accepts
   it (names made of parts: ``image_folder:<dir>?...``, ``<name>_binarized_seed<k>``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .core import DataError, DataMissingError, ImageData

__all__ = [
    "Source",
    "register",
    "sources",
    "find_source",
    "source_for",
    "names",
    "load",
    "fetch",
    "check",
    "description",
    "missing",
]


class Source:
    """A family of datasets that are loaded and fetched the same way.

    A subclass says which names it serves and implements :meth:`load`, :meth:`fetch` and
    :meth:`description`; :meth:`check` and :meth:`missing` have defaults built on them.
    Every method takes the dataset's name, so one source serves many datasets.
    """

    #: what the source is, a few words (for listings and errors)
    title: str = ""

    def names(self) -> list[str]:
        """The registered datasets this source serves, in the order :func:`names` lists them."""
        return []

    def serves(self, name: str) -> bool:
        """Whether ``name`` is one of this source's datasets (by default: one of :meth:`names`)."""
        return name in self.names()

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        """Load and verify the dataset ``name``; its ``ImageData.name`` loads it again.

        Raises:
            DataMissingError: its files are absent (the message says how to get them).
            ChecksumError: a file's content is not the canonical one.
        """
        raise NotImplementedError

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        """Get the dataset ``name`` onto this machine (download and verify, or generate); where it is."""
        raise NotImplementedError

    def description(self, name: str) -> str:
        """What the dataset ``name`` is, without loading it."""
        raise NotImplementedError

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        """Why ``name`` cannot be loaded without fetching it first, one line; None when it can
        (its files are present, or it is made without files). Nothing is loaded."""
        return None

    def check(self, name: str, data_dir: str | os.PathLike | None = None) -> str:
        """``"ok"``, ``"missing"`` or ``"CORRUPT: <first line of the error>"``, by loading ``name``."""
        try:
            self.load(name, data_dir)
        except DataMissingError:
            return "missing"
        except DataError as e:
            return "CORRUPT: " + str(e).splitlines()[0]
        return "ok"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.title or ', '.join(self.names())}>"


_SOURCES: list[Source] = []


def register(source: Source) -> Source:
    """Add ``source`` to the registry (after those registered before it); returns it."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def sources() -> list[Source]:
    """The registered sources, in the order they were registered."""
    return list(_SOURCES)


def find_source(name: str) -> Source | None:
    """The source that serves ``name``, or None (see the module docstring for the order)."""
    for source in _SOURCES:
        if name in source.names():
            return source
    for source in _SOURCES:
        if source.serves(name):
            return source
    return None


def source_for(name: str) -> Source:
    """The source that serves ``name``.

    Raises:
        ValueError: no source serves it; the message lists the registered names.
    """
    source = find_source(name)
    if source is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names())}")
    return source


def names() -> list[str]:
    """Every registered dataset, source by source."""
    return [n for source in _SOURCES for n in source.names()]


def load(name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
    """Load and verify the dataset ``name`` from the data directory (see :meth:`Source.load`)."""
    return source_for(name).load(name, data_dir)


def fetch(name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download (or generate) the dataset ``name`` and verify it (see :meth:`Source.fetch`)."""
    return source_for(name).fetch(name, data_dir, progress)


def description(name: str) -> str:
    """What the dataset ``name`` is, without loading it."""
    return source_for(name).description(name)


def missing(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """Why ``name`` cannot be loaded without a fetch, or None (see :meth:`Source.missing`)."""
    return source_for(name).missing(name, data_dir)


def check(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Verify every registered dataset that is present: ``{name: "ok" | "missing" | error}``."""
    return {name: source_for(name).check(name, data_dir) for name in names()}
