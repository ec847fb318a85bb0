"""The tables read only finished runs of the plan, and say why each run stopped."""

import json
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


def test_a_page_states_training_settings_once_only_when_its_runs_share_them():
    a = runs.make_spec("a", "made", "digits_binary", hparams={"hidden_sizes": [8]}, train={"epochs": 2})
    b = runs.make_spec("b", "made", "digits_binary", hparams={"hidden_sizes": [8]}, train={"epochs": 3})
    with pytest.raises(ValueError, match="do not share their training settings"):
        report.glue_training("x", [a, b], {})
