"""Executors: every run is trained once and finished runs are skipped; Ray gives the local
results, retries a killed worker, and names a failing run without losing the others; a real
study trained by Ray equals the one trained locally, bit for bit.

Training is mostly replaced by :func:`fake_train`, which follows the contract of
``densitybench.runs.train_one`` and writes ``done.json`` into the run folder. Ray workers do
not see pytest's ``sys.path``, so this module is pickled by value for them.

One local Ray cluster serves every Ray test (the ``cluster`` fixture); ``run_all`` without an
address uses the Ray already running in the process and leaves it running.
"""

import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import ray  # noqa: E402  (a pinned dependency: its absence is a failure, not a skip)

from densitybench import executors, runs  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class FakeSpec:
    """The part of ``RunSpec`` the executors use; ``behaviour`` tells :func:`fake_train` what to do."""

    name: str
    seed: int = 0
    behaviour: str = "ok"  # "ok", "raise" or "kill_once"

    @property
    def folder(self) -> str:
        return f"{self.name}-s{self.seed}"

    def to_json(self) -> dict:
        return {"name": self.name, "seed": self.seed, "behaviour": self.behaviour}


def fake_train(spec: dict, root: str, *, device: str = "auto", data_dir=None, threads=None) -> dict:
    """``train_one``'s contract without training: ``done.json`` marks a finished run.

    Every call appends its process id to ``attempts.txt``; ``"kill_once"`` kills its own process
    on the first attempt (as the out-of-memory killer would), ``"raise"`` raises a ``ValueError``.
    """
    folder = Path(root) / f"{spec['name']}-s{spec['seed']}"
    result = {"name": spec["name"], "seed": spec["seed"], "key": f"k-{spec['name']}", "folder": str(folder)}
    if (folder / "done.json").is_file():
        return {**result, "status": "skipped", "seconds": 0.0}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "attempts.txt", "a") as f:
        f.write(f"{os.getpid()}\n")
    if spec["behaviour"] == "kill_once" and len(attempts(folder)) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if spec["behaviour"] == "raise":
        raise ValueError(f"training of {spec['name']} diverged at epoch 3")
    (folder / "done.json").write_text(json.dumps({"pid": os.getpid(), "threads": threads, "device": device}))
    return {**result, "status": "done", "seconds": 0.01}


def attempts(folder: Path) -> list[int]:
    """The process ids of :func:`fake_train`'s calls for the run in ``folder``."""
    path = Path(folder) / "attempts.txt"
    return [int(line) for line in path.read_text().split()] if path.is_file() else []


SPECS = [FakeSpec("made-1mask"), FakeSpec("made-1mask", seed=1), FakeSpec("nade")]


def relative(results: list[dict], root: Path) -> list[dict]:
    """``results`` with folders relative to ``root``, to compare stores at two roots."""
    return [{**r, "folder": os.path.relpath(r["folder"], root)} for r in results]


def report_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[densitybench]")]


# --------------------------------------------------------------------------- local


def test_local_runs_every_spec_in_order_then_skips(tmp_path, capsys):
    results = executors.run_all(SPECS, tmp_path, train_fn=fake_train)
    assert [(r["name"], r["seed"], r["status"]) for r in results] == [
        ("made-1mask", 0, "done"), ("made-1mask", 1, "done"), ("nade", 0, "done")]
    assert [r["folder"] for r in results] == [str(tmp_path / s.folder) for s in SPECS]
    assert {attempts(tmp_path / s.folder)[0] for s in SPECS} == {os.getpid()}  # in this process
    assert report_lines(capsys.readouterr().out) == [f"[densitybench] done {s.folder} in 0 s" for s in SPECS]

    again = executors.run_all(SPECS, tmp_path, train_fn=fake_train)
    assert [r["status"] for r in again] == ["skipped"] * 3
    assert all(len(attempts(tmp_path / s.folder)) == 1 for s in SPECS)
    assert report_lines(capsys.readouterr().out) == [f"[densitybench] skipped {s.folder}" for s in SPECS]


def test_local_failure_is_named_and_the_others_finish(tmp_path, capsys):
    specs = [FakeSpec("made-1mask"), FakeSpec("nice", behaviour="raise"), FakeSpec("nade")]
    with pytest.raises(RuntimeError) as info:
        executors.run_all(specs, tmp_path, train_fn=fake_train, progress=False)
    err = info.value
    assert isinstance(err, executors.RunsFailed)
    assert err.failures == {"nice-s0": "ValueError: training of nice diverged at epoch 3"}
    assert isinstance(err.errors["nice-s0"], ValueError) and err.__cause__ is err.errors["nice-s0"]
    assert "1 of 3 runs failed" in str(err) and "nice-s0: ValueError" in str(err)
    assert [r["name"] for r in err.results] == ["made-1mask", "nade"]
    assert (tmp_path / "nade-s0" / "done.json").is_file()
    assert capsys.readouterr().out == ""  # progress=False: silent


def test_unknown_executor(tmp_path):
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        executors.run_all(SPECS, tmp_path, executor="dask", train_fn=fake_train)


# --------------------------------------------------------------------------- ray


def test_ray_starts_a_local_cluster_and_shuts_it_down(tmp_path, capsys):
    """Without ``address`` and without a running Ray, run_all starts a cluster for its runs only."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process")
    results = executors.run_all(SPECS[:2], tmp_path, executor="ray", train_fn=fake_train)
    assert not ray.is_initialized()
    assert [r["status"] for r in results] == ["done", "done"]
    assert sorted(report_lines(capsys.readouterr().out)) == sorted(
        f"[densitybench] done {s.folder} in 0 s" for s in SPECS[:2])  # nothing of Ray's


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for every Ray test of this module."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_ray_gives_the_local_results(tmp_path, cluster, capsys):
    local = executors.run_all(SPECS, tmp_path / "local", train_fn=fake_train, progress=False)
    remote = executors.run_all(SPECS, tmp_path / "ray", executor="ray", train_fn=fake_train)
    assert ray.is_initialized()  # a Ray it did not start is left running
    assert relative(remote, tmp_path / "ray") == relative(local, tmp_path / "local")
    for s in SPECS:
        done = json.loads((tmp_path / "ray" / s.folder / "done.json").read_text())
        assert done["pid"] != os.getpid()  # trained in a worker
        assert done["threads"] == 1  # threads default to cpus_per_run
    assert sorted(report_lines(capsys.readouterr().out)) == sorted(
        f"[densitybench] done {s.folder} in 0 s" for s in SPECS)

    again = executors.run_all(SPECS, tmp_path / "ray", executor="ray", train_fn=fake_train, progress=False)
    assert [r["status"] for r in again] == ["skipped"] * 3


def test_ray_refuses_a_request_the_cluster_cannot_meet(tmp_path, cluster):
    with pytest.raises(ValueError, match=r"each run requests 1 GPU\(s\) but the Ray cluster has 0"):
        executors.run_all(SPECS, tmp_path, executor="ray", gpus_per_run=1, train_fn=fake_train, progress=False)
    assert not list(tmp_path.iterdir())  # nothing was started


def test_ray_killed_worker_is_retried(tmp_path, cluster):
    specs = [FakeSpec("made-1mask", behaviour="kill_once"), FakeSpec("nade")]
    results = executors.run_all(specs, tmp_path, executor="ray", train_fn=fake_train, progress=False)
    assert [r["status"] for r in results] == ["done", "done"]
    killed, survivor = attempts(tmp_path / "made-1mask-s0")
    assert killed != survivor
    assert json.loads((tmp_path / "made-1mask-s0" / "done.json").read_text())["pid"] == survivor


def test_ray_worker_killed_more_often_than_max_retries_fails(tmp_path, cluster):
    specs = [FakeSpec("made-1mask", behaviour="kill_once"), FakeSpec("nade")]
    with pytest.raises(executors.RunsFailed) as info:
        executors.run_all(specs, tmp_path, executor="ray", max_retries=0, train_fn=fake_train, progress=False)
    assert list(info.value.failures) == ["made-1mask-s0"]
    assert isinstance(info.value.errors["made-1mask-s0"], ray.exceptions.WorkerCrashedError)
    assert [r["name"] for r in info.value.results] == ["nade"]


def test_ray_exception_is_named_not_retried_and_the_others_finish(tmp_path, cluster, capsys):
    specs = [FakeSpec("made-1mask"), FakeSpec("nice", behaviour="raise"), FakeSpec("nade")]
    with pytest.raises(executors.RunsFailed) as info:
        executors.run_all(specs, tmp_path, executor="ray", train_fn=fake_train)
    err = info.value
    assert err.failures == {"nice-s0": "ValueError: training of nice diverged at epoch 3"}
    assert isinstance(err.errors["nice-s0"], ValueError)
    assert len(attempts(tmp_path / "nice-s0")) == 1  # not retried
    assert [r["name"] for r in err.results] == ["made-1mask", "nade"]
    assert "nice-s0: ValueError: training of nice diverged at epoch 3" in str(err)
    assert "[densitybench] failed nice-s0: ValueError: training of nice diverged at epoch 3" in report_lines(
        capsys.readouterr().out)


# --------------------------------------------------------------------------- the real training


def _numbers(metrics: dict) -> dict:
    """Every number of ``metrics.json`` that training determines (timings and provenance left out)."""
    out = {}

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                if "seconds" not in k and k not in ("timestamp", "device", "git_commit", "git_dirty"):
                    walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out[path] = x

    walk(metrics, "")
    return out


def test_ray_trains_the_real_runs_bitwise_like_local(tmp_path, cluster):
    specs = [
        runs.make_spec("made-a", "made", "digits_binary", hparams={"hidden_sizes": [16]},
                       train={"epochs": 2, "batch_size": 50}, options={"n_samples": 4}),
        runs.make_spec("nade-a", "nade", "digits_binary", hparams={"hidden_size": 8},
                       train={"epochs": 2, "batch_size": 50}, options={"n_samples": 4}),
    ]
    n_threads = torch.get_num_threads()
    try:
        local = executors.run_all(specs, tmp_path / "local", threads=1, progress=False)
    finally:
        torch.set_num_threads(n_threads)  # train_one sets this process's threads
    remote = executors.run_all(specs, tmp_path / "ray", executor="ray", threads=1, progress=False)
    assert [r["status"] for r in local] == [r["status"] for r in remote] == ["done", "done"]
    assert [r["key"] for r in remote] == [s.key for s in specs]
    for s in specs:
        a, b = tmp_path / "local" / s.folder, tmp_path / "ray" / s.folder
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        na, nb = _numbers(ma), _numbers(mb)
        assert {".test_nll_nats", ".valid_nll_nats", ".history[1].train_loss", ".history[1].valid_loss"} <= set(na)
        assert na == nb  # bitwise: JSON keeps every digit of a float
        wa, wb = (torch.load(d / "model.pt", map_location="cpu") for d in (a, b))
        wa, wb = (w.get("state_dict", w) if isinstance(w, dict) else w for w in (wa, wb))
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
        np.testing.assert_array_equal(np.load(a / "samples.npy"), np.load(b / "samples.npy"))

    again = executors.run_all(specs, tmp_path / "ray", executor="ray", threads=1, progress=False)
    assert [r["status"] for r in again] == ["skipped", "skipped"]


def train_killed_after_one_epoch(spec: dict, root: str, **settings) -> dict:
    """The real training, whose worker is killed with SIGKILL once the run has checkpointed its
    first epoch (the first attempt only): the retried task must resume from that checkpoint."""
    import threading
    import time

    marker = Path(root) / f".{spec['name']}-s{spec['seed']}.killed"
    if not marker.exists():
        marker.touch()
        progress = Path(root) / f"{spec['name']}-s{spec['seed']}" / "train_state.progress.json"

        def kill_after_first_epoch():
            while True:
                try:
                    if json.loads(progress.read_text())["epoch"] >= 1:
                        os.kill(os.getpid(), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
                time.sleep(0.005)

        threading.Thread(target=kill_after_first_epoch, daemon=True).start()
    return runs.train_one(spec, root, **settings)


def test_ray_retries_a_killed_training_which_resumes_bitwise(tmp_path, cluster):
    spec = runs.make_spec("made-k", "made", "digits_binary", hparams={"hidden_sizes": [16], "n_masks": 2,
                          "resample_every": 3}, train={"epochs": 4, "batch_size": 50}, options={"n_samples": 4})
    n_threads = torch.get_num_threads()
    try:
        executors.run_all([spec], tmp_path / "local", threads=1, progress=False)
    finally:
        torch.set_num_threads(n_threads)
    (tmp_path / "ray").mkdir()
    out = executors.run_all([spec], tmp_path / "ray", executor="ray", threads=1, progress=False,
                            train_fn=train_killed_after_one_epoch)
    assert out[0]["status"] == "done" and (tmp_path / "ray" / ".made-k-s0.killed").exists()
    a, b = tmp_path / "local" / spec.folder, tmp_path / "ray" / spec.folder
    assert _numbers(json.loads((a / "metrics.json").read_text())) == _numbers(
        json.loads((b / "metrics.json").read_text()))
    wa, wb = (torch.load(d / "model.pt", map_location="cpu")["state_dict"] for d in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
