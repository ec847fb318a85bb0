"""Sample-quality metrics: each on data whose answer is known."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densitybench import data, metrics


@pytest.fixture(scope="module")
def digits():
    d = data.load("digits")
    return torch.cat([d.train, d.valid, d.test]).float() / 16  # (1797, 1, 8, 8) in [0, 1]


def blur(x, width):
    if width == 0:
        return x
    k = torch.ones(1, 1, 2 * width + 1, 2 * width + 1) / (2 * width + 1) ** 2
    return F.conv2d(x, k, padding=width)


def test_frechet_distance_is_zero_on_itself_and_grows_with_noise_and_blur(digits):
    x = digits.reshape(len(digits), -1)
    assert metrics.frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    noisy = [metrics.frechet_distance(x, x + s * torch.randn(x.shape, generator=g)) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(noisy, noisy[1:])) and noisy[0] > 0
    blurred = [metrics.frechet_distance(x, blur(digits, w).reshape(len(x), -1)) for w in (1, 2, 3)]
    assert all(a < b for a, b in zip(blurred, blurred[1:])) and blurred[0] > 0


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (200000, 2))
    b = rng.normal([1, 0], [2, 1], (200000, 2))
    # |mu|^2 + tr(I + diag(4, 1) - 2 diag(2, 1)) = 1 + (1 + 4 - 4) + (1 + 1 - 2) = 2
    assert metrics.frechet_distance(a, b) == pytest.approx(2.0, abs=0.05)


def test_precision_and_recall(digits):
    x = digits.reshape(len(digits), -1)[:600]
    same = metrics.precision_recall(x, x)
    assert same["precision"] == 1 and same["recall"] == 1
    far = metrics.precision_recall(x, x + 10)
    assert far["precision"] == 0 and far["recall"] == 0
    # generated points that cover only the zeros: precise, with little recall
    d = data.load("digits")
    zeros = (d.train[d.labels["train"] == 0].float() / 16).reshape(-1, 64)
    few = metrics.precision_recall(x, zeros)
    assert few["precision"] > 0.8 and few["recall"] < 0.3


def test_precision_and_recall_use_each_sets_own_radii():
    """A tight real cluster and a sparse ring of generated points around it: the ring's wide balls
    cover every real point (recall 1), the cluster's narrow balls cover no generated point
    (precision 0)."""
    rng = np.random.default_rng(0)
    real = rng.normal(0, 0.01, (500, 2))
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = 0.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    pr = metrics.precision_recall(real, ring)
    assert pr["precision"] == 0 and pr["recall"] == 1


def test_mode_coverage():
    uniform = metrics.mode_coverage(np.arange(1000) % 10, 10)
    assert uniform["entropy"] == pytest.approx(np.log(10)) and uniform["tv_from_uniform"] == pytest.approx(0)
    collapsed = metrics.mode_coverage(np.full(100, 3), 10)
    assert collapsed["entropy"] == 0 and collapsed["tv_from_uniform"] == pytest.approx(0.9)


def test_c2st_is_chance_on_two_halves_of_the_same_data_and_high_on_different_data(digits):
    x = digits.reshape(len(digits), -1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    a, b = x[perm[:800]], x[perm[800:1600]]
    same = metrics.c2st(a, b)
    assert abs(same["accuracy"] - 0.5) < 3 * 0.5 / np.sqrt(same["n_test"]) + 0.02
    diff = metrics.c2st(a, blur(b.reshape(-1, 1, 8, 8), 1).reshape(len(b), -1))
    assert diff["accuracy"] > 0.9


def test_data_copying_detects_copies_and_passes_held_out_data(digits):
    x = digits.reshape(len(digits), -1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    train, test, held_out = x[perm[:1000]], x[perm[1000:1400]], x[perm[1400:]]
    copies = metrics.data_copying(train, test, train[:400], n_cells=5)
    fresh = metrics.data_copying(train, test, held_out, n_cells=5)
    assert copies["C_T"] < -5  # training images are at distance 0 from the training set
    assert abs(fresh["C_T"]) < 2
    far = metrics.data_copying(train, test, held_out + 0.3, n_cells=5)
    assert far["C_T"] > 5  # farther from the training set than test images: underfitting
