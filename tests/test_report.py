"""The tables read only finished runs of the plan, and say why each run stopped."""

import json
import shutil

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
