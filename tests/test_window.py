"""Windows of machine time: a deadline stops training with a resumable checkpoint and no stop
reason; the next window resumes the run where it stopped (bitwise), skips the finished ones, and
the run's record carries its own stop reason, never the window's."""

import json
import time
import types
from pathlib import Path

import pytest
import torch
import yaml

from densitybench import cli, models, runs, train, window

SMOKE_RUNS = Path(runs.PROFILES_DIR) / "smoke.yaml"


class StepClock:
    """A clock for ``train``'s deadline checks that advances one second per reading, so that a
    deadline falls at a chosen check."""

    def __init__(self):
        self.now = 0.0

    def time(self) -> float:
        self.now += 1.0
        return self.now


def tiny_data(n, seed):
    return torch.bernoulli(torch.full((n, 1, 3, 3), 0.4), generator=torch.Generator().manual_seed(seed))


def fit_made(checkpoint, deadline=None):
    model = models.create("made", (1, 3, 3), init_seed=0, hidden_sizes=[8], n_masks=2, ordering="random",
                          resample_every=3)
    history = train.fit(model, tiny_data(40, 0), tiny_data(20, 1), epochs=3, batch_size=8, patience=5,
                        progress=False, device="cpu", checkpoint=checkpoint, deadline=deadline)
    return model, history


def test_a_deadline_stops_within_an_epoch_and_the_next_call_resumes_bitwise(tmp_path, monkeypatch):
    whole, whole_history = fit_made(tmp_path / "a.pt")
    assert whole_history.stop_reason == "epoch_cap" and not whole_history.interrupted

    clock = StepClock()
    monkeypatch.setattr(train, "time", types.SimpleNamespace(time=clock.time, perf_counter=time.perf_counter))
    # readings: one before each epoch, one after each of its 5 steps, one after its last step:
    # the 11th is after the third step of epoch 2
    _, cut = fit_made(tmp_path / "b.pt", deadline=11.0)
    assert cut.interrupted and cut.stop_reason is None and not cut.stopped_by_budget
    reached = json.loads(train.progress_path(tmp_path / "b.pt").read_text())
    assert (reached["epoch"], reached["step"]) == (1, 3)
    monkeypatch.undo()

    again, history = fit_made(tmp_path / "b.pt")
    assert history.resumed_from == {"epoch": 1, "step": 3} and not history.interrupted
    assert history.stop_reason == "epoch_cap"
    assert [e["train_loss"] for e in history.epochs] == [e["train_loss"] for e in whole_history.epochs]
    assert [e["valid_loss"] for e in history.epochs] == [e["valid_loss"] for e in whole_history.epochs]
    for (name, p), q in zip(whole.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_past_deadline_leaves_an_em_fit_unfitted_and_a_run_untouched(tmp_path):
    model = models.create("bernoulli_mixture", (1, 3, 3), n_components=2, max_iter=3)
    history = train.fit(model, tiny_data(40, 0), tiny_data(20, 1), epochs=1, progress=False, device="cpu",
                        deadline=time.time() - 1)
    assert history.interrupted and history.stop_reason is None and history.epochs == []

    spec = runs.load_profile("smoke").spec("mob_k2")
    result = runs.train_one(spec, tmp_path, device="cpu", deadline=time.time() - 1)
    assert result["status"] == "not_started"
    assert not (tmp_path / spec.folder).exists()


def write_profile(folder: Path) -> str:
    """A profile of two smoke runs: an EM fit of a second, then a MADE with 500 epochs (tens of
    seconds on a CPU, at least 5 even on a fast one) that a short window cuts."""
    smoke = yaml.safe_load(SMOKE_RUNS.read_text())["runs"]
    slow = dict(smoke["made-1mask"], hparams={"hidden_sizes": [512], "n_masks": 1}, label="MADE 512, 500 epochs",
                train={"epochs": 500, "patience": 500}, note=None)
    folder.mkdir()
    (folder / "windowed.yaml").write_text(yaml.safe_dump({
        "description": "two runs for the window tests", "device": "cpu",
        "runs": {"mob": smoke["mob_k2"], "slow": slow}}))
    return "windowed"


@pytest.mark.slow
def test_a_second_window_resumes_the_cut_run_and_skips_the_finished_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "PROFILES_DIR", tmp_path / "profiles")
    profile = write_profile(tmp_path / "profiles")
    out = tmp_path / "out"
    root = runs.store_root(profile, out)

    t0 = time.time()
    assert cli.main(["window", "--profile", profile, "--limit", "8", "--margin", "1", "--out", str(out)]) == 0
    first = json.loads((out / profile / "window.json").read_text())
    assert time.time() - t0 < 8 + 3  # the window ends on time (the margin covers the last checkpoint)
    assert first["finished"] == ["mob-s0"] and first["not_started"] == [] and first["failed"] == {}
    (cut,) = first["in_progress"]
    assert cut["run"] == "slow-s0" and not first["complete"]
    assert cut["epoch"] >= 1 and cut["epoch"] < 500
    assert not (root / "slow-s0" / "metrics.json").exists()  # nothing recorded for a cut run
    stored = torch.load(root / "slow-s0" / "train_state.pt", weights_only=False)
    assert stored["stop_reason"] is None  # the window's end is not the run's stop reason
    assert "in progress  slow-s0" in capsys.readouterr().out

    summary = window.run_window(profile, 300, out, progress=False)
    assert summary["skipped"] == ["mob-s0"] and summary["finished"] == ["slow-s0"] and summary["complete"]
    record = json.loads((root / "slow-s0" / "metrics.json").read_text())
    assert record["stop_reason"] == "epoch_cap" and record["epochs"] == 500
    assert not record["stopped_by_budget"]
    # the epochs of the first window are kept as they were (their timings too): continued, not restarted
    assert record["history"][:cut["epoch"]] == stored["history"][:cut["epoch"]]
    assert summary["resumed"] == {"slow-s0": {"epoch": cut["epoch"], "step": cut["step"]}}
    assert [e["epoch"] for e in record["history"]] == list(range(1, 501))
    lines = (out / profile / "windows.jsonl").read_text().splitlines()
    assert [json.loads(line)["complete"] for line in lines] == [False, True]


def test_the_window_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="limit"):
        window.run_window("smoke", 0, tmp_path)
    with pytest.raises(ValueError, match="margin"):
        window.run_window("smoke", 10, tmp_path, margin=10)
    with pytest.raises(ValueError, match="not both"):
        window.run_window("smoke", 10, tmp_path, gpus_per_run=0.5, pack="auto")


def test_gpu_shares_follow_the_measured_footprint():
    prof = runs.load_profile("smoke")
    small, nade = prof.spec("made-1mask"), prof.spec("nade")
    big = runs.make_spec("big", "made", "digits_binary", hparams={"hidden_sizes": [4096, 4096]},
                         train={"epochs": 1, "batch_size": 100})
    assert window.training_footprint(big, (1, 8, 8)) > 4096 * 4096 * 4 * 4  # weights, gradients, Adam's moments
    assert window.training_footprint(small, (1, 8, 8)) < window.training_footprint(big, (1, 8, 8))
    shapes = {"digits_binary": (1, 8, 8)}
    gib = 1 << 30
    shares = window.gpu_fractions([small, nade, big], shapes, gpu_bytes=80 * gib)
    assert shares["made-1mask-s0"] == shares["nade-s0"] == pytest.approx(0.34)  # three runs share the GPU
    shares = window.gpu_fractions([small, nade, big], shapes, gpu_bytes=int(1.2 * gib))
    assert shares["big-s0"] == 1.0 and shares["made-1mask-s0"] < 1.0  # the big one needs a GPU of its own


@pytest.mark.slow
def test_a_window_trains_the_smoke_plan_within_its_limit_and_the_next_resumes(tmp_path):
    out = tmp_path / "out"
    t0 = time.time()
    first = window.run_window("smoke", 60, out, device="cpu", progress=False)
    assert time.time() - t0 < 60 + 10  # a run's recording may run past the margin, not past the limit by much
    absent = {run for run, why in first["failed"].items() if why.startswith("data absent")}
    assert set(first["failed"]) == absent  # no run failed but for want of its data
    plan = [s.folder for s in runs.load_profile("smoke").specs() if s.folder not in absent]
    seen = first["finished"] + [r["run"] for r in first["in_progress"]] + first["not_started"]
    assert sorted(seen) == sorted(plan)
    second = window.run_window("smoke", 600, out, device="cpu", progress=False)
    assert not second["in_progress"] and not second["not_started"]
    assert sorted(second["skipped"]) == sorted(first["finished"])
    assert sorted(second["finished"]) == sorted(set(plan) - set(first["finished"]))
    root = runs.store_root("smoke", out)
    for r in first["in_progress"]:  # each cut run continued where the first window left it
        record = json.loads((root / r["run"] / "metrics.json").read_text())
        assert record["stop_reason"] in train.STOP_REASONS
        assert len(record["history"]) >= r["epoch"]
        if r["epoch"] or r["step"]:
            assert second["resumed"][r["run"]] == {"epoch": r["epoch"], "step": r["step"]}
