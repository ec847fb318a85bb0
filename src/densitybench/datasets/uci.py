"""The eight binary datasets of Larochelle, Bengio & Turian (2010) used by NADE and MADE
(adult, connect4, dna, mushrooms, nips, ocr_letters, rcv1, web): MADE's ``<name>.npz`` or
Larochelle's three text files, all in ``<data_dir>/uci_binary/``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import SPLITS
from .files import FileSource
from .readers import OCR_LETTER_DIMS
from .registry import register
from .verify import DatasetSpec, FileSpec

__all__ = ["SOURCE", "UCI_BINARY"]

_LAROCHELLE_DATASETS = "http://www.cs.toronto.edu/~larocheh/public/datasets/"
_MADE_RAW = "https://raw.githubusercontent.com/mgermain/MADE/master/datasets/"
_MADE_RELEASE = "https://github.com/mgermain/MADE/releases/download/ICML2015/"


@dataclass(frozen=True)
class _UCI:
    """One UCI binary dataset: dimension, split sizes, Larochelle's files, what it is."""

    name: str
    n_dims: int
    sizes: tuple[int, int, int]  # train, valid, test
    #: Larochelle's files: path under ``_LAROCHELLE_DATASETS`` with ``{}`` for the split
    canonical: str
    format: str
    npz_url: str
    what: str
    #: SHA-256 of each split's uint8 array, or None where no verified copy was available
    sha256: dict[str, str] | None = None


#: The eight binary datasets of Larochelle, Bengio & Turian (2010), as used by NADE and MADE.
UCI_BINARY: dict[str, _UCI] = {
    u.name: u
    for u in (
        _UCI(
            "adult", 123, (5000, 1414, 26147), "adult/a5a_{}.libsvm", "libsvm", _MADE_RAW + "adult.npz",
            "UCI Adult (census records; LIBSVM's a5a encoding): 14 attributes as 123 binary "
            "indicators; feature k of the libsvm files is column k-1, and feature 123 occurs "
            "only in the test file",
            {
                "train": "51f7e476ddebd27c873cfaf59d08af97930089470434483e8023bfb529c37e4f",
                "valid": "e7e7fe06cb496ce3a400b320fa238e156123c3d155543740250cb10e664c4aa3",
                "test": "ec473624d775ed4f946238b5e944f8e6895b583a9d1c4c24a01f5cec717a2f60",
            },
        ),
        _UCI(
            "connect4", 126, (16000, 4000, 47557), "connect-4/connect-4_{}.libsvm", "libsvm",
            _MADE_RAW + "connect4.npz",
            "UCI Connect-4 (legal 8-ply board positions): 42 cells x 3 states as 126 binary indicators",
        ),
        _UCI(
            "dna", 180, (1400, 600, 1186), "dna/dna_scale_{}.libsvm", "libsvm", _MADE_RAW + "dna.npz",
            "Statlog DNA (primate splice-junction sequences; LIBSVM's dna.scale): 60 nucleotides "
            "as 180 binary indicators",
            {
                "train": "425f2f6eb1b989bd0e41e88fd0c004bfee8c2b1b398b50a974ea0764966a30aa",
                "valid": "99063a569f2e3733e99aacc610a295ce92a604c41f102e7c5fcc67799bc96c7c",
                "test": "183aa2a8acb410c9d950e26030da5b30e3176da04b2ed2566c03565a5c3479a1",
            },
        ),
        _UCI(
            "mushrooms", 112, (2000, 500, 5624), "mushrooms/mushrooms_{}.libsvm", "libsvm",
            _MADE_RAW + "mushrooms.npz",
            "UCI Mushroom (descriptions of gilled mushrooms; LIBSVM's mushrooms): 22 categorical "
            "attributes as 112 binary indicators",
            {
                "train": "bdc96ef5b74d908aa8f0665aad1a060c95c29e3f0140e0c004f538785e7f37f4",
                "valid": "a02bb4bbe086e12738e27dca9436d43823ee5c6c6a2f684eb4eff51ebf924ecc",
                "test": "02d2b76d77c88d8f7e9c4e5b6be68e16d242c5e9db55b16bea81a953c3823d3c",
            },
        ),
        _UCI(
            "nips", 500, (400, 100, 1240), "nips-0-12/nips-0-12_all_shuffled_bidon_target_{}.amat",
            "amat-target", _MADE_RAW + "nips.npz",
            "NIPS 0-12 (papers of NIPS volumes 0 to 12): presence of each of 500 frequent words",
            {
                "train": "d3533784ce37bd8ca6c195160c47b7fc18447917e639781f6b9f4ceee743bf37",
                "valid": "b389c16873bbb94a617d83a5525e6be9bc9ef6d00f49621e1c8dcfed85f9ceea",
                "test": "7163c55ede1f8077131fb918de107b5782dce395e1c5b9fe33d8b82236a8ec9a",
            },
        ),
        _UCI(
            "ocr_letters", OCR_LETTER_DIMS, (32152, 10000, 10000), "ocr_letters/ocr_letters_{}.txt",
            "ocr_letters", _MADE_RAW + "ocr_letters.npz",
            "OCR letters (handwritten lower-case letters of Kassel's set, as prepared by Taskar et "
            "al.): 16 x 8 binary pixels, flattened to 128 values",
        ),
        _UCI(
            "rcv1", 150, (40000, 10000, 150000), "rcv1/rcv1_all_subset.binary_{}_voc_150.amat",
            "amat-target", _MADE_RELEASE + "rcv1.npz",
            "Reuters RCV1 (news stories): presence of each of 150 frequent words",
        ),
        _UCI(
            "web", 300, (14000, 3188, 32561), "web/w6a_{}.libsvm", "libsvm", _MADE_RAW + "web.npz",
            "Web (LIBSVM's w6a, the web page categorisation data of Platt 1998): 300 binary keyword attributes",
        ),
    )
}

def _uci_layouts(u: _UCI) -> tuple[tuple[FileSpec, ...], ...]:
    """MADE's ``<name>.npz`` (one file, arrays train/valid/test) or Larochelle's three files,
    checked by the recorded checksums where there are some, else by shape and 0/1 values."""
    kind = "sha256-arrays" if u.sha256 is not None else "shape"

    def expected(split: str):
        return u.sha256[split] if u.sha256 is not None else (u.sizes[SPLITS.index(split)], u.n_dims)

    npz = FileSpec(f"{u.name}.npz", (u.npz_url,), (kind, {s: expected(s) for s in SPLITS}), "npz")
    canonical = tuple(
        FileSpec(
            u.canonical.format(s).rsplit("/", 1)[-1],
            (_LAROCHELLE_DATASETS + u.canonical.format(s),),
            (kind, {"split": expected(s)}),
            u.format,
        )
        for s in SPLITS
    )
    return (npz,), canonical


def _read_uci(spec: DatasetSpec, arrays: dict[str, np.ndarray]):
    """MADE's npz (arrays ``train``, ``valid``, ``test``; other arrays such as adult's
    ``*_labels`` are ignored) or Larochelle's three files in the order train, valid, test."""
    npz = f"{spec.name}.npz"
    if npz in arrays:
        z = arrays[npz]
        return z["train"], z["valid"], z["test"]
    train, valid, test = arrays.values()
    return train, valid, test


def _uci_description(u: _UCI) -> str:
    n_train, n_valid, n_test = u.sizes
    files = u.canonical.rsplit("/", 1)[-1].format("{train,valid,test}")
    verified = (
        "Verified by the SHA-256 of each split's uint8 array."
        if u.sha256 is not None
        else "The content checksum is not recorded yet (no verified copy was available): only "
        "the shape of each split and that its values are 0/1 are checked."
    )
    return (
        f"{u.what}. {n_train:,} train / {n_valid:,} valid / {n_test:,} test examples, the split of "
        f"Larochelle, Bengio & Turian (2010) used by NADE and MADE, each a vector of {u.n_dims} "
        f"values 0/1 (loaded as uint8 of shape (N, 1, 1, {u.n_dims})). Source: Larochelle's "
        f"{files} or MADE's {u.name}.npz. {verified}"
    )


SOURCE = register(FileSource([
    DatasetSpec(
        name=u.name,
        folder="uci_binary",
        kind="binary",
        n_levels=2,
        image_shape=(1, 1, u.n_dims),
        layouts=_uci_layouts(u),
        reader=_read_uci,
        description=_uci_description(u),
        citation="larochelle2010rbforest",
    )
    for u in UCI_BINARY.values()
], title="the UCI binary sets of NADE and MADE"))
