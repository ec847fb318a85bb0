"""The committed results: complete records, honest labels, and numbers that re-evaluate
from their checkpoints to 0.01 nats."""

import json
import re

import pytest

from densitybench import anchors, data, evaluate, models, paths, runs, train
from conftest import require_dataset

RUNS = sorted((paths.REPO_ROOT / "results").glob("*/runs/*/metrics.json"))
REQUIRED = ["model", "dataset", "likelihood", "test_nll_nats", "test_nll_se", "bits_per_dim", "n_params",
            "train_seconds", "sample_seconds", "epochs", "seed", "config", "git_commit", "versions", "device"]


def test_there_are_committed_results():
    assert any(p.parts[-4] == "mnist" for p in RUNS), "results/mnist/runs has no run records"


@pytest.mark.parametrize("path", RUNS, ids=lambda p: f"{p.parts[-4]}/{p.parts[-2]}")
def test_record_is_complete_and_labelled(path):
    rec = json.loads(path.read_text())
    for key in REQUIRED:
        assert rec.get(key) is not None, key
    assert rec["likelihood"] in models.LIKELIHOOD_KINDS
    assert rec["likelihood"] == models.MODELS[rec["model"]].likelihood
    if rec["anchor"]:
        assert rec["anchor"]["value"] == anchors.ANCHORS[rec["anchor"]["key"]]["value"]
        assert rec["protocol_note"]
    # what the record says of itself (label, published anchor, protocol note) is what its
    # profile says now: `densitybench annotate` carries a profile's corrections into the records
    entry = {s.folder: s for s in runs.load_profile(path.parts[-4]).specs()}.get(path.parts[-2])
    assert entry is not None, "a committed run of no entry of its profile's plan"
    assert runs.annotate(entry, path.parents[1], dry_run=True) == []
    assert rec["test_nll_se"] > 0
    # a committed run is a run of the store: its spec and key, and why it stopped
    spec = json.loads((path.parent / "spec.json").read_text())
    assert rec["key"] == spec["key"] == runs.RunSpec.from_json(spec).key
    assert rec["stop_reason"] in train.STOP_REASONS


#: models whose test number takes many CPU minutes to recompute (IWAE with k = 5000 over 10,000
#: images; a Parzen window over 10,000 regenerated samples): run with `pytest -m expensive`
EXPENSIVE = {"vae", "gan"}


def _reevaluable(paths_):
    for p in paths_:
        rec = json.loads(p.read_text())
        if rec["checkpoint"]["path"] and (p.parent / rec["checkpoint"]["path"]).is_file():
            # the large Beyond MNIST sets (generated Atari frames, silhouettes, Fashion-MNIST) take minutes too
            slow_data = p.parts[-4] in ("atari", "caltech", "fashion")
            marks = [pytest.mark.expensive] if slow_data or (rec["model"] in EXPENSIVE and rec["dataset"] not in (
                "digits", "digits_binary")) else []
            yield pytest.param(p, marks=marks, id=f"{p.parts[-4]}/{p.parts[-2]}")


@pytest.mark.parametrize("path", list(_reevaluable(RUNS)))
def test_number_reevaluates_from_checkpoint(path):
    rec = json.loads(path.read_text())
    if rec["dataset"] not in ("digits", "digits_binary") and rec["dataset"] not in data.generated():
        require_dataset(re.sub(r"_binarized_seed\d+$", "", rec["dataset"]))  # a derived set needs its source
    res = evaluate.reevaluate(path.parent)
    assert abs(res["difference"]) <= 0.01, res


@pytest.mark.parametrize("path", RUNS, ids=lambda p: f"{p.parts[-4]}/{p.parts[-2]}")
def test_a_run_without_its_checkpoint_says_why(path):
    # `densitybench evaluate --profile` lists such a run by name instead of re-evaluating it
    rec = json.loads(path.read_text())
    if evaluate.has_checkpoint(path.parent):
        assert rec["checkpoint"]["path"] == "model.pt"
    else:
        assert rec["checkpoint"]["note"] and rec["checkpoint"]["size_mb"] > evaluate.MAX_CHECKPOINT_MB
