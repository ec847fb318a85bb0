"""Names round-trip: the name a dataset carries loads the very same data again.

A run records ``ds.name`` as its dataset; ``load(load(n).name)`` must equal ``load(n)`` in name,
kind, shape and content, for every registered source whose data is here, for derived
(stochastically binarized) names, and for image folders read with any settings.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from densitybench import data
from densitybench.datasets import atari, registry
from densitybench.datasets.core import SPLITS, ImageData
from densitybench.datasets.files import FileSource
from densitybench.datasets.registry import Source


def assert_same(a: ImageData, b: ImageData):
    assert a.name == b.name
    assert (a.kind, a.n_levels, a.image_shape) == (b.kind, b.n_levels, b.image_shape)
    for s in SPLITS:
        x, y = getattr(a, s), getattr(b, s)
        assert x.dtype == y.dtype == torch.uint8 and x.shape == y.shape and torch.equal(x, y), s
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert all(torch.equal(a.labels[s], b.labels[s]) for s in SPLITS)
    assert a.files == b.files


def roundtrip(name: str, data_dir=None) -> ImageData:
    ds = data.load(name, data_dir)
    again = data.load(ds.name)  # no data directory: the name alone says where the data are
    assert_same(ds, again)
    assert again.name == ds.name, "a name is a fixed point of load"
    return ds


@pytest.mark.parametrize("name", data.names() + ["digits_binarized_seed3", "digits_binarized_seed0"])
def test_a_registered_dataset_loads_again_by_its_name(name):
    reason = data.missing(name)
    if reason:
        pytest.skip(f"data absent: {reason}")
    if name in atari.ATARI and not atari.cache_path(name).is_file():
        pytest.skip(f"{name} is not generated yet (generating it takes minutes): {atari.cache_path(name)}")
    ds = roundtrip(name)
    assert ds.name == name
    source = data.source_for(name)
    if isinstance(source, FileSource) or name.startswith("digits") and "_binarized_" not in name:
        assert data.description(name) == ds.description  # known without loading


def test_an_atari_dataset_loads_again_by_its_name(tmp_path, monkeypatch):
    """A registered Atari name, made small so that generating it takes a second."""
    pytest.importorskip("ale_py")
    monkeypatch.setenv(atari.CACHE_ENV, str(tmp_path))
    small = dataclasses.replace(atari.ATARI["atari_space_invaders"], n_episodes=7, max_frames=120)
    monkeypatch.setitem(atari.ATARI, "atari_space_invaders", small)
    ds = roundtrip("atari_space_invaders")
    assert ds.name == "atari_space_invaders" and (tmp_path / "atari_space_invaders.npz").is_file()


# --------------------------------------------------------------------------- image folders


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _folder(root, n=12, shape=(9, 7), rgb=False, seed=0):
    """``n`` random images of one size in two subfolders, a .bmp among them and a non-image."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = rng.integers(0, 256, shape + ((3,) if rgb else ()))
        _png(root / f"part{i % 2}" / f"img{i:02d}.{'bmp' if i == 5 else 'png'}", a)
    (root / "notes.txt").write_text("not an image")
    return root


SETTINGS = [
    {},
    {"size": (5, 4), "binarize": 100, "seed": 3},
    {"size": (8, 8), "binarize": 128, "seed": 0},
    {"size": None},
    {"grey": False, "size": (4, 4)},
    {"n_valid": 0.25, "n_test": 1 / 3, "size": (3, 3)},
    {"extensions": ("PNG",), "size": (6, 6)},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "&".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_an_image_folder_loads_again_by_its_name(tmp_path, settings):
    root = _folder(tmp_path / "images", rgb=settings.get("grey") is False)
    name = data.image_folder_name(root, **settings)
    ds = roundtrip(name)
    direct = data.load_image_folder(root, **settings)
    assert_same(ds, direct)
    assert ds.name == data.image_folder_name(root.resolve(), **settings)
    if settings.get("binarize") is not None:
        assert f"binarize={settings['binarize']}" in ds.name and ds.kind == "binary"
    if "extensions" in settings:
        assert sum(ds.sizes().values()) == 11, "the .bmp is not read"
    # what load_image_folder itself names its result loads it again, too
    assert_same(data.load(direct.name), direct)


def test_a_relative_image_folder_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data" / "faces")
    ds = roundtrip("image_folder:faces?size=8x8&binarize=128&seed=0", tmp_path / "data")
    assert ds.name == f"image_folder:{root.resolve()}?size=8x8&binarize=128"
    monkeypatch.chdir(tmp_path)  # not taken from the current directory either
    assert_same(data.load(ds.name), ds)


@pytest.mark.parametrize("folder", ["faces_binarized_seed2", "what?ever"])
def test_a_folder_whose_name_looks_like_another_name(tmp_path, folder):
    root = _folder(tmp_path / folder, n=6)
    ds = roundtrip(f"image_folder:{root}?size=64x64")  # the defaults, written out
    assert ds.name == data.image_folder_name(root.resolve()) == f"image_folder:{root.resolve()}?size=64x64"
    assert ds.files == data.load_image_folder(root).files


@pytest.mark.parametrize("settings", [{}, {"size": (6, 6), "seed": 2}])
def test_a_binarized_image_folder_loads_again_by_its_name(tmp_path, settings):
    root = _folder(tmp_path / "images")
    drawn = data.binarize_stochastic(data.load_image_folder(root, **settings), seed=4)
    assert drawn.name.endswith("_binarized_seed4")
    again = data.load(drawn.name)
    assert_same(again, drawn)
    assert data.source_for(drawn.name) is not data.source_for(data.image_folder_name(root, **settings))


# --------------------------------------------------------------------------- the registry


def test_load_asks_the_registry_which_source_serves_a_name(monkeypatch):
    x = torch.zeros(2, 1, 1, 3, dtype=torch.uint8)

    class Toy(Source):
        title = "a toy"

        def names(self):
            return ["toy"]

        def load(self, name, data_dir=None):
            return ImageData(name, "binary", 2, (1, 1, 3), x, x[:1], x[:1], "three zeros")

        def description(self, name):
            return "three zeros"

    monkeypatch.setattr(registry, "_SOURCES", registry.sources() + [Toy()])
    assert data.names()[-1] == "toy" and data.load("toy").description == "three zeros"
    assert isinstance(data.source_for("toy"), Toy)
    # a derived name is served once its base is, and binarizing binary data is refused as before
    assert data.source_for("toy_binarized_seed1") is data.source_for("digits_binarized_seed1")
    with pytest.raises(ValueError, match="toy is already binary"):
        data.load("toy_binarized_seed1")
    monkeypatch.setattr(registry, "_SOURCES", [Toy()])
    assert data.check() == {"toy": "ok"}
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        data.load("nope")
    with pytest.raises(ValueError, match="unknown dataset 'nope_binarized_seed1'"):
        data.load("nope_binarized_seed1")
