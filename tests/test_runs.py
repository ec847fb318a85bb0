"""Runs as units: spec keys, profile validation, the run store (atomic, locked, resumable), errors."""

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import LossTurnsBad
from densitybench import data, models, paths, runs, study, train
from densitybench.cli import main as cli


def small_spec(**over):
    fields = dict(name="made-tiny", model="made", dataset="digits_binary",
                  hparams={"hidden_sizes": [16], "n_masks": 1}, train={"epochs": 3, "batch_size": 50},
                  options={"n_samples": 4})
    fields.update(over)
    return runs.make_spec(fields.pop("name"), fields.pop("model"), fields.pop("dataset"), **fields)


# --------------------------------------------------------------------------- spec keys


def test_the_key_changes_with_what_changes_a_number_and_only_with_it():
    base = small_spec()
    assert small_spec().key == base.key  # deterministic
    for changed in (small_spec(hparams={"hidden_sizes": [17], "n_masks": 1}), small_spec(dataset="digits"),
                    small_spec(seed=1), small_spec(train={"epochs": 4, "batch_size": 50}),
                    small_spec(evaluation={"valid_nll": False})):
        assert changed.key != base.key
    for same in (small_spec(label="another label"), small_spec(options={"n_samples": 64}),
                 small_spec(note="a note"), small_spec(chapter="made")):
        assert same.key == base.key
    assert base.folder == "made-tiny-s0"
    assert runs.RunSpec.from_json(json.loads(json.dumps(base.to_json()))).key == base.key


@pytest.mark.parametrize("over, field", [
    (dict(train={"epochs": 0}), "train.epochs"),
    (dict(train={"epochs": 2, "lr": -1.0}), "train.lr"),
    (dict(train={"epochs": 2, "bogus": 1}), "train.bogus"),
    (dict(hparams={"hidden_sizes": [0], "n_masks": 1}), "hidden_sizes"),
    (dict(hparams={"hidden_sizes": [16], "n_masks": 2.5}), "n_masks"),
    (dict(hparams={"hidden_sizes": [16], "n_levels": 1}), "n_levels"),
    (dict(hparams={"hidden_sizes": [16], "widht": 3}), "widht"),
    (dict(model="bernoulli_mixture", hparams={"n_components": 0}), "n_components"),
    (dict(model="nope"), "model"),
    (dict(seed=-1), "seed"),
    (dict(anchor="no_such_number"), "anchor"),
])
def test_a_spec_that_cannot_run_is_refused_naming_its_field(over, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        small_spec(**over)


# --------------------------------------------------------------------------- profiles


@pytest.fixture
def profiles_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "PROFILES_DIR", tmp_path)
    return tmp_path


def write_profile(folder, name, text):
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text))


BASE = """
    description: base
    defaults:
      train: {batch_size: 50}
    runs:
      made-a:
        chapter: made
        model: made
        dataset: digits_binary
        hparams: {hidden_sizes: [16]}
        train: {epochs: 2}
      nade-a:
        chapter: nade
        model: nade
        dataset: digits_binary
        hparams: {hidden_size: 8}
        train: {epochs: 2}
    chapters:
      made: {dataset: digits_binary}
"""


def test_a_profile_inherits_and_overrides_entries_and_seeds_are_an_axis(profiles_dir):
    write_profile(profiles_dir, "base", BASE)
    write_profile(profiles_dir, "child", """
        inherits: base
        device: cuda
        runs:
          made-a:
            train: {epochs: 9}
            seeds: [0, 1, 2]
          nade-a: null
    """)
    base, child = runs.load_profile("base"), runs.load_profile("child")
    assert [s.folder for s in base.specs()] == ["made-a-s0", "nade-a-s0"]
    specs = child.specs()
    assert [s.folder for s in specs] == ["made-a-s0", "made-a-s1", "made-a-s2"]
    assert all(s.train["epochs"] == 9 and s.train["batch_size"] == 50 for s in specs)  # merged, not replaced
    assert specs[0].hparams == {"hidden_sizes": [16]} and child.device == "cuda"
    assert child.chapter("made") == {"dataset": "digits_binary"}
    assert len({s.key for s in specs}) == 3


@pytest.mark.parametrize("text, message", [
    ("runs:\n  r:\n    chapter: made\n    model: made\n    dataset: digits_binary\n    train: {epochs: 2}\n"
     "    hparms: {}\n", "hparms"),
    ("runs:\n  r:\n    chapter: made\n    model: made\n    train: {epochs: 2}\n", "missing key 'dataset'"),
    ("runs:\n  r:\n    chapter: made\n    model: made\n    dataset: digits_binary\n", "train.epochs"),
    ("runz: {}\n", "runz"),
    ("inherits: nowhere\n", "nowhere"),
    ("runs:\n  r:\n    chapter: made\n    model: made\n    dataset: digits_binary\n    train: {epochs: 2}\n"
     "    hparams: {hidden_sizes: [0]}\n", "hidden_sizes"),
])
def test_a_bad_profile_is_refused_naming_the_key(profiles_dir, text, message):
    write_profile(profiles_dir, "bad", text)
    with pytest.raises(ValueError, match=message):
        runs.load_profile("bad")


def test_every_shipped_profile_loads_and_names_unique_folders():
    for name in runs.profile_names():
        prof = runs.load_profile(name)
        folders = [s.folder for s in prof.specs()]
        assert len(folders) == len(set(folders)), name


# --------------------------------------------------------------------------- the store


def weights_hash(folder: Path) -> str:
    state = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].numpy().tobytes())
    return h.hexdigest()


NUMBERS = ("test_nll_nats", "test_nll_se", "valid_nll_nats", "best_epoch", "epochs", "stop_reason")


def numbers(folder: Path) -> dict:
    rec = json.loads((folder / "metrics.json").read_text())
    hist = [(e["epoch"], e["train_loss"], e["valid_loss"]) for e in rec["history"]]
    return {**{k: rec[k] for k in NUMBERS}, "history": hist}


def test_a_run_is_recorded_done_and_a_second_call_skips_it(tmp_path):
    spec = small_spec()
    out = runs.train_one(spec, tmp_path, device="cpu")
    folder = tmp_path / spec.folder
    assert out["status"] == "done"
    rec = json.loads((folder / "metrics.json").read_text())
    assert rec["key"] == spec.key and rec["spec"]["key"] == spec.key and rec["stop_reason"] in train.STOP_REASONS
    assert json.loads((folder / "spec.json").read_text())["key"] == spec.key
    assert (folder / "model.pt").is_file() and rec["checkpoint"]["committed"] is True
    assert runs.status(spec, tmp_path)["status"] == "done"
    before = (folder / "metrics.json").stat().st_mtime_ns
    assert runs.train_one(spec, tmp_path, device="cpu")["status"] == "skipped"
    assert (folder / "metrics.json").stat().st_mtime_ns == before
    run = runs.ensure(spec, tmp_path)
    assert run.record["test_nll_nats"] == rec["test_nll_nats"]
    x = data.load("digits_binary").split("test")[:5]
    assert torch.isfinite(run.model().log_prob(x)).all()


def test_a_folder_holding_other_settings_is_never_reused_or_overwritten(tmp_path):
    spec = small_spec()
    runs.train_one(spec, tmp_path, device="cpu")
    other = small_spec(hparams={"hidden_sizes": [8], "n_masks": 1})  # same name and seed, other settings
    before = (tmp_path / spec.folder / "metrics.json").read_text()
    for call in (lambda: runs.train_one(other, tmp_path, device="cpu"), lambda: runs.ensure(other, tmp_path)):
        with pytest.raises(runs.SpecMismatch, match=r"hparams\.hidden_sizes: \[16\] != \[8\]") as err:
            call()
        assert spec.key in str(err.value) and other.key in str(err.value)
    assert (tmp_path / spec.folder / "metrics.json").read_text() == before


def test_annotate_corrects_what_a_run_says_of_itself_and_never_a_number(tmp_path):
    spec = small_spec(label="old label", anchor="made_1hl_1mask", note="old note, {epochs} epochs")
    runs.train_one(spec, tmp_path, device="cpu")
    folder = tmp_path / spec.folder
    before = json.loads((folder / "metrics.json").read_text())
    assert runs.annotate(spec, tmp_path) == []  # a record that agrees is left alone
    assert json.loads((folder / "metrics.json").read_text()) == before

    fixed = small_spec(label="new label", anchor=None, note="new note, at most {epochs} epochs")
    assert fixed.key == spec.key
    assert sorted(runs.annotate(fixed, tmp_path, dry_run=True)) == ["anchor", "label", "protocol_note"]
    assert json.loads((folder / "metrics.json").read_text()) == before  # a dry run writes nothing
    assert sorted(runs.annotate(fixed, tmp_path)) == ["anchor", "label", "protocol_note"]
    after = json.loads((folder / "metrics.json").read_text())
    assert (after["label"], after["anchor"], after["protocol_note"]) == ("new label", None, "new note, at most 3 epochs")
    assert after["config"]["anchor"] is None and after["spec"]["note"] == fixed.note
    assert json.loads((folder / "spec.json").read_text())["anchor"] is None
    assert after["annotations_changed"][-1]["fields"] == ["label", "anchor", "protocol_note"]
    for field in NUMBERS:
        assert after[field] == before[field], field
    assert after["history"] == before["history"] and after["key"] == before["key"]
    assert runs.status(fixed, tmp_path)["status"] == "done" and runs.annotate(fixed, tmp_path) == []

    other = small_spec(hparams={"hidden_sizes": [8], "n_masks": 1})
    with pytest.raises(runs.SpecMismatch):
        runs.annotate(other, tmp_path)


def test_a_published_number_of_another_model_cannot_be_an_anchor():
    from densitybench import anchors

    for key in anchors.RELATED:
        assert key not in anchors.ANCHORS
        with pytest.raises(ValueError, match="anchor"):
            small_spec(anchor=key)
    assert anchors.published_label(anchors.get("gated_pixelcnn")) == "80.10 nats (reimplementation)"
    assert anchors.published_label(anchors.get("made_1hl_1mask")) == "88.40 nats"


def test_a_second_writer_of_a_run_stops_naming_the_holder(tmp_path):
    spec = small_spec()
    with runs.lock(tmp_path / spec.folder):
        with pytest.raises(runs.RunLocked, match=f"pid {os.getpid()}"):
            runs.train_one(spec, tmp_path, device="cpu")
    assert not (tmp_path / spec.folder / "metrics.json").exists()
    assert runs.train_one(spec, tmp_path, device="cpu")["status"] == "done"  # the lock went with its holder


def test_a_run_without_metrics_is_partial_and_never_read_as_a_result(tmp_path):
    spec = small_spec()
    folder = tmp_path / spec.folder
    folder.mkdir()
    (folder / "spec.json").write_text(json.dumps(spec.to_json()))
    assert runs.status(spec, tmp_path)["status"] == "partial"
    with pytest.raises(runs.RunNotDone):
        runs.ensure(spec, tmp_path, train_missing=False)
    with pytest.raises(runs.RunNotDone):
        runs.Run(folder)


# --------------------------------------------------------------------------- kill and resume

KILLED_RUN = """
import sys
from densitybench import runs
runs.CHECKPOINT_SECONDS = 0.0  # a checkpoint after every optimiser step: kills land inside writes too
spec = runs.make_spec("made-kill", "made", "digits_binary", hparams={"hidden_sizes": [64], "n_masks": 3,
                      "ordering": "random", "resample_every": 2}, train={"epochs": 12, "batch_size": 32, "lr_step": 2},
                      options={"n_samples": 4})
runs.train_one(spec, sys.argv[1], device="cpu", threads=1)
"""


def test_a_run_killed_at_random_points_resumes_bitwise(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(root):
        return subprocess.Popen([sys.executable, str(script), str(root)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    whole = tmp_path / "whole"
    p = start(whole)
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    folder = whole / "made-kill-s0"

    killed = tmp_path / "killed"
    rng = random.Random(0)
    n_killed = 0
    progress = killed / "made-kill-s0" / "train_state.progress.json"
    for _ in range(5):
        seen = progress.read_text() if progress.exists() else None
        p = start(killed)
        t_end = time.time() + 60
        while p.poll() is None and time.time() < t_end and (not progress.exists() or progress.read_text() == seen):
            time.sleep(0.02)  # until this process has trained a step (imports take seconds)
        time.sleep(rng.uniform(0.0, 0.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            n_killed += 1
    assert n_killed >= 3, "the run finished before it could be killed: make it longer"
    assert not (killed / "made-kill-s0" / "metrics.json").exists()  # every kill landed before the end
    p = start(killed)
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    assert numbers(killed / "made-kill-s0") == numbers(folder)
    assert weights_hash(killed / "made-kill-s0") == weights_hash(folder)


# --------------------------------------------------------------------------- training errors


def test_training_stops_with_a_clear_error_when_the_loss_is_not_finite():
    d = data.load("digits_binary")
    model = LossTurnsBad(d.image_shape, bad_step=3)
    with pytest.raises(train.TrainingDiverged, match=r"run the-run: the training loss is nan at epoch 1, step 3"):
        train.fit(model, d.split("train"), d.split("valid"), epochs=2, batch_size=50, device="cpu", progress=False,
                  name="the-run")
    model = LossTurnsBad(d.image_shape, bad_step=10**9)
    with pytest.raises(train.TrainingDiverged, match=r"validation value is nan after epoch 1; last finite"):
        train.fit(model, d.split("train"), d.split("valid"), epochs=2, batch_size=50, device="cpu", progress=False,
                  name="the-run", valid_fn=lambda m, v: float("nan"))


def test_epochs_below_one_are_refused():
    d = data.load("digits_binary")
    model = models.create("made", d.image_shape, hidden_sizes=[8])
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train.fit(model, d.split("train"), d.split("valid"), epochs=0, device="cpu", progress=False)


def test_the_time_budget_is_checked_within_the_epoch():
    d = data.load("digits_binary")
    model = models.create("made", d.image_shape, hidden_sizes=[8])
    hist = train.fit(model, d.split("train"), d.split("valid"), epochs=5, batch_size=10, max_seconds=1e-9,
                     device="cpu", progress=False)
    assert hist.stop_reason == "time_budget" and len(hist.epochs) == 1
    assert hist.epochs[0]["partial"] and hist.epochs[0]["steps"] == 1  # 120 batches in an epoch, one was taken


def test_an_unknown_notebook_parameter_is_refused(capsys):
    with pytest.raises(SystemExit) as err:
        cli(["study", "--profile", "smoke", "--no-book", "--param", "epoks=3"])
    assert err.value.code == 2
    assert "unknown parameter 'epoks'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown parameter 'epoks'"):
        study.run("smoke", ["made"], parameters={"epoks": 3})


# --------------------------------------------------------------------------- notebooks


FAILING = """# %% tags=["parameters"]
profile = "smoke"
results_dir = None
# %%
raise RuntimeError("this chapter fails")
"""
SLOW = """# %% tags=["parameters"]
profile = "smoke"
results_dir = None
# %%
import time
time.sleep(120)
"""


@pytest.mark.slow
def test_a_failed_or_killed_execution_keeps_the_last_good_notebook(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    (nbs / "failing.py").write_text(FAILING)
    (nbs / "slow.py").write_text(SLOW)
    monkeypatch.setattr(paths, "notebooks_dir", lambda: nbs)
    out = tmp_path / "results" / "smoke"
    out.mkdir(parents=True)
    (out / "failing.ipynb").write_text("the last good notebook")
    with pytest.raises(Exception, match="this chapter fails"):
        study.execute("failing", "smoke", tmp_path / "results", progress=False)
    assert (out / "failing.ipynb").read_text() == "the last good notebook"
    assert (out / "failing.failed.ipynb").is_file()

    (out / "slow.ipynb").write_text("the last good notebook")
    code = ("import sys; from densitybench import paths, study; from pathlib import Path; "
            f"paths.notebooks_dir = lambda: Path({str(nbs)!r}); "
            f"study.execute('slow', 'smoke', {str(tmp_path / 'results')!r}, progress=False)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    t_end = time.time() + 120
    while not list(out.glob(".slow.*.tmp.ipynb")) and time.time() < t_end:
        time.sleep(0.2)
    assert list(out.glob(".slow.*.tmp.ipynb")), "papermill never started writing"
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert (out / "slow.ipynb").read_text() == "the last good notebook"


# --------------------------------------------------------------------------- plan and train


def test_train_trains_what_the_plan_misses_and_a_second_call_trains_nothing(tmp_path, capsys):
    root = str(tmp_path)
    assert cli(["plan", "--profile", "smoke", "--runs", "made-1mask", "nade", "--results-root", root, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run"], r["status"]) for r in rows] == [("made-1mask-s0", "missing"), ("nade-s0", "missing")]
    assert all(len(r["key"]) == 12 and r["folder"].endswith(r["run"]) for r in rows)
    assert cli(["train", "--profile", "smoke", "--runs", "made-1mask", "nade", "--results-root", root,
                "--device", "cpu", "--threads", "1"]) == 0
    assert "2 to train" in capsys.readouterr().out
    cli(["plan", "--profile", "smoke", "--runs", "made-1mask", "nade", "--results-root", root, "--json"])
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["done", "done"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("smoke/runs/*/metrics.json")}
    assert cli(["train", "--profile", "smoke", "--runs", "made-1mask", "nade", "--results-root", root]) == 0
    assert "2 done, 0 to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("smoke/runs/*/metrics.json")} == stamps


def test_the_published_plan_is_complete():
    """Every run of the published book (the mnist profile and the profiles it gathers) is done."""
    rows = runs.plan("mnist")
    assert len(rows) >= 80
    missing = [r["run"] for r in rows if r["status"] != "done"]
    assert not missing, missing
