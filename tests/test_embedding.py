"""The classifier whose features the sample metrics use."""

import numpy as np
import pytest
import torch

from densitybench import data, embedding


@pytest.fixture(scope="module")
def trained():
    d = data.load("digits")
    model, record = embedding.train_classifier(d, epochs=15, batch_size=64, patience=15, seed=0, device="cpu")
    return d, model, record


def test_classifier_learns_the_digits(trained):
    d, model, record = trained
    assert record["test"]["accuracy"] > 0.9
    assert record["test_binarized"]["accuracy"] > 0.8  # it was trained on binarized images too
    assert record["test"]["accuracy_se"] == pytest.approx(
        np.sqrt(record["test"]["accuracy"] * (1 - record["test"]["accuracy"]) / len(d.test)))
    assert record["valid_accuracy"] == max(h["valid_accuracy"] for h in record["history"])


def test_features_are_deterministic_and_separate_the_classes(trained):
    d, model, _ = trained
    x = d.test.float() / 16
    f1, f2 = embedding.embed(model, x), embedding.embed(model, x)
    assert f1.shape == (len(x), 128) and np.array_equal(f1, f2)
    y = d.labels["test"].numpy()
    centroids = np.stack([f1[y == c].mean(0) for c in range(10)])
    nearest = ((f1[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == y).mean() > 0.85


def test_needs_labels():
    d = data.load("digits_binary")
    unlabelled = data.ImageData(name="x", kind="levels", n_levels=2, image_shape=d.image_shape,
                                train=d.train, valid=d.valid, test=d.test)
    with pytest.raises(ValueError, match="no labels"):
        embedding.train_classifier(unlabelled)


def test_random_shift_translates_each_image_by_at_most_shift_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 12, 12)
    x[:, 0, 4:8, 5:7] = torch.rand(64, 4, 2)  # content two or more pixels from every edge
    y = embedding.random_shift(x, 2, g)
    assert y.shape == x.shape
    offsets = set()
    for a, b in zip(x, y):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(torch.roll(a, (dy, dx), dims=(1, 2)), b)]
        assert len(matches) == 1  # a pure translation, nothing lost over the edge
        offsets.add(matches[0])
    assert len(offsets) > 10  # each image draws its own offset
    assert torch.equal(embedding.random_shift(x, 0, g), x)
