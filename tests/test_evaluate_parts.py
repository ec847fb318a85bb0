"""The parts of evaluation one by one: test-set numbers, samples, the neighbour check, the
figures of a run, provenance, the record, and the re-evaluation of a whole run store."""

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from densitybench import (atomic, data, evaluate, models, neighbours, paths, plots, provenance, record, runs, sampling,
                          train)
from densitybench.cli import main as cli
from densitybench.models.made import MADE

# --------------------------------------------------------------------------- nothing runs at import

_IMPORT_PROBE = textwrap.dedent("""
    import json, subprocess, sys
    started = []

    class NoProcess:
        def __init__(self, args, *a, **k):
            started.append([str(x) for x in args] if isinstance(args, (list, tuple)) else str(args))
            raise OSError("no process may start while importing")

    subprocess.Popen = NoProcess
    import densitybench.evaluate
    print(json.dumps(started))
""")


def test_importing_evaluate_starts_no_process():
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, timeout=300,
                         cwd=paths.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    started = json.loads(out.stdout.strip().splitlines()[-1])
    assert started == [], f"importing densitybench.evaluate started {started}"


# --------------------------------------------------------------------------- the test-set numbers

@pytest.fixture(scope="module")
def digits_binary():
    return data.load("digits_binary")


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(scope="module")
def made(digits_binary):
    return models.create("made", digits_binary.image_shape, hidden_sizes=[16], n_masks=1, seed=0, init_seed=0)


@pytest.fixture(scope="module")
def pca_gmm(digits):
    y = data.dequantize(digits.train, digits.n_levels, torch.Generator().manual_seed(0))
    model = models.create("pca_gmm", digits.image_shape, variance=0.9, n_components=2, seed=0)
    train.fit(model, y, y[:100], progress=False, device="cpu")
    return model


def test_model_input_is_the_levels_or_one_fixed_dequantization(made, pca_gmm, digits):
    x = digits.split("test")
    assert evaluate.model_input(made, x, digits.n_levels) is x
    y = evaluate.model_input(pca_gmm, x, digits.n_levels)
    assert torch.equal(y, evaluate.model_input(pca_gmm, x, digits.n_levels))  # one draw, the same every time
    assert not torch.equal(y, evaluate.model_input(pca_gmm, x, digits.n_levels, seed=1))
    # each y lies in its level's cell [x / K, (x + 1) / K)
    assert bool(((y * digits.n_levels).floor() == x).all())


def test_per_example_nll_is_minus_log_prob_whatever_the_batch(made, digits_binary):
    x = digits_binary.split("test")
    nll = evaluate.per_example_nll(made, x, batch_size=7)
    assert nll.shape == (len(x),) and nll.dtype == np.float64
    np.testing.assert_allclose(nll, -made.log_prob(x).double().detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(nll, evaluate.per_example_nll(made, x, batch_size=1000), rtol=1e-6)


def test_nll_summary_adds_d_log_k_for_a_continuous_model(pca_gmm, digits):
    s = evaluate.nll_summary(pca_gmm, digits, "test")
    y = evaluate.model_input(pca_gmm, digits.split("test"), digits.n_levels)
    nll = -pca_gmm.log_prob(y).double()
    assert s["nll_nats_continuous"] == pytest.approx(nll.mean().item(), rel=1e-9)
    assert s["nll_nats"] == pytest.approx(s["nll_nats_continuous"] + 64 * math.log(17), rel=1e-12)
    assert s["nll_se"] == pytest.approx((nll.std() / math.sqrt(len(nll))).item(), rel=1e-6)
    assert s["bits_per_dim"] == pytest.approx(s["nll_nats"] / (64 * math.log(2)))


# --------------------------------------------------------------------------- samples


def test_draw_samples_is_one_generator_in_batches(made):
    a = sampling.draw_samples(made, 23, torch.Generator().manual_seed(4), batch_size=5)
    b = sampling.draw_samples(made, 23, torch.Generator().manual_seed(4), batch_size=5)
    assert a.shape == (23, *made.data_shape) and torch.equal(a, b)
    c = sampling.draw_samples(made, 23, torch.Generator().manual_seed(5), batch_size=5)
    assert not torch.equal(a, c)
    assert evaluate.draw_samples is sampling.draw_samples and evaluate.to_image is sampling.to_image


def test_timed_samples_are_the_models_own_draw_of_the_seed(made):
    s, seconds = sampling.timed_samples(made, 9, seed=3)
    assert torch.equal(s, made.sample(9, generator=torch.Generator().manual_seed(3)))
    assert seconds >= 0


def test_to_image_maps_levels_and_clips_continuous_values_to_the_unit_interval(digits):
    x = digits.split("test")[:5]
    img = sampling.to_image(x, digits, continuous=False)
    assert img.min() >= 0 and img.max() <= 1 and torch.equal(img * 16, x.float())
    y = torch.tensor([[-0.5, 0.25, 1.5]])
    assert torch.equal(sampling.to_image(y, digits, continuous=True), torch.tensor([[0.0, 0.25, 1.0]]))


# --------------------------------------------------------------------------- the neighbour check


@pytest.mark.parametrize("name", ["digits_binary", "digits"])
def test_a_copied_training_image_is_its_own_nearest_neighbour(name, request):
    ds = request.getfixturevalue(name)
    idx = torch.tensor([3, 100, 7])
    samples = sampling.to_image(ds.train[idx], ds, False)
    nn = neighbours.neighbour_check(samples, ds, n_test=50, seed=1)
    assert nn["metric"] == ("hamming" if name == "digits_binary" else "l2")
    assert torch.equal(nn["sample_distances"], torch.zeros(3, dtype=nn["sample_distances"].dtype))
    # the neighbour found is an identical image (the index may be a duplicate of the copied one)
    assert torch.equal(nn["train"][nn["sample_index"]], samples)
    assert nn["test_distances"].shape == (50,) and bool((nn["test_distances"] >= 0).all())
    s = neighbours.summary(nn)
    assert s["samples"]["mean"] == 0 and s["n_test"] == 50 and s["metric"] == nn["metric"]


# --------------------------------------------------------------------------- the figures of a run


def test_run_figures_are_the_grid_the_pairs_and_the_histogram(made, digits_binary):
    samples = sampling.to_image(made.sample(20, generator=torch.Generator().manual_seed(0)), digits_binary, False)
    nn = neighbours.neighbour_check(samples, digits_binary, n_test=30)
    figs = plots.run_figures(samples, nn, "MADE")
    assert list(figs) == ["samples.png", "neighbours.png", "nn_distances.png"]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs.values())
    assert figs["samples.png"].axes[0].get_title() == "MADE: samples"
    assert len(figs["neighbours.png"].axes) == 2 * 16  # at most 16 pairs, each a sample above its neighbour
    assert figs["nn_distances.png"].axes[0].get_title() == "MADE"
    import matplotlib.pyplot as plt

    plt.close("all")


# --------------------------------------------------------------------------- provenance


def _git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_commit_describes_the_code_when_asked_not_when_imported(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    first = provenance.git_commit(tmp_path)
    assert first == {"commit": _git(tmp_path, "rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path) == {"commit": first["commit"], "dirty": True}
    _git(tmp_path, "commit", "-q", "-am", "two")
    second = provenance.git_commit(tmp_path)
    assert second["commit"] != first["commit"] and second["dirty"] is False
    assert provenance.git_commit(tmp_path / "src" / "nowhere") == {"commit": None, "dirty": None}


def test_provenance_fields():
    p = provenance.provenance(torch.device("cpu"))
    assert list(p) == ["git_commit", "git_dirty", "versions", "device", "platform", "timestamp"]
    assert p["device"].startswith("cpu: ") and p["versions"]["torch"] == torch.__version__
    assert evaluate.provenance is provenance.provenance


# --------------------------------------------------------------------------- the record


def test_jsonable_writes_numpy_numbers_tuples_and_paths_and_refuses_the_rest():
    out = json.loads(json.dumps({"a": np.float32(0.5), "b": np.int64(3), "c": (1, 2), "d": paths.REPO_ROOT},
                                default=record.jsonable))
    assert out == {"a": 0.5, "b": 3, "c": [1, 2], "d": str(paths.REPO_ROOT)}
    with pytest.raises(TypeError, match="object"):
        json.dumps({"e": object()}, default=record.jsonable)
    assert evaluate.jsonable is record.jsonable


def test_save_checkpoint_reloads_to_the_same_log_prob_and_says_whether_it_is_committed(tmp_path, made, digits_binary):
    ck = record.save_checkpoint(made, tmp_path, max_mb=10.0)
    assert ck == {"path": "model.pt", "size_mb": ck["size_mb"], "committed": True}
    x = digits_binary.split("test")[:50]
    assert torch.equal(models.load(tmp_path / "model.pt").log_prob(x), made.log_prob(x))
    assert not (tmp_path / ".gitignore").exists()
    ck = record.save_checkpoint(made, tmp_path, max_mb=0.0)
    assert ck["committed"] is False and "not committed" in ck["note"]
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == "model.pt"


def test_check_finite_names_every_bad_number():
    record.check_finite({"nll_nats": 1.0, "nll_nats_continuous": None}, "r")
    with pytest.raises(ValueError, match=r"run r: nll_nats, valid_nll_se not finite"):
        record.check_finite({"nll_nats": math.inf, "nll_se": 0.1, "valid_nll_se": math.nan}, "r")


def test_record_run_writes_metrics_json_last(tmp_path, monkeypatch, made, digits_binary):
    written = []
    replace = atomic.replace_with

    def spy(tmp, path):
        written.append(Path(path).name)
        return replace(tmp, path)

    monkeypatch.setattr(atomic, "replace_with", spy)
    rec = evaluate.record_run(made, digits_binary, train.History(), tmp_path / "run", {"model": "made"}, n_samples=4,
                              artifacts={"trace": np.arange(3)})
    assert written[-1] == "metrics.json" and written.count("metrics.json") == 1
    assert {"samples.npy", "samples.png", "neighbours.png", "nn_distances.png", "model.pt", "artifacts.npz"} <= set(written)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_nll_nats"] == rec["test_nll_nats"]


def test_a_non_finite_number_writes_no_record(tmp_path, monkeypatch, made, digits_binary):
    monkeypatch.setattr(evaluate, "nll_summary", lambda *a, **k: {"nll_nats": math.nan, "nll_se": 0.0})
    with pytest.raises(ValueError, match="nll_nats not finite"):
        evaluate.record_run(made, digits_binary, train.History(), tmp_path / "run", {"model": "made"}, n_samples=4)
    assert not (tmp_path / "run" / "metrics.json").exists()


# --------------------------------------------------------------------------- re-evaluating a store


class NoLikelihoodMADE(MADE):
    """A MADE that declares no likelihood, standing for a model whose test number cannot be recomputed."""

    likelihood = "none"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run store of the smoke profile: a binary run, a dequantized continuous run, a run without
    likelihood, and a run whose checkpoint is absent."""
    root = tmp_path_factory.mktemp("results")
    store = runs.store_root("smoke", root)
    specs = {s.name: s for s in runs.load_profile("smoke").specs(names=["made-1mask", "digits-pca_gmm"])}
    for spec in specs.values():
        runs.train_one(spec, store, device="cpu", threads=1)
    shutil.copytree(store / "made-1mask-s0", store / "made-uncommitted-s0")
    (store / "made-uncommitted-s0" / "model.pt").unlink()
    (store / "partial-s0").mkdir()  # an unfinished run (no metrics.json) is not a result
    mp = pytest.MonkeyPatch()
    mp.setitem(models.MODELS, "made_no_likelihood", NoLikelihoodMADE)
    ds = data.load("digits_binary")
    model = models.create("made_no_likelihood", ds.image_shape, hidden_sizes=[8], seed=0, init_seed=0)
    evaluate.record_run(model, ds, train.History(), store / "no-likelihood-s0", {"model": "made"}, n_samples=4)
    yield root
    mp.undo()


def _store_copy(store, tmp_path):
    shutil.copytree(store, tmp_path / "results")
    return tmp_path / "results"


def test_every_kept_checkpoint_of_a_profile_reevaluates(store, tmp_path, capsys):
    root = _store_copy(store, tmp_path)
    assert cli(["evaluate", "--profile", "smoke", "--results-root", str(root)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.split() and ln.split()[0].endswith("-s0")}
    assert set(lines) == {"made-1mask-s0", "digits-pca_gmm-s0", "no-likelihood-s0"}
    assert "no likelihood to recompute" in lines["no-likelihood-s0"]
    assert "3 runs re-evaluated" in out
    assert "1 without a checkpoint (not re-evaluated): made-uncommitted-s0" in out
    res = evaluate.reevaluate_store(sorted(runs.store_root("smoke", root).iterdir()))
    rows = {r["run"]: r for r in res["rows"]}
    assert abs(rows["digits-pca_gmm-s0"]["difference"]) < 1e-6 and abs(rows["made-1mask-s0"]["difference"]) < 1e-6
    assert rows["no-likelihood-s0"]["recomputed"] is None and rows["no-likelihood-s0"]["ok"]
    assert res["failed"] == [] and res["max_abs_difference"] < 1e-6


@pytest.mark.parametrize("run", ["made-1mask-s0", "digits-pca_gmm-s0"])
def test_a_corrupted_number_fails_the_profile_and_is_named(store, tmp_path, capsys, run):
    root = _store_copy(store, tmp_path)
    f = runs.store_root("smoke", root) / run / "metrics.json"
    rec = json.loads(f.read_text())
    rec["test_nll_nats"] += 0.05
    f.write_text(json.dumps(rec))
    assert cli(["evaluate", "--profile", "smoke", "--results-root", str(root)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(run))
    assert line.split()[3] == "-5.00e-02" and line.endswith("NO")
    assert f"1 outside the tolerance or not recomputed: {run}" in out
    # the tolerance is the caller's
    assert cli(["evaluate", "--profile", "smoke", "--results-root", str(root), "--tolerance", "0.1"]) == 0


def test_a_checkpoint_that_does_not_load_fails_with_its_error(store, tmp_path, capsys):
    root = _store_copy(store, tmp_path)
    (runs.store_root("smoke", root) / "made-1mask-s0" / "model.pt").write_bytes(b"not a checkpoint")
    assert cli(["evaluate", "--profile", "smoke", "--results-root", str(root)]) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("made-1mask-s0"))
    assert "NO" in line and "Error" in line


def test_the_run_folder_form_still_works_and_refuses_a_partial_run(store, tmp_path, capsys):
    root = _store_copy(store, tmp_path)
    folder = runs.store_root("smoke", root)
    assert cli(["evaluate", str(folder / "made-1mask-s0"), str(folder / "made-uncommitted-s0")]) == 0
    out = capsys.readouterr().out
    assert "1 runs re-evaluated" in out and "made-uncommitted-s0" in out
    with pytest.raises(SystemExit):
        cli(["evaluate", str(folder / "partial-s0")])
    with pytest.raises(SystemExit):
        cli(["evaluate", "--profile", "smoke", str(folder / "made-1mask-s0")])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate.reevaluate(folder / "made-uncommitted-s0")
