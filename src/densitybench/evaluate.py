"""Final evaluation of a trained model and the one record each run writes.

The test split is touched here only. Evaluation is made of parts, each its own function:

- the test-set numbers: :func:`model_input`, :func:`per_example_nll`, :func:`nll_summary`;
- samples: :func:`~densitybench.sampling.draw_samples`, :func:`~densitybench.sampling.to_image`;
- the neighbour check: :func:`densitybench.neighbours.neighbour_check`;
- the figures of a run: :func:`densitybench.plots.run_figures`;
- provenance, computed when a record is written: :func:`densitybench.provenance.provenance`;
- the record and its folder: :mod:`densitybench.record`.

:func:`record_run` composes them. A run directory holds:

- ``metrics.json``: the numbers with their standard errors and provenance;
- ``samples.png`` / ``samples.npy``: a grid of samples and the raw samples;
- ``neighbours.png``, ``nn_distances.png``: samples beside their nearest training image,
  and those distances against the same distances of held-out test images;
- ``model.pt``: the checkpoint (one over ``MAX_CHECKPOINT_MB`` is kept but not committed).

Protocol for each likelihood:

- binary or K-level data, discrete model: ``test_nll_nats`` is the exact mean NLL.
- K-level data, continuous model: the model is a density on the dequantized data
  ``y = (x + u) / K``, ``u ~ U(0, 1)^D`` drawn once with a fixed seed. Then
  ``test_nll_nats_continuous = -E log p(y)`` and the discrete NLL is bounded by
  ``test_nll_nats = test_nll_nats_continuous + D log K`` (the change of variables
  ``x + u -> y`` has Jacobian ``K^{-D}``); bits/dim = ``test_nll_nats / (D log 2)``.

:func:`reevaluate` recomputes a recorded test number from the run's checkpoint, and
:func:`reevaluate_store` does so for every run of a run store.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from . import data as data_mod, metrics, models, neighbours, plots, record, train as train_mod
from .neighbours import neighbour_check  # noqa: F401  (part of this module's interface)
from .provenance import describe_device, git_commit, provenance, versions  # noqa: F401
from .record import jsonable  # noqa: F401
from .sampling import draw_samples, timed_samples, to_image

MAX_CHECKPOINT_MB = 10.0
#: seed of the one dequantization draw used for validation and test numbers
DEQUANTIZATION_SEED = data_mod.DEQUANTIZATION_SEED


# --------------------------------------------------------------------------- the test-set numbers


def model_input(model, x_levels: torch.Tensor, n_levels: int, seed: int = DEQUANTIZATION_SEED) -> torch.Tensor:
    """The tensor a model takes for integer-level data ``(N, *image_shape)``: the levels themselves,
    or for a continuous model the dequantized ``(x + u) / n_levels`` with a fixed seed."""
    if model.support == "continuous":
        return data_mod.dequantize(x_levels, n_levels, torch.Generator().manual_seed(seed))
    return x_levels


@torch.no_grad()
def per_example_nll(model, x: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
    """``-log_prob`` of every example of ``x`` ``(N, *image_shape)``, in nats, shape ``(N,)``
    (float64), computed in eval mode and full float32, ``batch_size`` at a time (default
    :func:`densitybench.train.eval_batch_size` of the model's device). ``x`` is checked once,
    whole, and moved to the device once; the batches skip the per-batch pass over the values."""
    model.eval()
    dev = model.device
    batch_size = batch_size or train_mod.eval_batch_size(dev)
    x = model.check_input(x).to(dev)
    with model.trusted_inputs(), train_mod.float32_matmul("highest", dev):
        values = [-model.log_prob(b).double() for b in x.split(batch_size)]
    return torch.cat(values).cpu().numpy() if values else np.zeros(0)


def nll_summary(model, data: data_mod.ImageData, split: str = "test") -> dict:
    """Mean NLL of a split with its standard error over examples, in nats and bits/dim.

    Returns:
        ``nll_nats``, ``nll_se``, ``bits_per_dim``, ``bits_per_dim_se``, and for a continuous
        model ``nll_nats_continuous`` (``-E log p(y)``; ``nll_nats`` adds ``D log K``).
    """
    x = model_input(model, data.split(split), data.n_levels)
    nll = per_example_nll(model, x)
    mean, se = metrics.mean_se(nll)
    out = {}
    D = data.n_dims
    if model.support == "continuous":
        shift = D * math.log(data.n_levels)
        out["nll_nats_continuous"] = mean
        mean = mean + shift
    out.update({"nll_nats": mean, "nll_se": se, "bits_per_dim": mean / (D * math.log(2)),
                "bits_per_dim_se": se / (D * math.log(2))})
    return out


def split_numbers(model, data: data_mod.ImageData, valid_nll: bool = True) -> tuple[dict, dict]:
    """:func:`nll_summary` of the test and (with ``valid_nll``) validation splits; two empty
    dicts for a model without a likelihood."""
    if model.likelihood == "none":
        return {}, {}
    return nll_summary(model, data, "test"), nll_summary(model, data, "valid") if valid_nll else {}


# --------------------------------------------------------------------------- the record of a run


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
    from . import atomic

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    continuous = model.support == "continuous"

    # False where one more pass is too costly (IWAE with k = 5000)
    test, valid = split_numbers(model, data, valid_nll=config.get("valid_nll", True))
    record.check_finite({**test, **{f"valid_{k}": v for k, v in valid.items()}}, run_dir.name)

    samples, sample_seconds = timed_samples(model, n_samples, seed)
    samples_img = to_image(samples, data, continuous)
    record.save_images(run_dir / "samples.npy", samples_img)
    nn = neighbour_check(samples_img, data, seed=seed)
    record.save_figures(run_dir, plots.run_figures(samples_img, nn, config.get("label", config.get("model", ""))))

    checkpoint = record.save_checkpoint(model, run_dir, MAX_CHECKPOINT_MB)
    n_judge = int(config.get("n_judge_samples") or 0)
    if not checkpoint["committed"] and n_judge:
        # the samples chapter judges such a run from stored samples where the checkpoint is absent
        more = draw_samples(model, n_judge, torch.Generator(device=model.device).manual_seed(seed + 1))
        record.save_images(run_dir / "judge_samples.npy", to_image(more, data, continuous))
        checkpoint["judge_samples"] = n_judge
    if artifacts:
        atomic.save_npz(run_dir / "artifacts.npz", **artifacts)

    rec = record.assemble(run=run_dir.name, model=model, data=data, history=history, config=config, test=test,
                          valid=valid, n_samples=n_samples, sample_seconds=sample_seconds,
                          nearest_neighbour=neighbours.summary(nn), checkpoint=checkpoint, seed=seed, spec=spec,
                          extra=extra)
    record.write(run_dir, rec)
    return rec


# --------------------------------------------------------------------------- re-evaluation


def has_checkpoint(run_dir) -> bool:
    """Whether a finished run folder keeps the checkpoint its ``metrics.json`` names."""
    run_dir = Path(run_dir)
    rec = json.loads((run_dir / "metrics.json").read_text())
    ck = (rec.get("checkpoint") or {}).get("path")
    return bool(ck) and (run_dir / ck).is_file()


def reevaluate(run_dir: str | os.PathLike, data_dir=None, data: data_mod.ImageData | None = None) -> dict:
    """Reload a run's checkpoint, recompute its test NLL and compare with ``metrics.json``.

    The number is recomputed as :func:`record_run` computed it, on the dataset the record names
    (a derived, generated or image-folder set is rebuilt by :func:`densitybench.data.load`):
    the exact NLL, or the bound on dequantized data ``D log K`` above ``-log p(y)`` for a continuous
    model, the IWAE bound of a VAE, the Parzen estimate of a GAN (its width and sample seed are in
    the checkpoint). A model without a likelihood has no number to recompute: ``recomputed`` and
    ``difference`` are then None and ``note`` says so.

    Args:
        run_dir: a finished run folder.
        data_dir: the data directory (default: see :func:`densitybench.paths.data_dir`).
        data: the run's dataset when the caller holds it already.

    Returns:
        ``run`` (the folder's name), ``dataset``, ``likelihood``, ``committed`` (the recorded ``test_nll_nats``),
        ``recomputed``, ``difference`` (recomputed - committed) and ``note``.

    Raises:
        FileNotFoundError: the run keeps no checkpoint.
    """
    run_dir = Path(run_dir)
    rec = json.loads((run_dir / "metrics.json").read_text())
    out = {"run": run_dir.name, "dataset": rec["dataset"], "likelihood": rec["likelihood"],
           "committed": rec.get("test_nll_nats"), "recomputed": None, "difference": None, "note": None}
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(f"{run_dir}: no checkpoint here ({rec.get('checkpoint')}); retrain the run to rebuild it")
    model = models.load(run_dir / rec["checkpoint"]["path"])
    if model.likelihood == "none" or rec.get("test_nll_nats") is None:
        return {**out, "note": "no likelihood to recompute"}
    if data is None or data.name != rec["dataset"]:
        data = data_mod.load(rec["dataset"], data_dir)
    now = nll_summary(model, data, "test")["nll_nats"]
    return {**out, "recomputed": now, "difference": now - rec["test_nll_nats"]}


def reevaluate_store(run_dirs, data_dir=None, tolerance: float = 0.01, progress: bool = False, report=None) -> dict:
    """:func:`reevaluate` every finished run of ``run_dirs`` that keeps its checkpoint.

    Runs are taken dataset by dataset (each dataset is loaded once). A run without a checkpoint
    is listed, not failed; a run without a likelihood passes with a note; a run whose number
    cannot be recomputed (its checkpoint or dataset fails to load) fails with the error.

    Args:
        run_dirs: run folders (those without ``metrics.json``, unfinished, are ignored).
        data_dir: the data directory.
        tolerance: the largest ``|difference|`` in nats that passes.
        progress: show a progress bar.
        report: called with each row as soon as it is computed.

    Returns:
        ``rows`` (each :func:`reevaluate`'s result with ``ok``), ``without_checkpoint`` (folder
        names), ``failed`` (folder names), ``n_reevaluated`` and ``max_abs_difference`` (None when
        nothing was compared).
    """
    from tqdm.auto import tqdm

    finished = [Path(d) for d in run_dirs if (Path(d) / "metrics.json").is_file()]
    records = {d: json.loads((d / "metrics.json").read_text()) for d in finished}
    without = sorted(d.name for d in finished if not has_checkpoint(d))
    todo = sorted((d for d in finished if has_checkpoint(d)), key=lambda d: (str(records[d]["dataset"]), d.name))
    rows, data = [], None
    for d in tqdm(todo, desc="re-evaluating", unit="run", disable=not progress):
        rec = records[d]
        try:
            if data is None or data.name != rec["dataset"]:
                data = None  # release the previous dataset before loading the next
                if rec.get("test_nll_nats") is not None:
                    data = data_mod.load(rec["dataset"], data_dir)
            row = reevaluate(d, data_dir, data=data)
            diff = row["difference"]
            row["ok"] = row["note"] is not None if diff is None else bool(abs(diff) <= tolerance)
        except Exception as err:  # noqa: BLE001  (one run's failure is reported, the others still run)
            row = {"run": d.name, "dataset": rec["dataset"], "likelihood": rec.get("likelihood"),
                   "committed": rec.get("test_nll_nats"), "recomputed": None, "difference": None,
                   "note": f"{type(err).__name__}: {err}", "ok": False}
        rows.append(row)
        if report is not None:
            report(row)
    diffs = [abs(r["difference"]) for r in rows if r["difference"] is not None]
    return {"rows": rows, "without_checkpoint": without, "failed": [r["run"] for r in rows if not r["ok"]],
            "n_reevaluated": len(rows), "max_abs_difference": max(diffs) if diffs else None}
