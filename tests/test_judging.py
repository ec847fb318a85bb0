"""Judging samples end to end: sets whose answers are known go through `judging.judge`."""

import math

import numpy as np
import pytest
import torch

from densitybench import data, embedding, judging, metrics


@pytest.fixture(scope="module")
def setup():
    d = data.load("digits")
    clf, _ = embedding.train_classifier(d, epochs=8, batch_size=64, patience=8, seed=0, device="cpu")
    img = lambda x: x.float() / 16
    ref = judging.build_reference(clf, img(d.train), img(d.test), n_cells=4, seed=0)
    return d, ref, img


def test_held_out_real_images_score_like_real_data(setup):
    d, ref, img = setup
    r = judging.judge(ref, img(d.valid), n_boot=20)
    assert abs(r["c2st"] - 0.5) < 4 * r["c2st_se"] + 0.02
    assert abs(r["c_t"]) < 3
    assert r["precision"] > 0.8 and r["recall"] > 0.8
    assert r["mode_entropy"] > 0.95 * math.log(10)
    assert r["nn_q05"] > 0 and r["fd_se"] > 0


def test_a_copier_of_training_images_is_caught(setup):
    d, ref, img = setup
    r = judging.judge(ref, img(d.train[:300]), n_boot=20)
    assert r["c_t"] < -5
    assert r["nn_q05"] == 0 and r["nn_q50"] == 0
    assert np.array_equal(ref.train[r["nn_index"]], img(d.train[:300]))


def test_a_model_of_one_digit_loses_recall_and_label_entropy(setup):
    d, ref, img = setup
    ones = img(d.train[d.labels["train"] == 1])
    ones = ones + 0.05 * torch.randn(ones.shape, generator=torch.Generator().manual_seed(0))
    r = judging.judge(ref, ones, n_boot=20)
    assert r["recall"] < 0.3 and r["mode_entropy"] < 0.5 and r["c2st"] > 0.8
    table = judging.table({"ones": {"dataset": "digits", "kind": "test", **r}})
    assert table.loc["ones", "C2ST accuracy"] == f"{r['c2st']:.3f} ± {r['c2st_se']:.3f}"


def test_parzen_lesson_matches_the_metrics_and_kmeans_centroids_are_means():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 5, generator=g)
    valid, test = torch.rand(50, 5, generator=g), torch.rand(60, 5, generator=g)
    (row,) = judging.parzen_lesson({"x": x}, valid, test)
    sigma, _ = metrics.select_parzen_sigma(valid, x)
    ll = metrics.parzen_log_prob(test, x, sigma).numpy()
    assert row["sigma"] == sigma and row["test_ll"] == pytest.approx(ll.mean())
    assert row["test_ll_se"] == pytest.approx(ll.std(ddof=1) / math.sqrt(len(ll)))
    # Lloyd's algorithm: one cell holds everything; two far-apart clusters give their means
    one = judging.kmeans_centroids(x, 1)
    assert one.shape == (1, 5) and torch.allclose(one[0], x.mean(0), atol=1e-5)
    a, b = 0.1 * torch.randn(200, 5, generator=g), 3 + 0.1 * torch.randn(150, 5, generator=g)
    c = judging.kmeans_centroids(torch.cat([a, b]), 2)
    c = c[c[:, 0].argsort()]
    assert torch.allclose(c, torch.stack([a.mean(0), b.mean(0)]), atol=1e-5)


def test_latent_walks_follow_what_a_model_offers_not_its_class():
    from densitybench import models

    d = data.load("digits")
    steps = torch.linspace(0, 1, 5)[:, None]
    torch.manual_seed(0)
    vae = models.create("vae", (1, 8, 8), latent_dim=2, hidden_sizes=[8])
    nice = models.create("nice", (1, 8, 8), n_couplings=2, hidden_size=8, n_hidden_layers=1)
    gan = models.create("gan", (1, 8, 8), noise_dim=4, g_hidden=[8], d_hidden=[8])
    made = models.create("made", (1, 8, 8), hidden_sizes=[8])
    binary = data.load("digits_binary")
    path, between = judging.latent_walk(vae, binary, [0, 1], steps)
    mu, _ = vae.encode(binary.split("test")[[0, 1]])
    assert between and path.shape == (5, 1, 8, 8)
    assert torch.allclose(path[0], vae.decode_mean(mu[:1])[0], atol=1e-6)  # the walk starts at the first code
    path, between = judging.latent_walk(nice, d, [0, 1], steps, seed=3)
    y = data.dequantize(d.test[[0, 1]], d.n_levels, torch.Generator().manual_seed(3))
    assert between and torch.allclose(path[[0, -1]], y.clamp(0, 1), atol=1e-5)  # the exact codes invert to the ends
    path, between = judging.latent_walk(gan, d, [0, 1], steps, seed=0, pair=1)
    again, _ = judging.latent_walk(gan, d, [5, 6], steps, seed=0, pair=1)
    assert not between and path.shape == (5, 1, 8, 8) and torch.equal(path, again)  # noise, not test images
    assert judging.latent_walk(made, binary, [0, 1], steps) is None
