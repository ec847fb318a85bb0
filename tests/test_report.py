"""The tables read only finished runs of the plan, and say why each run stopped."""

import json
import math
import shutil

import pytest

from densitybench import report, runs


def test_the_tables_read_the_finished_runs_of_the_plan_only(tmp_path):
    store = runs.store_root("smoke", tmp_path)
    prof = runs.load_profile("smoke")
    done = runs.ensure(prof.spec("mob_k2"), store, device="cpu")  # EM on the 8x8 digits: a second
    # a partial run (its spec written, no metrics.json), and a finished folder that is not in the plan
    partial = prof.spec("pca_gmm")
    (store / partial.folder).mkdir()
    (store / partial.folder / "spec.json").write_text(json.dumps(partial.to_json()))
    shutil.copytree(done.folder, store / "stray-s0")
    finished, unfinished = report.finished_runs("smoke", store)
    assert [r.folder.name for r in finished] == ["mob_k2-s0"]
    status = {u["run"]: u["status"] for u in unfinished}
    assert status["pca_gmm-s0"] == "partial" and status["made-1mask-s0"] == "missing"
    assert not any(u["chapter"] == "beyond" for u in unfinished)  # "Beyond MNIST" has a page of its own
    assert "stray-s0" not in status and len(finished) + len(unfinished) == len(
        [s for s in prof.specs() if s.chapter != "beyond"])
    assert report.finished_runs("smoke", store, seed=1) == ([], [])
    table = report.nll_table([r.record for r in finished])
    assert table.loc[0, "stopped by"] == report.stopped_by(done.record) == "iteration cap"  # 3 EM steps at most


def test_stopped_by_says_whether_a_capped_run_was_still_improving():
    assert report.stopped_by({"stop_reason": "time_budget", "still_improving": True}) == "time budget, still improving"
    assert report.stopped_by({"stop_reason": "epoch_cap", "still_improving": False}) == "epoch cap, no longer improving"
    assert report.stopped_by({"stop_reason": "patience", "still_improving": False}) == "patience"
    assert report.stopped_by({"stop_reason": "iteration_cap", "still_improving": True}) == "iteration cap"
    assert report.stopped_by({}) == "—"


def test_the_training_phrases_state_the_budget_and_why_a_run_stopped():
    tr = {"epochs": 1500, "max_seconds": 600, "patience": 10}
    assert report.limit_phrase(tr) == "1500 epochs or 600 s of training, whichever ends first"
    assert report.limit_phrase({**tr, "max_seconds": None}) == "1500 epochs"
    assert report.budget_phrase(tr) == "a wall-clock budget of 600 s of training"
    assert report.budget_phrase({**tr, "max_seconds": None}) == "no wall-clock budget"
    assert report.stop_clause({"stop_reason": "time_budget"}, tr) == "because its budget of 600 s of training was spent"
    assert report.stop_clause({"stop_reason": "patience"}, tr, "validation ELBO") == (
        "because the validation ELBO had not improved for 10 epochs")
    rec = {"stop_reason": "epoch_cap", "epochs": 7, "train_seconds": 589.6}
    assert report.stops_phrase({"nice": rec}) == "nice: epoch cap (epoch 7, 590 s)"


def test_a_page_states_a_shared_training_setting_once_and_another_run_by_run():
    a = runs.make_spec("a", "made", "digits_binary", hparams={"hidden_sizes": [8]}, train={"epochs": 2})
    b = runs.make_spec("b", "made", "digits_binary", hparams={"hidden_sizes": [8]},
                       train={"epochs": 3, "max_seconds": 600})
    values = report.training_values([a, b])
    assert values["lr"] == f"{a.train['lr']:g}" and values["patience"] == str(a.train["patience"])
    assert values["max_epochs"] == "2 (a), 3 (b)"
    assert values["budget"] == "no wall-clock budget (a), a wall-clock budget of 600 s of training (b)"
    assert report.training_values([a])["budget"] == "no wall-clock budget"


def record(seed, nll, stop="patience", improving=False, entry="made-1mask", anchor=True):
    """A minimal run record of ``entry`` with seed ``seed`` and test NLL ``nll``."""
    return {"run": f"{entry}-s{seed}", "seed": seed, "spec": {"name": entry}, "label": "MADE", "dataset": "d",
            "likelihood": "exact", "test_nll_nats": nll, "test_nll_se": 0.2, "bits_per_dim": nll / 543.4,
            "bits_per_dim_se": 0.0004, "n_params": 10, "train_seconds": 60.0 * (seed + 1),
            "sample_seconds_per_image": 0.001, "n_levels": 2, "epochs": 10, "best_epoch": 7, "stop_reason": stop,
            "still_improving": improving, "protocol_note": "same protocol",
            "anchor": {"value": 88.0, "unit": "nats", "source": "paper"} if anchor else None}


def test_seeds_are_one_row_with_the_mean_and_the_se_across_seeds():
    table = report.nll_table([record(0, 90.0), record(1, 91.0), record(2, 92.0), record(0, 100.0, entry="other")])
    assert list(table["entry"]) == ["made-1mask", "other"]
    row = table.iloc[0]
    assert row["test NLL (nats)"] == "91.00 ± 0.20"  # mean over seeds ± the test-image SE
    assert row["SE over seeds"] == "0.58"  # sd 1 over sqrt(3)
    assert row["seeds"] == "0, 1, 2" and row["ours − published"] == "+3.00 nats"
    assert row["train (s)"] == 120.0
    assert table.iloc[1]["SE over seeds"] == "—"  # one seed: no spread to report
    assert list(table.columns[: len(report.KEY_COLUMNS)]) == list(report.KEY_COLUMNS)


@pytest.mark.parametrize("stop", ["time_budget", "epoch_cap", "iteration_cap"])
def test_a_run_cut_short_is_compared_with_no_published_number(stop):
    table = report.nll_table([record(0, 90.0, stop=stop, improving=True)])
    cell = table.iloc[0]["ours − published"]
    assert cell.startswith("none: stopped by ") and stop.replace("_", " ") in cell
    assert not any(ch.isdigit() for ch in cell)
    # one seed cut short is enough to withhold the comparison of the entry
    mixed = report.nll_table([record(0, 90.0), record(1, 91.0, stop=stop)])
    assert mixed.iloc[0]["ours − published"].startswith("none: ")
    assert "1 of 2 seeds" in mixed.iloc[0]["stopped by"]


def test_converged_means_stopped_by_the_runs_own_rule():
    assert report.converged({"stop_reason": "patience"}) and report.converged({"stop_reason": "converged"})
    for reason in ("time_budget", "epoch_cap", "iteration_cap", None):
        assert not report.converged({"stop_reason": reason})


def test_the_slope_of_a_run_still_improving_is_stated():
    history = [{"epoch": i + 1, "valid_loss": 100.0 - 0.5 * i} for i in range(8)]
    r = {"stop_reason": "time_budget", "still_improving": True, "history": history}
    assert report.valid_slope(r) == pytest.approx(-0.5)
    assert report.stopped_by(r) == "time budget, still improving at -0.5 per epoch over the last 5 epochs"
    flat = {"stop_reason": "patience", "still_improving": False, "history": history}
    assert report.stopped_by(flat) == "patience"
    assert report.valid_slope({"history": history[:1]}) is None


def test_a_model_worse_than_the_uniform_distribution_is_flagged():
    good, bad = record(0, 90.0), record(0, 600.0, entry="bad")  # 600 nats over 784 binary pixels: 1.10 bits/dim
    bad["bits_per_dim"] = 600.0 / (784 * math.log(2))
    table = report.nll_table([good, bad]).set_index("entry")
    assert table.loc["made-1mask", "flag"] == ""
    assert table.loc["bad", "flag"] == "worse than the uniform distribution (1 bits/dim)"
    levels = {"bits_per_dim": 9.12, "n_levels": 256}
    assert report.worse_than_uniform(levels) and not report.worse_than_uniform({**levels, "bits_per_dim": 7.9})


def test_the_bits_table_says_why_each_run_stopped_and_leaves_estimates_out():
    recs = [record(0, 400.0, stop="time_budget", improving=True, entry="a"), record(0, 300.0, entry="b"),
            {**record(0, 200.0, entry="parzen"), "likelihood": "estimate"}]
    recs[1]["anchor"] = {"key": "k", "value": 0.5, "unit": "bits/dim", "source": "s", "kind": "tutorial"}
    table = report.bits_table(recs, "d")
    assert list(table["model"]) == ["MADE", "MADE"] and len(table) == 2  # sorted by bits/dim, no estimate
    assert list(table["stopped by"]) == ["patience", "time budget, still improving"]
    assert list(table["published (bits/dim)"]) == ["0.50 (tutorial)", "—"]


def test_a_published_number_not_from_the_models_authors_is_labelled():
    rec = record(0, 90.0)
    rec["anchor"] = {"key": "k", "value": 80.1, "unit": "nats", "source": "s", "kind": "reimplementation"}
    assert report.nll_table([rec]).iloc[0]["published"] == "80.10 nats (reimplementation)"
    assert report.nll_table([record(0, 90.0)]).iloc[0]["published"] == "88.00 nats"


def test_a_page_states_what_its_entries_seeds_give(tmp_path):
    prof = runs.load_profile("smoke")
    entry = dict(prof.runs["mob_k2"], seeds=[0, 1, 2])
    prof.runs["mob_k2"] = entry
    store = tmp_path / "runs"
    assert report.seeds_phrase(prof, store, "pca_gmm").endswith("0 of its 3 seeds finished")
    recs = [runs.ensure(s, store, device="cpu").record for s in prof.specs(names=["mob_k2"])]
    text = report.seeds_phrase(prof, store, "pca_gmm")
    mean, se = report.over_seeds(recs, "test_nll_nats")
    assert text.startswith(f"{entry['label']}: {mean:.2f} ± {se:.2f} across seeds ")
    for r in recs:
        assert f"{r['test_nll_nats']:.2f} (seed {r['seed']}, iteration cap)" in text
    assert report.seeds_phrase(prof, store, "made") == "every run of this page has one seed"
