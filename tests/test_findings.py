"""The findings page's numbers, verdicts and figures, on synthetic run records (no data, no training)."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from densitybench import findings


def history(valid, seconds):
    """A timed history: one epoch per validation value, ``seconds`` of training each."""
    elapsed = np.cumsum(seconds)
    return [{"epoch": i + 1, "train_loss": v + 1.0, "valid_loss": float(v), "seconds": float(s) + 0.5,
             "elapsed_seconds": float(t)} for i, (v, s, t) in enumerate(zip(valid, seconds, elapsed))]


def record(entry, seed=0, nll=90.0, se=0.2, stop="patience", improving=False, dataset="bin", kind="binary",
           likelihood="exact", anchor=None, hist=None, model="made", hparams=None, **extra):
    """A minimal run record of ``entry`` (seed ``seed``) with test NLL ``nll`` in nats."""
    hist = hist if hist is not None else history([100.0, 95.0, 93.0], [10.0, 10.0, 10.0])
    return {"run": f"{entry}-s{seed}", "seed": seed, "spec": {"name": entry, "hparams": hparams or {}},
            "label": entry.upper(), "model": model, "dataset": dataset, "dataset_kind": kind,
            "likelihood": likelihood, "test_nll_nats": nll, "test_nll_se": se, "bits_per_dim": nll / 100,
            "bits_per_dim_se": se / 100, "stop_reason": stop, "still_improving": improving, "anchor": anchor,
            "history": hist, "epochs": len(hist), "best_epoch": len(hist), "train_seconds": 30.0,
            "sample_seconds_per_image": 0.001, **extra}


def nats(value):
    return {"value": value, "unit": "nats", "source": "a paper"}


# --------------------------------------------------------------------------- the equal-budget table


def random_records(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 12))
        valid = 100 + np.cumsum(rng.normal(-1.0, 2.0, k))  # noisy: rises as well as falls
        out.append(record(f"m{i}", hist=history(valid, rng.uniform(5, 200, k))))
    return out


def test_the_best_value_within_a_budget_never_rises_with_the_budget():
    budgets = (1, 10, 60, 300, 600, 1800, 10_000)
    at = findings.at_budget(random_records(), budgets)
    assert len(at) == 6 * len(budgets)
    for _, runs in at.groupby("run"):
        values = runs.sort_values("budget")["value"].to_numpy()
        missing = np.isnan(values)
        assert np.all(np.diff(values[~missing]) <= 0)
        # no value only before the first epoch's end: the missing budgets come first
        assert list(missing) == sorted(missing, reverse=True)


def test_the_value_at_a_budget_is_the_best_of_the_epochs_within_it():
    recs = random_records(seed=1)
    at = findings.at_budget(recs, (50, 250, 900))
    for r in recs:
        for b in (50, 250, 900):
            row = at[(at["run"] == r["run"]) & (at["budget"] == b)].iloc[0]
            within = [e["valid_loss"] for e in r["history"] if e["elapsed_seconds"] <= b]
            if within:
                assert row["value"] == pytest.approx(min(within))
            else:
                assert math.isnan(row["value"]) and row["text"] == "—"


def test_a_budget_before_the_first_epoch_is_a_dash_and_one_after_the_end_says_so():
    r = record("m", hist=history([120.0, 100.0, 105.0], [100.0, 100.0, 100.0]))
    at = findings.at_budget([r], (50, 150, 200, 250, 300, 1000)).set_index("budget")
    assert at.loc[50, "text"] == "—" and math.isnan(at.loc[50, "value"])
    assert at.loc[150, "text"] == "120.00" and math.isnan(at.loc[150, "ended_at"])
    assert at.loc[200, "value"] == at.loc[250, "value"] == 100.0  # an epoch ending at the budget counts
    assert at.loc[300, "text"] == "100.00 (ended at 300 s)"
    assert at.loc[1000, "text"] == "100.00 (ended at 300 s)" and at.loc[1000, "ended_at"] == 300.0
    table = findings.budget_table(findings.at_budget([r, record("n")], (50, 1000)), "bin")
    assert list(table.index) == ["M", "N"] and list(table.columns) == ["≤ 50 s", "≤ 1000 s"]


# --------------------------------------------------------------------------- learning curves


def test_learning_curves_hold_one_row_per_timed_epoch():
    timed = record("a", hist=history([10.0, 8.0, 7.5, 7.4], [1.0, 2.0, 3.0, 4.0]))
    untimed = record("b", hist=[{k: v for k, v in e.items() if k not in ("elapsed_seconds", "seconds")}
                                for e in timed["history"]])
    parzen = record("gan", likelihood="estimate", model="gan")
    continuous = record("nice", kind="levels", dataset="lev", model="nice", test_nll_nats_continuous=-900.0, nll=100.0,
                        hist=history([-905.0, -910.0], [5.0, 5.0]))
    curves = findings.learning_curves([timed, untimed, parzen, continuous])
    assert set(curves["run"]) == {"a-s0", "nice-s0"}  # no elapsed time, or no likelihood: left out
    a = curves[curves["run"] == "a-s0"]
    assert list(a["epoch"]) == [e["epoch"] for e in timed["history"]]
    assert list(a["valid"]) == [e["valid_loss"] for e in timed["history"]]
    assert list(a["elapsed_seconds"]) == [1.0, 3.0, 6.0, 10.0]
    # a continuous model's validation value is put in nats of the discrete images (+ D ln K)
    nice = curves[curves["run"] == "nice-s0"]
    assert list(nice["valid"]) == pytest.approx([-905.0 + 1000.0, -910.0 + 1000.0])
    assert findings.learning_curves([untimed]).empty


# --------------------------------------------------------------------------- published numbers


def test_an_entry_whose_every_seed_converged_within_two_se_reproduces():
    group = [record("m", seed=s, nll=88.0 + 0.1 * s, anchor=nats(88.1)) for s in range(3)]
    c = findings.compare(group)
    assert c["verdict"] == findings.REPRODUCES and c["difference"] == pytest.approx(0.0, abs=1e-9)
    # the SE combines the test-image SE with the standard error across seeds (0.1 / sqrt(3))
    assert c["se"] == pytest.approx(math.hypot(0.2, 0.1 / math.sqrt(3)))
    far = findings.compare([record("m", nll=89.0, se=0.1, anchor=nats(88.0))])
    assert far["verdict"] == findings.HIGHER and far["z"] == pytest.approx(10.0)
    better = findings.compare([record("m", nll=87.0, se=0.1, anchor=nats(88.0))])
    assert better["verdict"] == findings.LOWER


def test_an_entry_with_a_seed_cut_short_cannot_be_judged():
    group = [record("m", seed=0, nll=88.0, anchor=nats(88.0)),
             record("m", seed=1, nll=88.0, stop="time_budget", improving=True, anchor=nats(88.0))]
    c = findings.compare(group)
    assert c["verdict"] == findings.CUT_SHORT and c["difference"] is None
    em = findings.compare([record("gmm", nll=88.0, stop="converged", anchor=nats(88.0))])
    assert em["verdict"] == findings.REPRODUCES  # EM's own tolerance is convergence too


def test_the_reproduction_verdict_is_chosen_from_the_counts():
    recs = [record("a", nll=88.0, anchor=nats(88.1)), record("b", nll=95.0, anchor=nats(88.0)),
            record("c", nll=80.0, anchor=nats(88.0)), record("d", nll=99.0, stop="epoch_cap", anchor=nats(80.0)),
            record("e", nll=99.0)]  # no published number: not in the table
    table = findings.reproduction(recs)
    assert list(table["entry"]) == ["a", "b", "c", "d"]
    s = findings.reproduction_summary(table)
    assert (s["n_published"], s["n_converged"], s["n_reproduce"], s["n_higher"], s["n_lower"], s["n_cut"]) == (
        4, 3, 1, 1, 1, 1)
    assert s["verdict"] == "holds for 1 of the 3 entries trained to convergence"
    assert s["reproduce"] == "A" and s["cut"] == "D" and "1 cannot be judged" in s["details"]
    every = findings.reproduction_summary(findings.reproduction(recs[:1]))
    assert every["verdict"] == "holds for the one entry trained to convergence"
    none = findings.reproduction_summary(findings.reproduction(recs[1:3]))
    assert none["verdict"].startswith("does not hold")
    cut = findings.reproduction_summary(findings.reproduction(recs[3:4]))
    assert cut["verdict"].startswith("cannot be judged")


def test_robustness_compares_only_the_seed_made_and_says_when_nothing_else_ran():
    seed_hp = {"n_masks": 1, "hidden_sizes": [500]}
    recs = [record("made-1mask", nll=88.0, anchor=nats(88.0), hparams=seed_hp),
            record("x-made", dataset="x", nll=20.0, anchor=nats(18.0), hparams=seed_hp),
            record("y-made", dataset="y", nll=30.0, hparams=seed_hp),
            record("made-8000", nll=85.0, anchor=nats(88.0), hparams={"n_masks": 1, "hidden_sizes": [8000]}),
            record("nade", nll=85.0, anchor=nats(88.0), model="nade")]
    table = findings.made_robustness(recs)
    assert list(table["dataset"]) == ["bin", "x", "y"]
    assert list(table["verdict"]) == [findings.REPRODUCES, findings.HIGHER, "no published number"]
    s = findings.robustness_summary(table)
    assert (s["n_datasets"], s["n_published"], s["n_judged"], s["n_match"]) == (3, 2, 2, 1)
    assert "holds only partly" in s["verdict"] and "+11.1%" in s["gaps"]
    alone = findings.robustness_summary(findings.made_robustness(recs[:1]))
    assert alone["verdict"].startswith("It is not tested here") and alone["n_datasets"] == 1
    cut = findings.robustness_summary(findings.made_robustness(
        [recs[0], {**recs[1], "stop_reason": "time_budget"}]))
    assert cut["n_judged"] == 1 and cut["verdict"].startswith("It holds against")
    assert findings.is_seed_made(recs[3], {"hidden_sizes": [8000]}) and not findings.is_seed_made(recs[3])


def test_the_samples_verdict_follows_recall():
    m = {"recall": 0.8, "recall_se": 0.01, "precision": 0.7, "precision_se": 0.01, "fd": 100.0, "fd_se": 5.0,
         "mode_entropy": 2.2, "mode_entropy_se": 0.01}
    g = {**m, "recall": 0.1, "precision": 0.95, "fd": 300.0}
    c = findings.samples_comparison({"made": m, "gmm": g}, "made", "gmm")
    assert c["verdict"] == "holds" and c["z_recall"] > 2 and c["z_fd"] > 2 and c["z_precision"] < -2
    assert "PCA + GMM's samples are more precise" in findings.samples_sentence(c)
    tie = findings.samples_comparison({"made": m, "gmm": {**m, "recall": 0.81}}, "made", "gmm")
    assert tie["verdict"] == "is not resolved at this sample size"
    assert "about as much" in findings.samples_sentence(tie)
    assert findings.samples_comparison({"made": m}, "made", "gmm")["judged"] is False


# --------------------------------------------------------------------------- best for what


def test_the_best_entry_and_the_runs_still_improving():
    recs = [record("slow", nll=85.0, stop="time_budget", improving=True,
                   hist=history([100.0, 98.0, 96.0, 94.0, 92.0, 90.0], [1.0] * 6)),
            record("good", nll=88.0), record("bound", nll=80.0, likelihood="bound")]
    assert findings.best_entry(recs, "bin")["entry"] == "slow"
    assert findings.best_entry(recs, "bin", converged_only=True)["entry"] == "good"
    assert findings.best_entry(recs, "bin", likelihoods=("exact", "bound"))["entry"] == "bound"
    table = findings.still_improving(recs)
    assert list(table["model"]) == ["SLOW"] and table["slope"].iloc[0] == pytest.approx(-2.0)
    assert findings.per_image_time(4.4e-6) == "4.4 µs" and findings.per_image_time(8.16) == "8.16 s"
    u = findings.unsettled(recs)
    assert u["max_seeds"] == 1 and u["n_cut"] == 1 and u["cut_families"] == "—"  # MADE has a converged run
    text = findings.ranking(recs + [record("cnn", nll=95.0, stop="time_budget", model="pixelcnn")], "bin")
    assert "rank, best first: BOUND (bound) < GOOD." in text and "others (SLOW; CNN)" in text
    assert "For 1 of the 2 families every run was cut short: pixelcnn (CNN)" in text
    assert "every entry was trained to convergence" in findings.ranking([record("good")], "bin")


# --------------------------------------------------------------------------- figures


def markers(fig, gid):
    return [a for a in fig.axes[0].get_lines() if a.get_gid() == gid]


def test_the_headline_figure_draws_one_row_per_entry_and_marks_the_cut_short():
    recs = [record("a", seed=s, nll=88.0 + s, anchor=nats(87.0)) for s in range(2)]
    recs += [record("b", nll=92.0, stop="time_budget", improving=True),
             record("vae", nll=90.0, likelihood="bound", model="vae", anchor={"value": 1.0, "unit": "bits/dim"}),
             record("gan", nll=50.0, likelihood="estimate", model="gan"),  # no likelihood: not drawn
             record("other", dataset="elsewhere", nll=10.0)]
    fig = findings.headline_figure(recs, "bin", "nats")
    try:
        assert isinstance(fig, Figure)
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert len(labels) == 3  # a (two seeds in one row), vae, b
        assert labels[0].startswith("A ") and labels[1].startswith("VAE (bound)") and labels[2].startswith("B ")
        conv, cut = markers(fig, "converged"), markers(fig, "cut short")
        assert len(conv) == 2 and len(cut) == 1
        assert conv[0].get_markerfacecolor() != cut[0].get_markerfacecolor()  # filled against hollow
        assert len(markers(fig, "published")) == 1  # the VAE's published number is in another unit
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="no entry"):
        findings.headline_figure(recs, "nowhere", "nats")


def test_the_compute_figure_draws_one_line_per_timed_run_and_marks_its_end():
    recs = [record("a"), record("b", stop="time_budget", hist=history([110.0, 99.0], [50.0, 50.0])),
            record("c", hist=[{"epoch": 1, "train_loss": 1.0, "valid_loss": 1.0}])]  # no timing at all
    fig = findings.compute_figure(recs, "bin", budgets=(60,))
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"
        assert len(markers(fig, "converged")) == 1 and len(markers(fig, "cut short")) == 1
        assert markers(fig, "cut short")[0].get_marker() == "x"
        bottom, top = ax.get_ylim()
        assert bottom < 93.0 and top >= 100.0
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="cumulative training time"):
        findings.compute_figure(recs[2:], "bin")


def test_the_main_datasets_are_those_with_most_entries_of_each_kind():
    recs = [record("a"), record("b"), record("c", dataset="small"), record("d", dataset="lev", kind="levels")]
    assert findings.main_datasets(recs) == {"binary": "bin", "levels": "lev"}
    rows = findings.headline_rows(recs, "bin")
    assert isinstance(rows, pd.DataFrame) and list(rows["entry"]) == ["a", "b"]


def test_a_run_without_per_epoch_training_time_is_drawn_on_its_scaled_wall_time():
    """Epoch wall times 2, 2, 4 s (validation included) and 4 s of recorded training time:
    the epochs end at 1, 2 and 4 s of training."""
    r = record("old", hist=[{"epoch": i + 1, "train_loss": v + 1, "valid_loss": v, "seconds": s}
                            for i, (v, s) in enumerate(zip([10.0, 9.0, 8.5], [2.0, 2.0, 4.0]))])
    r["train_seconds"] = 4.0
    times, source = findings.epoch_times(r)
    assert source == "scaled" and times == pytest.approx([1.0, 2.0, 4.0])
    curves = findings.learning_curves([r])
    assert list(curves["time"]) == ["scaled"] * 3 and list(curves["elapsed_seconds"]) == pytest.approx(times)
    timed = record("new", hist=history([10.0, 9.0], [1.0, 2.0]))
    assert findings.epoch_times(timed)[1] == "recorded"
