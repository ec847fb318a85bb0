"""The throughput benchmark: one row per distinct configuration with finite positive rates, a
JSON report, the one-step rule, the comparison's ratios, and the script that measures another
source tree."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from densitybench import bench, cli, models, runs, train

REPO = Path(__file__).resolve().parent.parent
#: a slice of the smoke profile with every kind of model: gradient-trained on binary data (MADE),
#: continuous on dequantized levels (NICE), adversarial (GAN) and fitted by EM (two runs that
#: share one configuration)
RUNS = ["made-1mask", "nice", "gan", "pca_gmm", "digits-pca_gmm"]


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    rc = cli.main(["bench", "--profile", "smoke", "--runs", *RUNS, "--device", "cpu", "--seconds", "0.2",
                   "--json", str(out)])
    return rc, out


def test_one_row_per_distinct_configuration(smoke_report):
    rc, out = smoke_report
    assert rc == 0
    report = _strict_json(out.read_text())
    # the configurations, grouped here from the profile's specs independently of the benchmark
    expected: dict[tuple, list[str]] = {}
    for spec in runs.load_profile("smoke").specs(names=RUNS):
        key = (spec.model, spec.dataset, json.dumps(spec.hparams, sort_keys=True), spec.train["batch_size"])
        if spec.name not in expected.setdefault(key, []):
            expected[key].append(spec.name)
    got = {(r["model"], r["dataset"], json.dumps(r["hparams"], sort_keys=True), r["batch_size"]): r["runs"]
           for r in report["rows"]}
    assert len(report["rows"]) == len(got) == len(expected)
    assert got == expected
    for field in ("device", "device_type", "torch", "threads", "commit", "time", "seconds", "profile"):
        assert field in report
    assert report["device_type"] == "cpu" and report["profile"] == "smoke" and report["threads"] >= 1


def test_throughputs_are_positive_and_finite(smoke_report):
    report = _strict_json(smoke_report[1].read_text())
    for row in report["rows"]:
        assert "error" not in row, row
        cls = models.MODELS[row["model"]]
        assert isinstance(row["n_params"], int) and row["n_params"] > 0, row["name"]
        if cls.trained_by_gradient:
            tr = row["train"]
            assert _positive(tr["images_per_s"]) and _positive(tr["step_s"]) and tr["steps"] >= 1
            # images/s is the images of the timed steps over their time
            assert tr["images_per_s"] == pytest.approx(tr["images"] / tr["seconds"])
            assert tr["images"] <= tr["steps"] * row["batch_size"]
            assert tr["single_step"] or tr["seconds"] >= report["seconds"]
        else:  # fitted by EM: no training step, its evaluation still timed
            assert row["train"] is None
        ev = row["eval"]
        assert _positive(ev["images_per_s"]) and ev["batch_size"] == train.eval_batch_size("cpu")
        assert ev["single_step"] or ev["seconds"] >= report["seconds"]


def test_one_step_longer_than_the_budget_is_measured_alone():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.03)
        return 10

    out = bench._timed_loop(slow, bench.resolve_device("cpu"), seconds=0.01)
    assert out["single_step"] and out["steps"] == 1 and len(calls) == 1
    assert out["images_per_s"] == pytest.approx(10 / out["seconds"])

    calls.clear()
    out = bench._timed_loop(lambda: calls.append(1) or 4, bench.resolve_device("cpu"), seconds=0.05)
    assert not out["single_step"] and out["seconds"] >= 0.05
    assert out["steps"] < len(calls)  # the warm-up steps are not counted
    assert out["images"] == 4 * out["steps"]


def test_max_params_builds_but_does_not_time():
    report = bench.run("smoke", ["nade"], device="cpu", seconds=0.05, max_params=10)
    (row,) = report["rows"]
    assert row["n_params"] > 10 and row["train"] is None and row["eval"] is None
    assert "max-params" in row["skipped"]


def _row(name, model, train, evaluation, hidden=8, batch=100):
    return {"name": name, "model": model, "dataset": "digits_binary", "hparams": {"hidden_size": hidden},
            "batch_size": batch, "train": None if train is None else {"images_per_s": train},
            "eval": None if evaluation is None else {"images_per_s": evaluation}}


def test_compare_computes_ratios(tmp_path, capsys):
    before = {"profile": "smoke", "device": "cpu: x", "threads": 1, "torch": "t", "seconds": 1.0, "commit": None,
              "rows": [_row("nade", "nade", 100.0, 1000.0), _row("made", "made", 50.0, 400.0, hidden=4),
                       _row("made-wide", "made", 10.0, 100.0, hidden=64), _row("gone", "nade", 5.0, 5.0, hidden=2),
                       _row("pca", "pca_gmm", None, 300.0, hidden=1)]}
    after = {**before, "rows": [_row("nade-renamed", "nade", 150.0, 500.0),  # same configuration, another name
                                _row("made", "made", 100.0, 400.0, hidden=4),
                                _row("made-wide", "made", 40.0, 100.0, hidden=64),
                                _row("new", "nade", 7.0, 7.0, hidden=3),
                                _row("pca", "pca_gmm", None, 600.0, hidden=1)]}
    rows = {r["name"]: r for r in bench.compare(before, after)}
    assert rows["nade-renamed"]["train_before"] == 100.0 and rows["nade-renamed"]["train_ratio"] == pytest.approx(1.5)
    assert rows["nade-renamed"]["eval_ratio"] == pytest.approx(0.5)
    assert rows["made"]["train_ratio"] == pytest.approx(2.0) and rows["made"]["eval_ratio"] == pytest.approx(1.0)
    assert rows["made-wide"]["train_ratio"] == pytest.approx(4.0)
    assert rows["pca"]["train_ratio"] is None and rows["pca"]["eval_ratio"] == pytest.approx(2.0)
    assert rows["new"]["train_before"] is None and rows["new"]["train_ratio"] is None
    assert rows["gone"]["train_after"] is None and rows["gone"]["eval_ratio"] is None
    assert len(rows) == 6
    fam = bench.family_ratios(list(rows.values()))
    assert fam["made"]["train"] == pytest.approx(math.sqrt(2.0 * 4.0)) and fam["made"]["eval"] == pytest.approx(1.0)
    assert fam["pca_gmm"]["train"] is None and fam["nade"]["n"] == 3

    for name, report in (("before.json", before), ("after.json", after)):
        (tmp_path / name).write_text(json.dumps(report))
    assert cli.main(["bench", "--compare", str(tmp_path / "before.json"), str(tmp_path / "after.json")]) == 0
    printed = capsys.readouterr().out
    assert "nade-renamed" in printed and "4.00" in printed and "2.83" in printed


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_script", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_refuses_a_folder_without_the_library(tmp_path):
    with pytest.raises(SystemExit, match="no densitybench package"):
        _load_script().load_bench(tmp_path)


def test_script_measures_the_given_source_tree(tmp_path):
    out = tmp_path / "r.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--src", str(REPO / "src"),
                          "--profile", "smoke", "--runs", "nade", "--device", "cpu", "--seconds", "0.05",
                          "--json", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = _strict_json(out.read_text())
    assert report["library"] == bench._library_name()  # this tree's library, named by its commit
    assert [r["name"] for r in report["rows"]] == ["nade"] and _positive(report["rows"][0]["train"]["images_per_s"])
