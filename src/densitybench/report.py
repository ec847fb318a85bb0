"""Aggregate the ``metrics.json`` of every run of a profile into the study's tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def collect(results_dir: str | os.PathLike) -> list[dict]:
    """Every run record under ``results_dir`` (one ``<run>/metrics.json`` each), sorted by run."""
    recs = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*/metrics.json"))]
    if not recs:
        raise FileNotFoundError(f"no run records (*/metrics.json) in {results_dir}")
    return recs


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
            "source of published": a.get("source", "—") if a else "—",
            "protocol differences": (r.get("protocol_note") or "—") if a else "no published number on this dataset",
        })
    return pd.DataFrame(rows)


def provenance_table(records: list[dict]) -> pd.DataFrame:
    """Where each number came from: run, seed, commit, device, versions."""
    return pd.DataFrame([{
        "run": r["run"],
        "seed": r["seed"],
        "commit": (r.get("git_commit") or "none")[:10] + (" (modified)" if r.get("git_dirty") else ""),
        "device": r["device"],
        "torch": r["versions"].get("torch"),
        "checkpoint": (r.get("checkpoint") or {}).get("path") or "not kept",
        "timestamp": r["timestamp"],
    } for r in records])


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
            "epochs (best)": f"{r['epochs']} ({r['best_epoch']})" + (" budget" if r.get("stopped_by_budget") else ""),
            "train s": round(r["train_seconds"]),
            "published": f"{pub['value']:.2f} {pub['unit']}" if pub else "—",
        })
    return pd.DataFrame(rows).set_index("run")
