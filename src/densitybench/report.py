"""Aggregate the ``metrics.json`` of the finished runs of a profile into the study's tables.

The tables only read what the runs wrote: :func:`finished_runs` lists the runs of a profile's
plan that are finished in its run store (``metrics.json`` present; a partial run is never
tabulated) and says which are not.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import pandas as pd

from . import anchors

#: chapters whose runs are on other datasets and have a page of their own, out of the study's tables
OWN_PAGE_CHAPTERS = ("beyond",)
#: the stop reasons of a run trained to its stopping rule: its number is the model's under the
#: protocol (patience on validation; EM's tolerance). An epoch cap, a time budget or an EM
#: iteration cap cut training short of it: such a number is set beside no published one.
CONVERGED = ("patience", "converged")
#: the columns a page shows of :func:`nll_table` (the CSV holds them all)
KEY_COLUMNS = ("model", "test NLL (nats)", "SE over seeds", "bits/dim", "published", "ours − published",
               "stopped by", "seeds", "flag")


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


def valid_slope(record: dict, window: int = 5) -> float | None:
    """The least-squares slope of the validation value over the last ``window`` epochs of the
    run's history, per epoch (negative: still falling); None with fewer than 2 epochs."""
    values = [e["valid_loss"] for e in record.get("history") or [] if e.get("valid_loss") is not None][-window:]
    n = len(values)
    if n < 2:
        return None
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))


def stopped_by(record: dict) -> str:
    """Why training stopped, from ``stop_reason``; for a run stopped by its epoch cap or time
    budget, whether the validation value was still improving (``still_improving``) and, when
    it was, its slope over the last epochs (:func:`valid_slope`)."""
    reason = record.get("stop_reason")
    if not reason:
        return "—"
    text = reason.replace("_", " ")
    if reason in ("epoch_cap", "time_budget") and record.get("still_improving") is not None:
        text += ", still improving" if record["still_improving"] else ", no longer improving"
        slope = valid_slope(record)
        if record["still_improving"] and slope is not None and slope < 0:
            n = min(5, len(record.get("history") or []))
            text += f" at {slope:+.3g} per epoch over the last {n} epochs"
    return text


def converged(record: dict) -> bool:
    """Whether the run stopped by its own stopping rule (:data:`CONVERGED`), not by a cap or a
    budget."""
    return record.get("stop_reason") in CONVERGED


def entry_name(record: dict) -> str:
    """The profile entry a run belongs to (its name without the seed): the runs of one entry
    differ only in their seed."""
    spec = record.get("spec") or {}
    if spec.get("name"):
        return spec["name"]
    run, seed = record["run"], record.get("seed")
    return run[: -len(f"-s{seed}")] if seed is not None and run.endswith(f"-s{seed}") else run


def by_entry(records: list[dict]) -> dict[str, list[dict]]:
    """The records grouped by profile entry (:func:`entry_name`), in first-seen order, each
    group sorted by seed."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(entry_name(r), []).append(r)
    return {k: sorted(v, key=lambda r: r.get("seed") or 0) for k, v in groups.items()}


def over_seeds(group: list[dict], field: str) -> tuple[float | None, float | None]:
    """The mean of ``field`` over the seeds of one entry and its standard error across seeds
    (sample standard deviation over sqrt(n); None with one seed)."""
    values = [r.get(field) for r in group]
    if any(v is None for v in values):
        return None, None
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, (var / n) ** 0.5


def worse_than_uniform(record: dict) -> bool:
    """Whether the run's bits/dim exceed those of the uniform distribution over its levels
    (``log2 n_levels``: 1 for binary data, 8 for 256 levels): a model that has learnt less
    than nothing."""
    bpd, k = record.get("bits_per_dim"), record.get("n_levels")
    return bpd is not None and bool(k) and bpd > math.log2(k)


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


def _difference(r: dict, a: dict, ours: float | None = None) -> str:
    """Ours minus the published number, in the anchor's unit (lower is better in every unit),
    for a run that :func:`converged`; for another, why there is no comparison."""
    if not a:
        return "—"
    if ours is None:
        ours = {"nats": r.get("test_nll_nats"), "bits/dim": r.get("bits_per_dim"),
                "nats on [0,1]": r.get("test_nll_nats_continuous")}.get(a["unit"])
    if ours is None:
        return "—"
    if not converged(r):
        return f"none: stopped by {stopped_by(r)}"
    return f"{ours - a['value']:+.{4 if a['unit'] == 'bits/dim' else 2}f} {a['unit']}"


def _stops(group: list[dict]) -> str:
    """Why the runs of one entry stopped: one phrase, with the count of seeds when several."""
    phrases = [stopped_by(r) for r in group]
    if len(group) == 1:
        return phrases[0]
    return "; ".join(f"{p} ({phrases.count(p)} of {len(group)} seeds)" for p in dict.fromkeys(phrases))


def _mean_se(group: list[dict], field: str, se_field: str | None) -> tuple[float | None, float | None]:
    """The mean of ``field`` over the seeds and the mean of their standard errors over test
    images (``se_field``)."""
    mean, _ = over_seeds(group, field)
    se = over_seeds(group, se_field)[0] if se_field else None
    return mean, se


def nll_table(records: list[dict]) -> pd.DataFrame:
    """One row per profile entry (its seeds together; Parzen estimates are in
    :func:`parzen_table`, not here): the mean test NLL over seeds with the
    standard error over test images (the mean of the seeds' SEs) and, with several seeds, the
    standard error across seeds; beside the published number, "ours − published" for an entry
    whose every seed converged (:func:`converged`), else why there is none. The key columns
    (:data:`KEY_COLUMNS`) come first."""
    rows = []
    for entry, group in by_entry([r for r in records if r["likelihood"] != "estimate"]).items():
        r = group[0]
        a = r.get("anchor") or {}
        nll, nll_se = _mean_se(group, "test_nll_nats", "test_nll_se")
        _, seed_se = over_seeds(group, "test_nll_nats")
        bpd, bpd_se = _mean_se(group, "bits_per_dim", "bits_per_dim_se")
        cont, _ = _mean_se(group, "test_nll_nats_continuous", None)
        unit_value = {"nats": nll, "bits/dim": bpd, "nats on [0,1]": cont}.get(a.get("unit")) if a else None
        all_converged = all(converged(g) for g in group)
        rows.append({
            "model": r["label"],
            "test NLL (nats)": _pm(nll, nll_se, 2),
            "SE over seeds": f"{seed_se:.2f}" if seed_se is not None else "—",
            "bits/dim": _pm(bpd, bpd_se, 4),
            "published": anchors.published_label(a) if a else "—",
            "ours − published": _difference(r if all_converged else next(g for g in group if not converged(g)), a,
                                            unit_value),
            "stopped by": _stops(group),
            "seeds": ", ".join(str(g.get("seed")) for g in group),
            "flag": (f"worse than the uniform distribution ({math.log2(r['n_levels']):g} bits/dim)"
                     if any(worse_than_uniform(g) for g in group) else ""),
            "entry": entry,
            "dataset": r["dataset"],
            "likelihood": r["likelihood"],
            "on [0,1] (nats)": _pm(cont, nll_se, 2) if cont is not None else "—",
            "parameters": r["n_params"],
            "train (s)": round(sum(g["train_seconds"] for g in group) / len(group), 1),
            "sampling (ms/image)": round(1000 * r["sample_seconds_per_image"], 2),
            "epochs (best)": ", ".join(f"{g['epochs']} ({g['best_epoch']})" for g in group),
            "source of published": a.get("source", "—") if a else "—",
            "protocol differences": (r.get("protocol_note") or "—") if a else "no published number on this dataset",
        })
    return pd.DataFrame(rows)


def parzen_table(records: list[dict]) -> pd.DataFrame:
    """The Parzen-window estimates (``likelihood == "estimate"``), one row per entry: not a
    likelihood of the model, so never in an NLL or bits/dim column. The value is the negative
    mean test log-density of the window fitted to the model's samples, as Goodfellow et al.
    report it (sign flipped: lower is better), on the dequantized images in [0, 1]."""
    rows = []
    for entry, group in by_entry([r for r in records if r["likelihood"] == "estimate"]).items():
        r = group[0]
        a = r.get("anchor") or {}
        value, se = _mean_se(group, "test_nll_nats_continuous", "test_nll_se")
        _, seed_se = over_seeds(group, "test_nll_nats_continuous")
        rows.append({
            "model": r["label"],
            "Parzen estimate, −log-density on [0,1] (nats)": _pm(value, se, 2),
            "SE over seeds": f"{seed_se:.2f}" if seed_se is not None else "—",
            "window width σ": ", ".join(f"{g['parzen_sigma']:.3f}" for g in group if g.get("parzen_sigma")) or "—",
            "samples": r.get("parzen_n_samples", "—"),
            "published": f"{a['value']:.2f}" if a else "—",
            "source of published": a.get("source", "—") if a else "—",
            "stopped by": _stops(group),
            "seeds": ", ".join(str(g.get("seed")) for g in group),
            "dataset": r["dataset"],
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


def record_link(record: dict, profile: str) -> str:
    """An HTML link from a page of the book to the run's published ``metrics.json`` (the book
    publishes every record at ``<profile>/runs/<run>/``, its path in the repository under
    ``results/``)."""
    run = html.escape(record["run"])
    return f'<a href="../../{html.escape(profile)}/runs/{run}/metrics.json">{run}</a>'


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
            "published (bits/dim)": anchors.published_label(a, unit=False) if a and a["unit"] == "bits/dim" else "—",
            "stopped by": stopped_by(r),
            "parameters": r["n_params"],
            "train (s)": round(r["train_seconds"], 1),
            "_bpd": r["bits_per_dim"],
        })
    if not rows:
        return pd.DataFrame(columns=["model", "density", "likelihood", "bits/dim", "test NLL (nats)",
                                     "published (bits/dim)", "stopped by", "parameters", "train (s)"])
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
            "published": anchors.published_label(pub) if pub else "—",
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


def training_values(specs) -> dict:
    """The training settings of a page's runs as the page states them: ``lr``, ``batch_size``,
    ``max_epochs``, ``patience`` and ``budget`` (:func:`budget_phrase`), each once where every
    run shares it, else run by run (``0.001 (made), 0.01 (nade)``)."""
    def one(key, fmt=str):
        values = [fmt(s.train[key]) if key != "max_seconds" else budget_phrase(s.train) for s in specs]
        if len(set(values)) == 1:
            return values[0]
        return ", ".join(f"{v} ({s.name})" for v, s in zip(values, specs))

    return {"lr": one("lr", lambda v: f"{v:g}"), "batch_size": one("batch_size"), "max_epochs": one("epochs"),
            "patience": one("patience"), "budget": one("max_seconds")}


def glue_training(prefix: str, specs, records: dict[str, dict]) -> dict:
    """Glue the training settings of a page's runs (``<prefix>_lr``, ``_batch_size``,
    ``_max_epochs``, ``_patience``, ``_budget``; once where the runs share a setting, else run by
    run: :func:`training_values`) and why each stopped (``<prefix>_stops``); return them."""
    from myst_nb import glue

    values = {**training_values(specs), "stops": stops_phrase(records)}
    for k, v in values.items():
        glue(f"{prefix}_{k}", v, display=False)
    return values


def seeds_phrase(profile, store, chapter: str, value: str = "test_nll_nats") -> str:
    """What the seeds of a chapter's entries give: for each entry of ``profile`` (a
    :class:`~densitybench.runs.Profile`) in ``chapter`` with several seeds, the mean of
    ``value`` over its finished seeds with the standard error across them, the seeds' own
    numbers and how each stopped; a page shows one seed, the results page every one."""
    from . import runs

    parts = []
    for name, entry in profile.runs.items():
        seeds = entry.get("seeds", [0])
        if entry.get("chapter") != chapter or len(seeds) < 2:
            continue
        recs = [runs.Run(runs.run_dir(s, store)).record for s in profile.specs(names=[name])
                if s.name == name and runs.status(s, store)["status"] == "done"]
        if len(recs) < 2:
            parts.append(f"{entry.get('label') or name}: {len(recs)} of its {len(seeds)} seeds finished")
            continue
        mean, se = over_seeds(recs, value)
        each = ", ".join(f"{r[value]:.2f} (seed {r['seed']}, {r['stop_reason'].replace('_', ' ')})" for r in recs)
        parts.append(f"{entry.get('label') or name}: {mean:.2f} ± {se:.2f} across seeds {each}")
    return "; ".join(parts) if parts else "every run of this page has one seed"


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
