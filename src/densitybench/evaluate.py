"""Final evaluation of a trained model and the one record each run writes.

The test split is touched here only. A run directory holds:

- ``metrics.json``: the numbers with their standard errors and provenance;
- ``samples.png`` / ``samples.npy``: a grid of samples and the raw samples;
- ``neighbours.png``, ``nn_distances.png``: samples beside their nearest training image,
  and those distances against the same distances of held-out test images;
- ``model.pt``: the checkpoint, when it is at most ``MAX_CHECKPOINT_MB``.

Protocol for each likelihood:

- binary or K-level data, discrete model: ``test_nll_nats`` is the exact mean NLL.
- K-level data, continuous model: the model is a density on the dequantized data
  ``y = (x + u) / K``, ``u ~ U(0, 1)^D`` drawn once with a fixed seed. Then
  ``test_nll_nats_continuous = -E log p(y)`` and the discrete NLL is bounded by
  ``test_nll_nats = test_nll_nats_continuous + D log K`` (the change of variables
  ``x + u -> y`` has Jacobian ``K^{-D}``); bits/dim = ``test_nll_nats / (D log 2)``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__, anchors, data as data_mod, metrics, models, paths, plots

MAX_CHECKPOINT_MB = 10.0
#: seed of the one dequantization draw used for validation and test numbers
DEQUANTIZATION_SEED = data_mod.DEQUANTIZATION_SEED


# --------------------------------------------------------------------------- provenance


def git_commit() -> dict:
    """The commit of the repository and whether its code differs from that commit."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--", "src", "notebooks", "pyproject.toml").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "densitybench": __version__}
    for pkg in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


#: the commit and state of the code when this process imported it (the code that ran)
_GIT_AT_IMPORT = git_commit()


def provenance(device: torch.device) -> dict:
    git = _GIT_AT_IMPORT
    return {
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "versions": versions(),
        "device": describe_device(device),
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- evaluation


def model_input(model, x_levels: torch.Tensor, n_levels: int, seed: int = DEQUANTIZATION_SEED) -> torch.Tensor:
    """The tensor a model takes for integer-level data: the levels themselves, or for a
    continuous model the dequantized ``(x + u) / n_levels`` with a fixed seed."""
    if model.support == "continuous":
        return data_mod.dequantize(x_levels, n_levels, torch.Generator().manual_seed(seed))
    return x_levels


@torch.no_grad()
def per_example_nll(model, x: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """``-log_prob`` of every example (nats), in eval mode."""
    model.eval()
    dev = model.device
    return np.concatenate([-model.log_prob(b.to(dev)).double().cpu().numpy() for b in x.split(batch_size)])


def nll_summary(model, data: data_mod.ImageData, split: str = "test") -> dict:
    """Mean NLL of a split with its standard error over examples, in nats and bits/dim."""
    x = model_input(model, data.split(split), data.n_levels)
    nll = per_example_nll(model, x)
    mean, se = metrics.mean_se(nll)
    out = {}
    D = data.n_dims
    if model.support == "continuous":
        shift = D * math.log(data.n_levels)
        out["nll_nats_continuous"] = mean
        mean = mean + shift
    out.update({"nll_nats": mean, "nll_se": se, "bits_per_dim": mean / (D * math.log(2)), "bits_per_dim_se": se / (D * math.log(2))})
    return out


def to_image(x: torch.Tensor, data: data_mod.ImageData, continuous: bool) -> torch.Tensor:
    """Images in [0, 1] for display and L2 neighbours: levels / (K - 1), or clipped y."""
    if continuous:
        return x.float().clamp(0, 1)
    return x.float() / (data.n_levels - 1)


@torch.no_grad()
def draw_samples(model, n: int, generator: torch.Generator | None = None, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples of ``model`` on the CPU, drawn ``batch_size`` at a time from one generator."""
    return torch.cat([model.sample(len(b), generator=generator).cpu() for b in torch.arange(n).split(batch_size)])


def neighbour_check(samples_img: torch.Tensor, data: data_mod.ImageData, n_test: int = 1000, seed: int = 0) -> dict:
    """Nearest training image of each sample, and of ``n_test`` held-out test images."""
    metric = "hamming" if data.kind == "binary" else "l2"
    train = to_image(data.train, data, False)
    g = torch.Generator().manual_seed(seed)
    test_idx = torch.randperm(data.test.shape[0], generator=g)[: min(n_test, data.test.shape[0])]
    test = to_image(data.test[test_idx], data, False)
    sample_q = samples_img.round() if metric == "hamming" else samples_img
    d_s, i_s = metrics.nearest_neighbours(sample_q, train, metric)
    d_t, _ = metrics.nearest_neighbours(test, train, metric)
    return {"metric": metric, "sample_distances": d_s, "sample_index": i_s, "test_distances": d_t, "train": train}


def record_run(
    model,
    data: data_mod.ImageData,
    history,
    run_dir: str | os.PathLike,
    config: dict,
    seed: int = 0,
    n_samples: int = 64,
    extra: dict | None = None,
    spec=None,
    artifacts: dict | None = None,
) -> dict:
    """Evaluate ``model`` on the test split, write the run directory, return the metrics.

    Every file is written atomically and ``metrics.json`` last: it alone marks the run done.
    The checkpoint ``model.pt`` is always kept; one over :data:`MAX_CHECKPOINT_MB` is listed in
    the folder's ``.gitignore`` (not committed) and the record says so.

    Args:
        model: a trained :class:`~densitybench.models.DensityModel` (its best weights).
        data: the dataset it was trained on.
        history: the :class:`~densitybench.train.History` of training.
        run_dir: directory to write (created).
        config: everything needed to rerun: dataset, model name and hyperparameters,
            training settings, profile; may name an ``anchor`` and a ``protocol_note``.
        seed: the run's seed (also seeds sampling).
        n_samples: samples drawn for the grid and the neighbour check.
        extra: further fields for ``metrics.json``.
        spec: the :class:`~densitybench.runs.RunSpec` of the run (recorded with its key).
        artifacts: arrays saved to ``artifacts.npz`` for later analysis.

    Raises:
        ValueError: a number of the record is not finite (nothing is marked done).
    """
    import matplotlib.pyplot as plt

    from . import atomic

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = model.device
    continuous = model.support == "continuous"

    test = valid = {}
    if model.likelihood != "none":
        test = nll_summary(model, data, "test")
        if config.get("valid_nll", True):  # False where one more pass is too costly (IWAE with k = 5000)
            valid = nll_summary(model, data, "valid")
    bad = [k for part in (test, valid) for k, v in part.items() if v is not None and not math.isfinite(v)]
    if bad:
        raise ValueError(f"run {run_dir.name}: {', '.join(bad)} not finite ({test}); no record written")

    g = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    samples = model.sample(n_samples, generator=g).cpu()
    sample_seconds = time.perf_counter() - t0
    samples_img = to_image(samples, data, continuous)
    atomic.save_numpy(run_dir / "samples.npy", samples_img.numpy().astype(np.float16))

    nn = neighbour_check(samples_img, data, seed=seed)
    title = config.get("label", config.get("model", ""))
    fig = plots.image_grid(samples_img, title=f"{title}: samples")
    atomic.save_figure(fig, run_dir / "samples.png", dpi=100, bbox_inches="tight")
    fig = plots.neighbour_pairs(samples_img, nn["train"][nn["sample_index"]], nn["sample_distances"], nn["metric"])
    atomic.save_figure(fig, run_dir / "neighbours.png", dpi=100, bbox_inches="tight")
    fig = plots.distance_histogram(nn["sample_distances"], nn["test_distances"], nn["metric"], title=title)
    atomic.save_figure(fig, run_dir / "nn_distances.png", dpi=100, bbox_inches="tight")
    plt.close("all")

    ckpt = run_dir / "model.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic.save_torch(ckpt, {"hparams": model.hparams, "state_dict": state})
    size_mb = ckpt.stat().st_size / 2**20
    committed = size_mb <= MAX_CHECKPOINT_MB
    checkpoint = {"path": "model.pt", "size_mb": round(size_mb, 2), "committed": committed}
    if not committed:
        atomic.write_text(run_dir / ".gitignore", "# over the committed checkpoint size; kept in the run store\nmodel.pt\n")
        checkpoint["note"] = (f"not committed: larger than {MAX_CHECKPOINT_MB:g} MB; kept in the run store where it "
                              f"was trained; retrain the run to rebuild it elsewhere")
        n_judge = int(config.get("n_judge_samples") or 0)
        if n_judge:  # the samples chapter judges such a run from stored samples where the checkpoint is absent
            more = draw_samples(model, n_judge, torch.Generator(device=device).manual_seed(seed + 1))
            atomic.save_numpy(run_dir / "judge_samples.npy", to_image(more, data, continuous).numpy().astype(np.float16))
            checkpoint["judge_samples"] = n_judge
    if artifacts:
        atomic.save_npz(run_dir / "artifacts.npz", **artifacts)

    anchor = anchors.get(config.get("anchor"))
    epochs = list(history.epochs)
    stop_reason = getattr(history, "stop_reason", None)
    record = {
        "run": run_dir.name,
        "key": spec.key if spec is not None else None,
        "model": config.get("model"),
        "label": config.get("label", config.get("model")),
        "dataset": data.name,
        "dataset_description": data.description,
        "dataset_kind": data.kind,
        "n_levels": data.n_levels,
        "likelihood": model.likelihood,
        "protocol": _protocol(model, data),
        "test_nll_nats": test.get("nll_nats"),
        "test_nll_se": test.get("nll_se"),
        "test_nll_nats_continuous": test.get("nll_nats_continuous"),
        "bits_per_dim": test.get("bits_per_dim"),
        "bits_per_dim_se": test.get("bits_per_dim_se"),
        "valid_nll_nats": valid.get("nll_nats"),
        "valid_nll_se": valid.get("nll_se"),
        "n_test": int(data.test.shape[0]),
        "n_params": int(model.n_params()),
        "train_seconds": float(history.train_seconds),
        "sample_seconds": float(sample_seconds),
        "sample_seconds_per_image": float(sample_seconds / n_samples),
        "n_samples": n_samples,
        "epochs": int(epochs[-1]["epoch"]) if epochs else 0,  # an EM fit reports its steps in one entry
        "best_epoch": history.best_epoch,
        "stop_reason": stop_reason,
        "still_improving": _still_improving(epochs),
        "stopped_early": history.stopped_early,
        "stopped_by_budget": getattr(history, "stopped_by_budget", False),
        "max_seconds": config.get("max_seconds"),
        "history": epochs,
        "nearest_neighbour": {
            "metric": nn["metric"],
            "samples": metrics.quantiles(nn["sample_distances"].numpy()),
            "test": metrics.quantiles(nn["test_distances"].numpy()),
            "n_test": int(len(nn["test_distances"])),
        },
        "anchor": anchor,
        "protocol_note": config.get("protocol_note"),
        "seed": seed,
        "spec": spec.to_json() if spec is not None else None,
        "config": config,
        "checkpoint": checkpoint,
        **provenance(device),
        **(extra or {}),
    }
    atomic.write_json(run_dir / "metrics.json", record, default=_jsonable)
    return record


def _still_improving(epochs: list[dict]) -> bool | None:
    from .train import still_improving

    return still_improving(epochs) if epochs else None


def record_spec_run(model, data: data_mod.ImageData, history, run_dir, spec) -> dict:
    """The record of a run of the store: its model's own final step (:meth:`finalize`, e.g. a
    GAN's Parzen width chosen on validation), its extra test numbers and artifacts, then
    :func:`record_run` with the spec's settings."""
    from .runs import EVALUATION_DEFAULTS, OPTION_DEFAULTS, TRAIN_DEFAULTS

    valid_x = model_input(model, data.split("valid"), data.n_levels)
    test_x = model_input(model, data.split("test"), data.n_levels)
    extra = {}
    hook = getattr(model, "finalize", None)
    if hook is not None:
        extra.update(hook(model_input(model, data.split("train"), data.n_levels, seed=spec.seed), valid_x) or {})
    hook = getattr(model, "evaluation_extras", None)
    if hook is not None:
        extra.update(hook(test_x) or {})
    hook = getattr(model, "artifacts", None)
    arts = hook() if hook is not None else {}
    opts = {**OPTION_DEFAULTS, **spec.options}
    config = {**TRAIN_DEFAULTS, **spec.train, **EVALUATION_DEFAULTS, **spec.evaluation, **opts,
              "model": spec.model, "hyperparameters": spec.hparams, "seed": spec.seed, "dataset": spec.dataset,
              "label": spec.label or spec.name, "anchor": spec.anchor, "protocol_note": spec.protocol_note,
              "chapter": spec.chapter}
    return record_run(model, data, history, run_dir, config, seed=spec.seed, n_samples=opts["n_samples"],
                      extra=extra, spec=spec, artifacts=arts)


def _protocol(model, data) -> str:
    if model.likelihood == "none":
        return "no likelihood"
    if model.support == "continuous":
        return (
            f"density on dequantized data y = (x + u) / {data.n_levels}, u ~ U(0,1)^D (one draw, seed "
            f"{DEQUANTIZATION_SEED}); discrete NLL bounded by -log p(y) + D ln {data.n_levels}"
        )
    kind = {"exact": "exact", "bound": "an upper bound on the", "estimate": "an estimate of the"}[model.likelihood]
    return f"{kind} NLL of the {'binary' if data.kind == 'binary' else f'{data.n_levels}-level'} test images"


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def reevaluate(run_dir: str | os.PathLike, data_dir=None) -> dict:
    """Reload a run's checkpoint, recompute its test NLL and compare with ``metrics.json``."""
    run_dir = Path(run_dir)
    rec = json.loads((run_dir / "metrics.json").read_text())
    ck = (rec.get("checkpoint") or {}).get("path")
    if not ck or not (run_dir / ck).is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint here ({rec.get('checkpoint')}); retrain the run to rebuild it")
    model = models.load(run_dir / rec["checkpoint"]["path"])
    data = data_mod.load(rec["dataset"], data_dir)
    now = nll_summary(model, data, "test")
    return {
        "run": rec["run"],
        "committed": rec["test_nll_nats"],
        "recomputed": now["nll_nats"],
        "difference": now["nll_nats"] - rec["test_nll_nats"],
    }
