"""The record of a run: its folder's files and ``metrics.json``.

A run folder holds the samples (``samples.npy``, in ``[0, 1]`` as float16), the figures, the
checkpoint ``model.pt`` (``{"hparams", "state_dict"}``), optional ``artifacts.npz`` and
``judge_samples.npy``, and ``metrics.json``. Every file is written atomically and
``metrics.json`` last: it alone marks the run done.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import anchors, atomic, data as data_mod
from .provenance import provenance

#: seed of the one dequantization draw used for validation and test numbers
DEQUANTIZATION_SEED = data_mod.DEQUANTIZATION_SEED


def jsonable(o):
    """``default=`` for :func:`json.dumps`: numpy scalars as numbers, tuples and sets as lists,
    paths as strings.

    Raises:
        TypeError: anything else.
    """
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def protocol(model, data: data_mod.ImageData) -> str:
    """One sentence on what the run's test number is (the record's ``protocol`` field)."""
    if model.likelihood == "none":
        return "no likelihood"
    if model.support == "continuous" and model.likelihood == "estimate":
        return (
            f"a Parzen-window estimate of a density on dequantized data y = (x + u) / {data.n_levels}, u ~ "
            f"U(0,1)^D (one draw, seed {DEQUANTIZATION_SEED}): the window's density, fitted to the model's "
            f"samples, not the model's likelihood, and no bound on any NLL"
        )
    if model.support == "continuous":
        return (
            f"density on dequantized data y = (x + u) / {data.n_levels}, u ~ U(0,1)^D (one draw, seed "
            f"{DEQUANTIZATION_SEED}); discrete NLL bounded by -log p(y) + D ln {data.n_levels}"
        )
    kind = {"exact": "exact", "bound": "an upper bound on the", "estimate": "an estimate of the"}[model.likelihood]
    return f"{kind} NLL of the {'binary' if data.kind == 'binary' else f'{data.n_levels}-level'} test images"


def check_finite(numbers: dict, run: str) -> None:
    """Raise ``ValueError`` naming every number of ``numbers`` (``{name: value or None}``) that is
    not finite: such a run gets no record."""
    bad = [k for k, v in numbers.items() if v is not None and not math.isfinite(v)]
    if bad:
        raise ValueError(f"run {run}: {', '.join(bad)} not finite ({numbers}); no record written")


def save_images(path, images: torch.Tensor) -> Path:
    """``(N, *image_shape)`` images in ``[0, 1]`` as a float16 ``.npy`` file."""
    return atomic.save_numpy(path, images.numpy().astype(np.float16))


def save_figures(run_dir, figures: dict) -> None:
    """Each ``{file name: Figure}`` into ``run_dir`` (PNG, 100 dpi), each figure closed after."""
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        atomic.save_figure(fig, Path(run_dir) / name, dpi=100, bbox_inches="tight")
        plt.close(fig)


def save_checkpoint(model, run_dir, max_mb: float) -> dict:
    """Write ``model.pt`` (``{"hparams", "state_dict"}`` on the CPU) and describe it.

    A checkpoint over ``max_mb`` is kept but listed in the folder's ``.gitignore`` (not committed).

    Returns:
        The record's ``checkpoint`` field: ``path``, ``size_mb``, ``committed`` and, when not
        committed, a ``note``.
    """
    run_dir = Path(run_dir)
    ckpt = run_dir / "model.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic.save_torch(ckpt, {"hparams": model.hparams, "state_dict": state})
    size_mb = ckpt.stat().st_size / 2**20
    committed = size_mb <= max_mb
    checkpoint = {"path": "model.pt", "size_mb": round(size_mb, 2), "committed": committed}
    if not committed:
        atomic.write_text(run_dir / ".gitignore", "# over the committed checkpoint size; kept in the run store\nmodel.pt\n")
        checkpoint["note"] = (f"not committed: larger than {max_mb:g} MB; kept in the run store where it "
                              f"was trained; retrain the run to rebuild it elsewhere")
    return checkpoint


def assemble(*, run: str, model, data: data_mod.ImageData, history, config: dict, test: dict, valid: dict,
             n_samples: int, sample_seconds: float, nearest_neighbour: dict, checkpoint: dict, seed: int,
             spec=None, extra: dict | None = None) -> dict:
    """The content of ``metrics.json``, with the provenance computed now.

    Args:
        run: the run folder's name.
        model: the evaluated model.
        data: its dataset.
        history: the :class:`~densitybench.train.History` of training.
        config: the run's settings (may name an ``anchor``, a ``label`` and a ``protocol_note``).
        test, valid: :func:`~densitybench.evaluate.nll_summary` of the test and validation splits
            (empty where not computed).
        n_samples, sample_seconds: the samples drawn and the seconds their one call took.
        nearest_neighbour: :func:`~densitybench.neighbours.summary` of the neighbour check.
        checkpoint: :func:`save_checkpoint`'s description (with ``judge_samples`` where drawn).
        seed: the run's seed.
        spec: the run's :class:`~densitybench.runs.RunSpec`, if any.
        extra: further fields, written last (they may override).
    """
    epochs = list(history.epochs)
    return {
        "run": run,
        "key": spec.key if spec is not None else None,
        "model": config.get("model"),
        "label": config.get("label", config.get("model")),
        "dataset": data.name,
        "dataset_description": data.description,
        "dataset_kind": data.kind,
        "n_levels": data.n_levels,
        "likelihood": model.likelihood,
        "protocol": protocol(model, data),
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
        "stop_reason": getattr(history, "stop_reason", None),
        "still_improving": _still_improving(epochs),
        "stopped_early": history.stopped_early,
        "stopped_by_budget": getattr(history, "stopped_by_budget", False),
        "max_seconds": config.get("max_seconds"),
        "history": epochs,
        "nearest_neighbour": nearest_neighbour,
        "anchor": anchors.get(config.get("anchor")),
        "protocol_note": config.get("protocol_note"),
        "seed": seed,
        "spec": spec.to_json() if spec is not None else None,
        "config": config,
        "checkpoint": checkpoint,
        **provenance(model.device),
        **(extra or {}),
    }


def write(run_dir, record: dict) -> Path:
    """Write ``metrics.json`` atomically: call it after every other file of the run."""
    return atomic.write_json(Path(run_dir) / "metrics.json", record, default=jsonable)


def _still_improving(epochs: list[dict]) -> bool | None:
    from .train import still_improving

    return still_improving(epochs) if epochs else None
