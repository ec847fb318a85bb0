"""Aggregate the ``metrics.json`` of the finished runs of a profile into the study's tables.

The tables only read what the runs wrote: :func:`finished_runs` lists the runs of a profile's
plan that are finished in its run store (``metrics.json`` present; a partial run is never
tabulated) and says which are not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

#: chapters whose runs are on other datasets and have a page of their own, out of the study's tables
OWN_PAGE_CHAPTERS = ("beyond",)


def collect(results_dir: str | os.PathLike) -> list[dict]:
    """Every run record in the run store ``results_dir`` (one ``<run>/metrics.json`` each),
    sorted by run folder; a folder without ``metrics.json`` (a partial run) is left out.
    :func:`finished_runs` lists only the runs of a profile's plan."""
    recs = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*/metrics.json"))]
    if not recs:
        raise FileNotFoundError(f"no run records (*/metrics.json) in {results_dir}")
    return recs


def finished_runs(profile: str, store, *, seed: int | None = None, exclude_chapters=OWN_PAGE_CHAPTERS):
    """The runs of ``profile``'s plan that are finished in the run store ``store``, in plan order.

    Args:
        profile: a profile name (its plan lists the runs).
        store: its run store (``results/<profile>/runs``).
        seed: only the runs of this seed (None: every seed).
        exclude_chapters: chapters whose runs are left out (see :data:`OWN_PAGE_CHAPTERS`).
    Returns:
        ``(finished, unfinished)``: a list of :class:`~densitybench.runs.Run`, and one dict per
        run of the plan that is not finished: ``run`` (its folder name), ``chapter``,
        ``status`` (``"missing"``, ``"partial"`` or ``"mismatch"``: the folder holds a run
        with other settings) and ``epoch`` reached.
    """
    from . import runs

    finished, unfinished = [], []
    for spec in runs.load_profile(profile).specs():
        if spec.chapter in exclude_chapters or (seed is not None and spec.seed != seed):
            continue
        try:
            st = runs.status(spec, store)
        except runs.SpecMismatch:
            st = {"status": "mismatch", "epoch": None}
        if st["status"] == "done":
            finished.append(runs.Run(runs.run_dir(spec, store)))
        else:
            unfinished.append({"run": spec.folder, "chapter": spec.chapter, "status": st["status"],
                               "epoch": st["epoch"]})
    return finished, unfinished


def stopped_by(record: dict) -> str:
    """Why training stopped, from ``stop_reason``; for a run stopped by its epoch cap or time
    budget, whether the validation value was still improving (``still_improving``)."""
    reason = record.get("stop_reason")
    if not reason:
        return "—"
    text = reason.replace("_", " ")
    if reason in ("epoch_cap", "time_budget") and record.get("still_improving") is not None:
        text += ", still improving" if record["still_improving"] else ", no longer improving"
    return text


def dataset_kind(record: dict) -> str:
    """``"binary"`` or ``"levels"``: the kind of data a run was evaluated on."""
    if record.get("dataset_kind"):
        return record["dataset_kind"]
    from . import data  # records written before the field existed: ask the registry

    name = record["dataset"]
    if name in data.REGISTRY:
        return data.REGISTRY[name].kind
    return "binary" if name == "digits_binary" else "levels"


def _pm(mean, se, digits):
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{mean:.{digits}f}"


def _difference(r: dict, a: dict) -> str:
    """Ours minus the published number, in the anchor's unit (lower is better in every unit)."""
    if not a:
        return "—"
    ours = {"nats": r.get("test_nll_nats"), "bits/dim": r.get("bits_per_dim"),
            "nats on [0,1]": r.get("test_nll_nats_continuous")}.get(a["unit"])
    if ours is None:
        return "—"
    return f"{ours - a['value']:+.{4 if a['unit'] == 'bits/dim' else 2}f} {a['unit']}"


def nll_table(records: list[dict]) -> pd.DataFrame:
    """One row per run: our number with its standard error beside the published one."""
    rows = []
    for r in records:
        a = r.get("anchor") or {}
        rows.append({
            "model": r["label"],
            "dataset": r["dataset"],
            "likelihood": r["likelihood"],
            "test NLL (nats)": _pm(r["test_nll_nats"], r["test_nll_se"], 2),
            "on [0,1] (nats)": (_pm(r["test_nll_nats_continuous"], r["test_nll_se"], 2)
                                if r.get("test_nll_nats_continuous") is not None else "—"),
            "bits/dim": _pm(r["bits_per_dim"], r.get("bits_per_dim_se"), 4),
            "published": (f"{a['value']:.2f} {'nats' if a['unit'] == 'nats' else a['unit']}" if a else "—"),
            "ours − published": _difference(r, a),
            "parameters": r["n_params"],
            "train (s)": round(r["train_seconds"], 1),
            "sampling (ms/image)": round(1000 * r["sample_seconds_per_image"], 2),
            "epochs (best)": f"{r['epochs']} ({r['best_epoch']})",
            "stopped by": stopped_by(r),
            "source of published": a.get("source", "—") if a else "—",
            "protocol differences": (r.get("protocol_note") or "—") if a else "no published number on this dataset",
        })
    return pd.DataFrame(rows)


def provenance_table(records: list[dict]) -> pd.DataFrame:
    """Where each number came from: run, key, seed, commit, device, versions, checkpoint."""
    return pd.DataFrame([{
        "run": r["run"],
        "key": r.get("key") or "—",
        "seed": r["seed"],
        "commit": (r.get("git_commit") or "none")[:10] + (" (modified)" if r.get("git_dirty") else ""),
        "device": r["device"],
        "torch": r["versions"].get("torch"),
        "checkpoint": _checkpoint(r.get("checkpoint") or {}),
        "timestamp": r["timestamp"],
    } for r in records])


def _checkpoint(ck: dict) -> str:
    if not ck.get("path"):
        return "not kept"
    if ck.get("committed") is False:
        return f"{ck['path']} (in the run store, not committed: {ck.get('size_mb')} MB)"
    return ck["path"]


def bits_table(records: list[dict], dataset: str) -> pd.DataFrame:
    """Every run on the integer-level ``dataset`` in bits/dim, discrete and continuous models
    side by side (a continuous model's number is its dequantized bound on the discrete NLL).
    Parzen estimates are left out: they are not likelihoods of the model."""
    rows = []
    for r in records:
        if r["dataset"] != dataset or r["likelihood"] not in ("exact", "bound") or r.get("bits_per_dim") is None:
            continue
        continuous = r.get("test_nll_nats_continuous") is not None
        a = r.get("anchor") or {}
        rows.append({
            "model": r["label"],
            "density": "continuous, on dequantized data" if continuous else "discrete, on the levels",
            "likelihood": r["likelihood"] if not continuous else f"{r['likelihood']} (dequantization bound)",
            "bits/dim": _pm(r["bits_per_dim"], r.get("bits_per_dim_se"), 4),
            "test NLL (nats)": _pm(r["test_nll_nats"], r["test_nll_se"], 1),
            "published (bits/dim)": f"{a['value']:.2f}" if a and a["unit"] == "bits/dim" else "—",
            "parameters": r["n_params"],
            "train (s)": round(r["train_seconds"], 1),
            "_bpd": r["bits_per_dim"],
        })
    if not rows:
        return pd.DataFrame(columns=["model", "density", "likelihood", "bits/dim", "test NLL (nats)",
                                     "published (bits/dim)", "parameters", "train (s)"])
    return pd.DataFrame(rows).sort_values("_bpd").drop(columns="_bpd").reset_index(drop=True)


def run_table(records: dict[str, dict]) -> pd.DataFrame:
    """A chapter's own table: one row per run (``run name -> record``), indexed by run."""
    rows = []
    for run, r in records.items():
        pub = r.get("anchor")
        valid = r.get("valid_nll_nats")
        rows.append({
            "run": run, "dataset": r["dataset"], "likelihood": r["likelihood"],
            "test NLL (nats)": _pm(r["test_nll_nats"], r["test_nll_se"], 2),
            "bits/dim": _pm(r["bits_per_dim"], r.get("bits_per_dim_se"), 4),
            "valid NLL (nats)": f"{valid:.2f}" if valid is not None else "—",
            "params": r["n_params"],
            "epochs (best)": f"{r['epochs']} ({r['best_epoch']})",
            "stopped by": stopped_by(r),
            "train s": round(r["train_seconds"]),
            "published": f"{pub['value']:.2f} {pub['unit']}" if pub else "—",
        })
    return pd.DataFrame(rows).set_index("run")


def budget_phrase(train: dict) -> str:
    """The wall-clock budget of a run's training settings, in words."""
    if train.get("max_seconds"):
        return f"a wall-clock budget of {train['max_seconds']:g} s of training"
    return "no wall-clock budget"


def stops_phrase(records: dict[str, dict]) -> str:
    """Why each run stopped, its epochs and training time: ``name: patience (epoch 44, 629 s); ...``."""
    return "; ".join(f"{name}: {r['stop_reason'].replace('_', ' ')} (epoch {r['epochs']}, {r['train_seconds']:.0f} s)"
                     for name, r in records.items())


def glue_training(prefix: str, specs, records: dict[str, dict]) -> dict:
    """Glue the training settings a page's runs share (``<prefix>_lr``, ``_batch_size``,
    ``_max_epochs``, ``_patience``, ``_budget``) and why each stopped (``<prefix>_stops``);
    return those settings.

    Raises:
        ValueError: the runs do not share their training settings (the page states them once).
    """
    from myst_nb import glue

    settings = specs[0].train
    if any(s.train != settings for s in specs):
        raise ValueError(f"the runs {', '.join(s.folder for s in specs)} do not share their training settings")
    values = {"lr": settings["lr"], "batch_size": settings["batch_size"], "max_epochs": settings["epochs"],
              "patience": settings["patience"], "budget": budget_phrase(settings), "stops": stops_phrase(records)}
    for k, v in values.items():
        glue(f"{prefix}_{k}", v, display=False)
    return settings


def limit_phrase(train: dict) -> str:
    """The most a run may train: ``1500 epochs or 600 s of training, whichever ends first``."""
    out = f"{train['epochs']} epochs"
    if train.get("max_seconds"):
        out += f" or {train['max_seconds']:g} s of training, whichever ends first"
    return out


def stop_clause(record: dict, train: dict, criterion: str = "validation NLL") -> str:
    """Why a run stopped, as a clause: ``because the validation NLL had not improved for 10 epochs``."""
    return {"patience": f"because the {criterion} had not improved for {train['patience']} epochs",
            "epoch_cap": f"at the cap of {train['epochs']} epochs",
            "time_budget": f"because its budget of {train.get('max_seconds') or 0:g} s of training was spent",
            "converged": "when EM converged",
            "iteration_cap": "at its cap of EM iterations"}[record["stop_reason"]]


def print_runs(records: dict[str, dict], number: str = "test NLL") -> None:
    """One line per run: best epoch, why it stopped, training time and ``number`` (``"test NLL"``
    in nats or ``"bits/dim"``)."""
    for name, r in records.items():
        value = f"{r['test_nll_nats']:.2f}" if number == "test NLL" else f"{r['bits_per_dim']:.4f}"
        print(f"{name}: best epoch {r['best_epoch']} of {r['epochs']} (stopped by {r['stop_reason']}), "
              f"{r['train_seconds']:.0f} s, {number} {value}")
