"""``<name>_levels<K>``: a dataset requantised to K grey levels, ``floor(x * K / n_levels)``.

Properties: every old level goes where the formula says (checked against an independent
computation and the boundaries of the 8-bit to 10-level case), each new level holds an
equal share of the old ones (up to one), the mapping is monotone, the splits and labels are
kept, the name loads the same data again, and a K that cannot be made is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densitybench import data
from densitybench.datasets import derived, registry
from densitybench.datasets.core import SPLITS, ImageData

from conftest import require_dataset


def every_level(n_levels: int) -> ImageData:
    """A small dataset whose splits hold every level ``0 .. n_levels - 1`` (in a shuffled order)."""
    g = torch.Generator().manual_seed(0)
    x = torch.arange(n_levels, dtype=torch.uint8)[torch.randperm(n_levels, generator=g)].reshape(-1, 1, 1, 1)
    labels = {s: torch.arange(len(x)) + i for i, s in enumerate(SPLITS)}
    return ImageData(name="toy", kind="levels", n_levels=n_levels, image_shape=(1, 1, 1), train=x, valid=x.flip(0),
                     test=x[: n_levels // 2], description="toy.", labels=labels)


@pytest.mark.parametrize("n_levels,k", [(256, 10), (17, 10), (256, 2), (256, 255), (17, 16), (5, 3)])
def test_every_level_maps_where_the_formula_says(n_levels, k):
    ds = every_level(n_levels)
    out = derived.requantize(ds, k)
    assert (out.kind, out.n_levels, out.image_shape) == ("levels", k, ds.image_shape)
    for s in SPLITS:
        old, new = getattr(ds, s).numpy().astype(np.int64), getattr(out, s)
        assert new.dtype == torch.uint8 and new.shape == getattr(ds, s).shape
        expected = np.floor(old * k / n_levels + 1e-12).astype(np.int64)  # in floating point, independently
        np.testing.assert_array_equal(new.numpy(), expected)
    # monotone, onto 0..K-1, and each new level holds floor(n/K) or ceil(n/K) old ones
    order = ds.train.flatten().argsort()
    assert torch.all(out.train.flatten()[order].diff() >= 0)
    counts = torch.bincount(out.train.flatten().long(), minlength=k)
    assert len(counts) == k and counts.sum() == n_levels
    assert set(counts.tolist()) <= {n_levels // k, -(-n_levels // k)}
    # level_ranges says the same as the data
    for j, (a, b) in enumerate(derived.level_ranges(n_levels, k)):
        assert counts[j] == b - a + 1
        assert torch.all(out.train.flatten()[(ds.train.flatten() >= a) & (ds.train.flatten() <= b)] == j)


def test_eight_bit_to_ten_levels_boundaries_and_counts():
    out = derived.requantize(every_level(256), 10)
    level = {int(x): int(y) for x, y in zip(every_level(256).train.flatten(), out.train.flatten())}
    assert [level[x] for x in (0, 25, 26, 51, 52, 76, 77, 230, 231, 255)] == [0, 0, 1, 1, 2, 2, 3, 8, 9, 9]
    assert torch.bincount(out.train.flatten().long()).tolist() == [26, 26, 25, 26, 25, 26, 26, 25, 26, 25]
    assert "0..25 -> 0" in out.description and "231..255 -> 9" in out.description
    assert "floor(x * 10 / 256)" in out.description


def test_splits_labels_and_name_are_kept():
    ds = data.load("digits")
    out = derived.requantize(ds, 10)
    assert out.name == "digits_levels10"
    assert out.sizes() == ds.sizes()
    for s in SPLITS:
        assert torch.equal(out.labels[s], ds.labels[s])
        assert out.train.max() == 9 and out.train.min() == 0
    assert out.description.startswith(ds.description)
    assert "levels as level = floor(x * 10 / 17)" in out.description


def assert_same(a: ImageData, b: ImageData):
    assert (a.name, a.kind, a.n_levels, a.image_shape) == (b.name, b.kind, b.n_levels, b.image_shape)
    for s in SPLITS:
        assert torch.equal(getattr(a, s), getattr(b, s)), s


@pytest.mark.parametrize("name", ["digits_levels10", "digits_levels2", "digits_levels10_binarized_seed3"])
def test_names_round_trip(name):
    ds = data.load(name)
    assert ds.name == name
    assert_same(ds, data.load(ds.name))
    assert registry.description(name).startswith(registry.description("digits"))
    assert registry.missing(name) is None


def test_requantized_data_loads_again_by_its_name():
    out = derived.requantize(data.load("digits"), 7)
    assert_same(out, data.load(out.name))
    assert out.description == data.load(out.name).description


def test_mnist_levels10_round_trips_with_mnist_splits():
    require_dataset("mnist")
    base, ds = data.load("mnist"), data.load("mnist_levels10")
    assert ds.sizes() == base.sizes() == {"train": 50000, "valid": 10000, "test": 10000}
    assert_same(ds, data.load(ds.name))
    for s in SPLITS:
        x = getattr(base, s).long()
        assert torch.equal(getattr(ds, s).long(), x * 10 // 256)


@pytest.mark.parametrize("name,message", [
    ("digits_levels1", r"digits_levels1: cannot requantise to 1 levels: at least 2 are needed"),
    ("digits_levels0", r"digits_levels0: cannot requantise to 0 levels: at least 2 are needed"),
    ("digits_levels17", r"digits_levels17: cannot requantise to 17 levels: its base has only 17 levels \(0..16\), "
                        r"so K must be 2 .. 16"),
    ("digits_levels40", r"its base has only 17 levels"),
    ("digits_binary_levels2", r"digits_binary_levels2: digits_binary is binary"),
])
def test_a_k_that_cannot_be_made_is_refused(name, message):
    with pytest.raises(ValueError, match=message):
        data.load(name)


def test_requantize_refuses_a_non_integer_k():
    with pytest.raises(ValueError, match="must be an integer"):
        derived.requantize(every_level(17), 2.5)


def test_only_names_of_the_form_are_served():
    assert derived.split_levels_name("mnist_levels10") == ("mnist", 10)
    assert derived.split_levels_name("mnist_levels010") is None  # one spelling per K
    assert derived.split_levels_name("mnist") is None
    assert not derived.LEVELS_SOURCE.serves("no_such_set_levels10")
    with pytest.raises(ValueError, match="unknown dataset 'no_such_set_levels10'"):
        data.load("no_such_set_levels10")
