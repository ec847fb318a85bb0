"""A monitored held-out set (the test NLL after every epoch) is reported and selects nothing.

Properties: with ``monitor`` the history has a finite ``test_loss`` per epoch, equal to the
test NLL of that epoch's weights; the stopping epoch, the best epoch, every other number
and the final weights are bitwise those of the same run without it (also for a model whose
validation criterion draws random numbers); a run interrupted at any point resumes bitwise,
its monitored numbers included; the run setting ``test_each_epoch`` leaves the keys of the
runs without it unchanged.
"""

from __future__ import annotations

import math
import random
import time

import pytest
import torch

from densitybench import data, models, runs, train

#: per-epoch entries that measure time (they differ between two runs of the same numbers)
TIMES = ("seconds", "elapsed_seconds", "monitor_seconds")


def numbers(history: train.History) -> dict:
    return {"epochs": [{k: v for k, v in e.items() if k not in TIMES} for e in history.epochs],
            "best_epoch": history.best_epoch, "best_valid": history.best_valid, "stop_reason": history.stop_reason}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def levels10():
    return data.load("digits_levels10")


def nade(ds, seed=0):
    return models.create("nade", ds.image_shape, hidden_size=8, n_levels=ds.n_levels, init_seed=seed)


def fit(model, ds, **kwargs):
    settings = dict(epochs=4, batch_size=100, lr=0.01, patience=2, seed=0, device="cpu", progress=False)
    return train.fit(model, ds.split("train"), ds.split("valid"), **{**settings, **kwargs})


def test_the_test_nll_of_every_epoch_is_recorded_and_selects_nothing(levels10):
    plain, watched = nade(levels10), nade(levels10)
    h0 = fit(plain, levels10, epochs=6, patience=1)
    h1 = fit(watched, levels10, epochs=6, patience=1, monitor={"test": levels10.split("test")})
    assert all("test_loss" not in e for e in h0.epochs)
    assert all(math.isfinite(e["test_loss"]) and e["monitor_seconds"] >= 0 for e in h1.epochs)
    # everything but the monitored numbers is bitwise the same: the epochs, the best epoch, the weights
    without = [{k: v for k, v in e.items() if k != "test_loss"} for e in numbers(h1)["epochs"]]
    assert without == numbers(h0)["epochs"]
    assert (h1.best_epoch, h1.best_valid, h1.stop_reason) == (h0.best_epoch, h0.best_valid, h0.stop_reason)
    assert same_weights(plain, watched)
    # the best epoch's test_loss is the test NLL of the weights returned
    best = h1.epochs[h1.best_epoch - 1]
    assert best["test_loss"] == pytest.approx(train.mean_nll(watched, levels10.split("test")), rel=1e-9)
    assert [e["test_loss"] for e in h1.epochs] != [e["valid_loss"] for e in h1.epochs]


def random_subset_elbo(model, x):
    """A criterion that draws from the global random state (a random half of ``x``)."""
    return model.validation_criterion(x[torch.randperm(len(x))[: len(x) // 2]])


def test_a_criterion_that_draws_random_numbers_is_monitored_without_changing_the_run():
    ds = data.load("digits_binary")  # a VAE: its training noise comes from the global random state too
    hp = dict(latent_dim=2, hidden_sizes=[8])
    plain, watched = (models.create("vae", ds.image_shape, **hp, init_seed=1) for _ in range(2))
    h0 = fit(plain, ds, epochs=3, lr=1e-3, valid_fn=random_subset_elbo)
    h1 = fit(watched, ds, epochs=3, lr=1e-3, valid_fn=random_subset_elbo, monitor={"test": ds.split("test")})
    without = [{k: v for k, v in e.items() if k != "test_loss"} for e in numbers(h1)["epochs"]]
    assert without == numbers(h0)["epochs"] and same_weights(plain, watched)
    assert all(math.isfinite(e["test_loss"]) for e in h1.epochs)


def test_the_time_spent_on_the_monitor_is_not_training_time(levels10):
    slow_test = levels10.split("test")

    def slow_criterion(model, x):
        if x is slow_test:
            time.sleep(0.3)
        return train.mean_nll(model, x)

    h = fit(nade(levels10), levels10, epochs=2, valid_fn=slow_criterion, monitor={"test": slow_test})
    assert all(e["monitor_seconds"] >= 0.3 for e in h.epochs)
    assert all(e["seconds"] < e["monitor_seconds"] + 5 for e in h.epochs)
    assert h.train_seconds < sum(e["monitor_seconds"] for e in h.epochs) + sum(e["seconds"] for e in h.epochs)
    assert h.epochs[-1]["elapsed_seconds"] == pytest.approx(sum(e["seconds"] for e in h.epochs), abs=0.05)


def test_a_run_interrupted_anywhere_resumes_bitwise_with_its_monitor(levels10, tmp_path):
    test = {"test": levels10.split("test")}
    whole = nade(levels10)
    h_whole = fit(whole, levels10, monitor=test, checkpoint=tmp_path / "whole.pt")

    rng = random.Random(0)
    ckpt = tmp_path / "cut.pt"
    n_calls = 0
    while True:
        model = nade(levels10)  # a fresh process: its state comes from the checkpoint alone
        h = fit(model, levels10, monitor=test, checkpoint=ckpt, deadline=time.time() + rng.uniform(0.0, 0.04),
                checkpoint_seconds=0.0)
        n_calls += 1
        if not h.interrupted:
            break
        assert n_calls < 500
    assert n_calls >= 3, "the run was not interrupted: make it longer"
    assert h.resumed_from is not None
    assert numbers(h) == numbers(h_whole)
    assert all(math.isfinite(e["test_loss"]) for e in h.epochs) and len(h.epochs) == len(h_whole.epochs)
    assert same_weights(model, whole)


def test_a_checkpoint_resumes_only_with_the_same_monitor(levels10, tmp_path):
    ckpt = tmp_path / "state.pt"
    first = fit(nade(levels10), levels10, epochs=1, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"monitors nothing, this call \['test'\]"):
        fit(nade(levels10), levels10, epochs=2, checkpoint=ckpt, monitor={"test": levels10.split("test")})
    # a checkpoint written before monitoring existed (no "monitor" entry) resumes as one that monitors nothing
    saved = torch.load(ckpt, weights_only=False)
    del saved["monitor"]
    torch.save(saved, ckpt)
    h = fit(nade(levels10), levels10, epochs=1, checkpoint=ckpt)
    assert h.resumed_from == {"epoch": 1, "step": 0} and numbers(h) == numbers(first)


@pytest.mark.parametrize("monitor, message", [
    ({"valid": None}, "monitor names must be identifiers other than 'train' and 'valid'"),
    ({"a b": None}, "monitor names must be identifiers"),
])
def test_bad_monitor_names_are_refused(levels10, monitor, message):
    with pytest.raises(ValueError, match=message):
        fit(nade(levels10), levels10, monitor=monitor)


def test_a_model_fitted_in_closed_form_cannot_be_monitored():
    ds = data.load("digits_binary")
    model = models.create("bernoulli_mixture", ds.image_shape, n_components=2, max_iter=2, init_seed=0)
    with pytest.raises(ValueError, match="fitted in closed form"):
        fit(model, ds, monitor={"test": ds.split("test")})


# --------------------------------------------------------------------------- the run setting


def spec(name="nade-tiny", **evaluation):
    return runs.make_spec(name, "nade", "digits_levels10", hparams={"hidden_size": 8, "n_levels": 10},
                          train={"epochs": 2, "patience": 2}, evaluation=evaluation, options={"n_samples": 4})


def test_test_each_epoch_is_in_the_key_only_when_set():
    assert spec().evaluation == {"valid_nll": True}  # as every run recorded before the setting existed
    assert spec(test_each_epoch=False).key == spec().key
    assert spec(test_each_epoch=True).key != spec().key
    assert spec(test_each_epoch=True).evaluation == {"valid_nll": True, "test_each_epoch": True}
    with pytest.raises(ValueError, match="evaluation.test_each_epoch must be true or false"):
        spec(test_each_epoch="yes")


def test_a_run_with_test_each_epoch_records_the_test_nll_of_every_epoch(tmp_path):
    watched, plain = spec(test_each_epoch=True), spec("nade-tiny-plain")
    for s in (watched, plain):
        runs.train_one(s, tmp_path, device="cpu", threads=1)
    run, other = runs.Run(tmp_path / watched.folder), runs.Run(tmp_path / plain.folder)
    assert [e["epoch"] for e in run.history] == [1, 2]
    assert all(math.isfinite(e["test_loss"]) for e in run.history)
    assert all("test_loss" not in e for e in other.history)
    best = run.history[run.record["best_epoch"] - 1]
    assert best["test_loss"] == pytest.approx(run.record["test_nll_nats"], rel=1e-6)
    # the recorded numbers are those of the run without it
    for key in ("test_nll_nats", "valid_nll_nats", "best_epoch", "stop_reason"):
        assert run.record[key] == other.record[key]
