"""Training, evaluation records, metrics and re-evaluation."""

import json
import math

import numpy as np
import pytest
import torch

from densitybench import data, evaluate, metrics, models, train
from densitybench.cli import main as cli


@pytest.fixture(scope="module")
def digits_binary():
    return data.load("digits_binary")


def test_fit_improves_and_restores_the_best_validation_epoch(digits_binary):
    d = digits_binary
    model = models.create("made", d.image_shape, hidden_sizes=[64], seed=0)
    before = train.mean_nll(model, d.split("valid"))
    hist = train.fit(model, d.split("train"), d.split("valid"), epochs=40, lr=3e-3, patience=3, device="cpu",
                     progress=False)
    after = train.mean_nll(model, d.split("valid"))
    assert after < before - 5
    assert after == pytest.approx(hist.best_valid, abs=1e-4)
    assert hist.best_valid == min(e["valid_loss"] for e in hist.epochs)
    # patience: it stopped `patience` epochs after the best one, or ran out of epochs
    assert len(hist.epochs) == 40 or len(hist.epochs) - hist.best_epoch == 3


def test_fit_stops_at_its_time_budget(digits_binary):
    d = digits_binary
    model = models.create("made", d.image_shape, hidden_sizes=[16], seed=0)
    hist = train.fit(model, d.split("train"), d.split("valid"), epochs=50, max_seconds=0.0, device="cpu",
                     progress=False)
    assert len(hist.epochs) == 1 and hist.stopped_by_budget and not hist.stopped_early
    hist = train.fit(model, d.split("train")[:200], d.split("valid")[:50], epochs=2, max_seconds=1e6, device="cpu",
                     progress=False)
    assert len(hist.epochs) == 2 and not hist.stopped_by_budget


def test_fit_is_reproducible_with_a_seed(digits_binary):
    d = digits_binary
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the model's init is seeded by the caller
        model = models.create("made", d.image_shape, hidden_sizes=[16], seed=0)
        h = train.fit(model, d.split("train")[:300], d.split("valid")[:100], epochs=2, device="cpu",
                      progress=False, seed=5)
        runs.append([e["train_loss"] for e in h.epochs])
    assert runs[0] == runs[1]


def test_mean_se():
    m, se = metrics.mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


@pytest.mark.parametrize("metric", ["hamming", "l2"])
def test_nearest_neighbours_against_brute_force(metric):
    g = torch.Generator().manual_seed(0)
    q = torch.bernoulli(torch.full((13, 20), 0.4), generator=g)
    r = torch.bernoulli(torch.full((57, 20), 0.4), generator=g)
    if metric == "l2":
        q, r = q + 0.1 * torch.rand(q.shape, generator=g), r + 0.1 * torch.rand(r.shape, generator=g)
    d, i = metrics.nearest_neighbours(q, r, metric, batch_size=4)
    full = (q[:, None] - r[None]).abs().sum(2) if metric == "hamming" else (q[:, None] - r[None]).pow(2).sum(2).sqrt()
    assert torch.allclose(d, full.min(1).values.float(), atol=1e-5)
    assert torch.equal(full[torch.arange(13), i], full.min(1).values)


def test_record_run_writes_the_promised_fields(tmp_path, digits_binary):
    d = digits_binary
    model = models.create("made", d.image_shape, hidden_sizes=[16], n_masks=2, seed=0)
    hist = train.fit(model, d.split("train"), d.split("valid"), epochs=2, device="cpu", progress=False)
    rec = evaluate.record_run(model, d, hist, tmp_path / "run", {"model": "made", "anchor": "made_1hl_1mask"},
                              seed=3, n_samples=8)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ["model", "dataset", "likelihood", "test_nll_nats", "test_nll_se", "bits_per_dim", "n_params",
                "train_seconds", "sample_seconds", "epochs", "seed", "config", "git_commit", "versions", "device"]:
        assert key in on_disk, key
    assert on_disk["likelihood"] == "exact" and on_disk["anchor"]["value"] == 88.40
    # the number is the exact test NLL of the ensemble, with its standard error
    nll = -model.log_prob(d.split("test")).double()
    assert rec["test_nll_nats"] == pytest.approx(nll.mean().item(), rel=1e-6)
    assert rec["test_nll_se"] == pytest.approx((nll.std() / math.sqrt(len(nll))).item(), rel=1e-5)
    assert rec["bits_per_dim"] == pytest.approx(rec["test_nll_nats"] / (64 * math.log(2)))
    for f in ["samples.png", "neighbours.png", "nn_distances.png", "samples.npy", "model.pt"]:
        assert (tmp_path / "run" / f).is_file(), f
    # re-evaluation from the checkpoint gives the same number
    res = evaluate.reevaluate(tmp_path / "run")
    assert abs(res["difference"]) < 1e-4
    assert cli(["evaluate", str(tmp_path / "run")]) == 0


def test_continuous_model_on_levels_reports_the_dequantization_bound(tmp_path):
    d = data.load("digits")
    y = data.dequantize(d.train, d.n_levels, torch.Generator().manual_seed(0))
    yv = data.dequantize(d.valid, d.n_levels, torch.Generator().manual_seed(evaluate.DEQUANTIZATION_SEED))
    model = models.create("pca_gmm", d.image_shape, variance=0.9, n_components=2, seed=0)
    hist = train.fit(model, y, yv, progress=False, device="cpu")
    rec = evaluate.record_run(model, d, hist, tmp_path / "p", {"model": "pca_gmm"}, n_samples=8)
    D = 64
    assert rec["test_nll_nats"] == pytest.approx(rec["test_nll_nats_continuous"] + D * math.log(17))
    assert rec["bits_per_dim"] == pytest.approx(rec["test_nll_nats"] / (D * math.log(2)))
    assert "dequantized" in rec["protocol"]


def test_a_run_too_large_to_commit_keeps_its_checkpoint_uncommitted_and_stores_samples(tmp_path, monkeypatch):
    d = data.load("digits")
    y = data.dequantize(d.train, d.n_levels, torch.Generator().manual_seed(0))
    model = models.create("pca_gmm", d.image_shape, variance=0.9, n_components=2, seed=0)
    hist = train.fit(model, y, y[:100], progress=False, device="cpu")
    monkeypatch.setattr(evaluate, "MAX_CHECKPOINT_MB", 0.0)
    rec = evaluate.record_run(model, d, hist, tmp_path / "p", {"model": "pca_gmm", "n_judge_samples": 700},
                              n_samples=8)
    # the checkpoint stays in the run store, listed in the folder's .gitignore, and the record says so
    assert rec["checkpoint"]["path"] == "model.pt" and (tmp_path / "p" / "model.pt").is_file()
    assert rec["checkpoint"]["committed"] is False
    assert "model.pt" in (tmp_path / "p" / ".gitignore").read_text().splitlines()
    s = np.load(tmp_path / "p" / "judge_samples.npy")
    assert s.shape == (700, *d.image_shape) and s.min() >= 0 and s.max() <= 1
    assert rec["checkpoint"]["judge_samples"] == 700
