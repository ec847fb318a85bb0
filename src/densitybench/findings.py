"""What the study found, computed from the run records of a profile: the page "Findings".

Everything here reads ``metrics.json`` records (see :mod:`densitybench.report`) and trains
nothing:

- the headline figure, every entry's test number on one dataset, best first, with its
  standard errors, the published number beside it and whether its training converged
  (:func:`headline_rows`, :func:`headline_figure`);
- the compute axis: the validation value of every run against its cumulative training time
  (:func:`learning_curves`, :func:`compute_figure`), and the best validation value each run had
  reached within a few CPU budgets (:func:`at_budget`, :func:`budget_table`);
- the hypotheses of the introduction, each with a verdict chosen from the numbers: whether
  the published numbers reproduce (:func:`reproduction`, :func:`reproduction_summary`),
  whether MADE with the seed's settings is robust across datasets (:func:`made_robustness`,
  :func:`robustness_summary`), whether MADE's samples are richer than PCA + GMM's
  (:func:`samples_comparison`);
- which family is best for what (:func:`best_entry`, :func:`sampling_extremes`,
  :func:`still_improving`) and what the runs cannot settle (:func:`unsettled`).

A *cut-short* run stopped at a time budget, an epoch cap or an EM iteration cap; a
*converged* one stopped by its own rule (:func:`densitybench.report.converged`). Only an entry
whose every seed converged is set against a published number.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from . import anchors, report

#: a difference within this many standard errors of zero counts as reproducing a number
WITHIN_SE = 2.0
#: the verdicts of one comparison with a published number (:func:`compare`)
REPRODUCES = "reproduces (within 2 SE)"
LOWER = "lower than published by more than 2 SE"
HIGHER = "higher than published by more than 2 SE"
CUT_SHORT = "cannot judge: training cut short"
#: the CPU budgets (seconds of training) of the equal-budget table
BUDGETS = (60, 300, 600, 1800)
#: the settings of the seed's MADE, the subject of the robustness hypothesis
SEED_MADE = {"n_masks": 1, "hidden_sizes": [500]}
#: the record fields of a test number in each unit, with those of its standard error
UNIT_FIELDS = {"nats": ("test_nll_nats", "test_nll_se"), "bits/dim": ("bits_per_dim", "bits_per_dim_se"),
               "nats on [0,1]": ("test_nll_nats_continuous", "test_nll_se")}
#: how the headline figure draws a converged entry and one cut short
STYLE = {"converged": {"color": "C0", "markerfacecolor": "C0"},
         "cut short": {"color": "C3", "markerfacecolor": "white"}}


def cut_short(record: dict) -> bool:
    """Whether a run stopped at a budget or a cap rather than by its own stopping rule."""
    return bool(record.get("stop_reason")) and not report.converged(record)


def is_continuous(record: dict) -> bool:
    """Whether a run is a continuous density on dequantized levels: its test NLL in nats is a
    dequantization bound on the discrete NLL (it reports the density on [0, 1] beside it)."""
    return record.get("test_nll_nats_continuous") is not None and report.dataset_kind(record) == "levels"


def row_label(record: dict) -> str:
    """The name of an entry on a figure or in a table: its label, with ``(bound)`` for an
    upper bound on the NLL (the VAE's) and ``(dequantization bound)`` for a continuous model
    on levels, ``(Parzen estimate)`` for a number that is no likelihood of the model."""
    if record.get("likelihood") == "estimate":
        return f"{record['label']} (Parzen estimate)"
    if record.get("likelihood") == "bound":
        return f"{record['label']} (bound)"
    if is_continuous(record):
        return f"{record['label']} (dequantization bound)"
    return record["label"]


def format_pm(value: float | None, se: float | None, digits: int = 2) -> str:
    """``value ± se`` with ``digits`` decimals (``value`` alone without an SE, ``—`` without a value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def unit_digits(unit: str) -> int:
    """Decimals a number in ``unit`` is written with (bits/dim: 4; nats: 2)."""
    return 4 if unit == "bits/dim" else 2


def entry_value(group: list[dict], unit: str = "nats") -> dict:
    """One entry's test number in ``unit`` over its seeds.

    Args:
        group: the records of one profile entry (its seeds; :func:`densitybench.report.by_entry`).
        unit: ``"nats"``, ``"bits/dim"`` or ``"nats on [0,1]"`` (:data:`UNIT_FIELDS`).
    Returns:
        ``value`` (the mean over seeds, None where a seed lacks it), ``se_images`` (the mean
        of the seeds' standard errors over test images), ``se_seeds`` (the standard error
        across seeds; None with one seed), ``se`` (both combined, the square root of the sum
        of their squares), ``converged`` (every seed converged), ``n_seeds`` and ``published``
        (the anchor's value when its unit is ``unit``, else None).
    """
    field, se_field = UNIT_FIELDS[unit]
    value, se_seeds = report.over_seeds(group, field)
    se_images, _ = report.over_seeds(group, se_field)
    if value is None:
        se_images = se_seeds = None
    se = None if se_images is None else math.hypot(se_images, se_seeds or 0.0)
    a = group[0].get("anchor") or {}
    return {"value": value, "se_images": se_images, "se_seeds": se_seeds, "se": se,
            "converged": all(report.converged(r) for r in group), "n_seeds": len(group),
            "published": a["value"] if a and a.get("unit") == unit else None}


# --------------------------------------------------------------------------- the headline figure


def main_datasets(records: list[dict]) -> dict[str, str]:
    """The dataset of each kind (``"binary"``, ``"levels"``) with the most likelihood entries
    (ties: the first name in alphabetical order); a kind without records is absent."""
    counts: dict[tuple[str, str], int] = {}
    for entry, group in report.by_entry([r for r in records if r["likelihood"] != "estimate"]).items():
        key = (report.dataset_kind(group[0]), group[0]["dataset"])
        counts[key] = counts.get(key, 0) + 1
    out = {}
    for (kind, name), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][1])):
        out.setdefault(kind, name)
    return out


def headline_rows(records: list[dict], dataset: str, unit: str = "nats") -> pd.DataFrame:
    """Every likelihood entry on ``dataset`` (Parzen estimates left out), best first.

    Args:
        records: run records (every seed).
        dataset: the dataset shown.
        unit: ``"nats"`` (test NLL per image) or ``"bits/dim"``.
    Returns:
        One row per entry with a number in ``unit``: ``entry``, ``label`` (:func:`row_label`),
        the fields of :func:`entry_value` and ``stopped by``, sorted by ``value``.
    """
    rows = []
    chosen = [r for r in records if r["dataset"] == dataset and r["likelihood"] != "estimate"]
    for entry, group in report.by_entry(chosen).items():
        v = entry_value(group, unit)
        if v["value"] is None:
            continue
        rows.append({"entry": entry, "label": row_label(group[0]), **v,
                     "stopped by": "; ".join(dict.fromkeys(report.stopped_by(r) for r in group))})
    cols = ["entry", "label", "value", "se_images", "se_seeds", "se", "converged", "n_seeds", "published",
            "stopped by"]
    return pd.DataFrame(rows, columns=cols).sort_values("value", kind="stable").reset_index(drop=True)


def _converged_phrase(records: list[dict]) -> str:
    """The legend's name of a converged entry: by patience, by EM's tolerance, or either."""
    reasons = {r.get("stop_reason") for r in records if report.converged(r)}
    if reasons == {"converged"}:
        return "converged (EM tolerance)"
    return "converged (patience)" if reasons <= {"patience"} else "converged (patience or EM tolerance)"


def headline_figure(records: list[dict], dataset: str, unit: str = "nats"):
    """Every entry's test number on ``dataset`` (:func:`headline_rows`), one row each, best at
    the top: the mean over seeds with its standard error over test images (thick bar) and,
    with several seeds, across seeds (thin bar with caps); a filled marker for an entry whose
    every seed converged, a hollow one for an entry cut short by a budget or a cap; the
    published number, where it is in ``unit``, as a hollow diamond beside it.

    Args:
        records: run records (every seed).
        dataset: the dataset shown.
        unit: ``"nats"`` or ``"bits/dim"``: the axis.
    Returns:
        The figure. Each entry's marker has the ``gid`` ``"converged"`` or ``"cut short"``,
        each published number the ``gid`` ``"published"``.
    Raises:
        ValueError: no entry on ``dataset`` has a number in ``unit``.
    """
    rows = headline_rows(records, dataset, unit)
    if not len(rows):
        raise ValueError(f"no entry on {dataset!r} has a number in {unit}")
    digits = unit_digits(unit)
    n = len(rows)
    fig, ax = plt.subplots(figsize=(9, 0.35 * n + 1.5))
    for i, row in rows.iterrows():
        kind = "converged" if row["converged"] else "cut short"
        style = STYLE[kind]
        if row["se_seeds"] is not None and not pd.isna(row["se_seeds"]):
            ax.errorbar(row["value"], i, xerr=row["se_seeds"], fmt="none", ecolor=style["color"], elinewidth=1,
                        capsize=4, zorder=2)
        if row["se_images"] is not None and not pd.isna(row["se_images"]):
            ax.errorbar(row["value"], i, xerr=row["se_images"], fmt="none", ecolor=style["color"], elinewidth=3,
                        zorder=2)
        if row["published"] is not None and not pd.isna(row["published"]):
            ax.plot(row["published"], i, "D", color="black", markerfacecolor="none", markersize=10, zorder=2,
                    gid="published")
        ax.plot(row["value"], i, "o", color=style["color"], markerfacecolor=style["markerfacecolor"],
                markeredgewidth=1.5, markersize=6, zorder=3, gid=kind)
    labels = [f"{row['label']}   {format_pm(row['value'], row['se'], digits)}" for _, row in rows.iterrows()]
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)  # best at the top
    ax.grid(axis="x", alpha=0.3)
    what = "test NLL (nats per image)" if unit == "nats" else f"test NLL ({unit})"
    ax.set_xlabel(f"{dataset}: {what}, lower is better; bars: SE over test images (thick), over seeds (thin)",
                  fontsize=9)
    chosen = [r for r in records if r["dataset"] == dataset and r["likelihood"] != "estimate"]
    handles = [Line2D([], [], marker="o", ls="none", color=STYLE["converged"]["color"],
                      markerfacecolor=STYLE["converged"]["markerfacecolor"], label=_converged_phrase(chosen)),
               Line2D([], [], marker="o", ls="none", color=STYLE["cut short"]["color"],
                      markerfacecolor=STYLE["cut short"]["markerfacecolor"], markeredgewidth=1.5,
                      label="cut short by a budget or cap"),
               Line2D([], [], marker="D", ls="none", color="black", markerfacecolor="none", label="published")]
    ax.legend(handles=handles, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False,
              borderaxespad=0.2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the compute axis


def has_elapsed(record: dict) -> bool:
    """Whether every epoch of a run's history states its cumulative training time
    (``elapsed_seconds``); records written before that field existed do not."""
    history = record.get("history") or []
    return bool(history) and all(e.get("elapsed_seconds") is not None for e in history)


def epoch_times(record: dict) -> tuple[list[float], str] | None:
    """The cumulative training time at the end of every epoch of a run, and where it comes
    from: ``"recorded"`` (the history's ``elapsed_seconds``), else ``"scaled"``: the running
    sum of every epoch's wall time (``seconds``, which includes its validation) scaled so that
    the last equals the run's recorded ``train_seconds`` (for records written before the
    training time of each epoch was kept). None when neither is in the record."""
    history = record.get("history") or []
    if has_elapsed(record):
        return [float(e["elapsed_seconds"]) for e in history], "recorded"
    seconds = [e.get("seconds") for e in history]
    if not history or any(v is None for v in seconds) or not record.get("train_seconds") or sum(seconds) <= 0:
        return None
    scale, total, times = record["train_seconds"] / sum(seconds), 0.0, []
    for v in seconds:
        total += v
        times.append(total * scale)
    return times, "scaled"


def criterion_offset(record: dict) -> float:
    """What turns a run's validation value into nats of the discrete images: ``D ln K`` for a
    continuous model on levels (its validation value is the density's on [0, 1]), else 0."""
    if is_continuous(record):
        return record["test_nll_nats"] - record["test_nll_nats_continuous"]
    return 0.0


def criterion_name(record: dict) -> str:
    """What a run's validation value is: ``"negative ELBO"`` for a bound-trained model, else
    ``"NLL"`` (a dequantization bound for a continuous model on levels)."""
    return "negative ELBO" if record.get("likelihood") == "bound" else "NLL"


def learning_curves(records: list[dict]) -> pd.DataFrame:
    """The validation value of every run against its cumulative training time, one row per
    epoch of its history.

    The time axis is :func:`epoch_times` (column ``time``: ``"recorded"`` or ``"scaled"``); a
    run with neither and a Parzen estimate (whose validation value is no likelihood) are left
    out.

    Args:
        records: run records.
    Returns:
        Columns ``run``, ``entry``, ``label`` (:func:`row_label`), ``family`` (the model),
        ``dataset``, ``seed``, ``epoch``, ``elapsed_seconds``, ``time``, ``valid`` (in nats of
        the discrete images: :func:`criterion_offset` added), ``criterion``
        (:func:`criterion_name`), ``stop_reason`` and ``converged``.
    """
    rows = []
    for r in records:
        timed = epoch_times(r)
        if r["likelihood"] == "estimate" or timed is None:
            continue
        times, source = timed
        offset, name = criterion_offset(r), criterion_name(r)
        for e, t in zip(r["history"], times):
            rows.append({"run": r["run"], "entry": report.entry_name(r), "label": row_label(r), "family": r["model"],
                         "dataset": r["dataset"], "seed": r.get("seed"), "epoch": e["epoch"],
                         "elapsed_seconds": t, "time": source, "valid": e["valid_loss"] + offset,
                         "criterion": name, "stop_reason": r.get("stop_reason"), "converged": report.converged(r)})
    cols = ["run", "entry", "label", "family", "dataset", "seed", "epoch", "elapsed_seconds", "time", "valid",
            "criterion", "stop_reason", "converged"]
    return pd.DataFrame(rows, columns=cols)


def y_limits(curves: pd.DataFrame, percentile: float = 75.0, margin: float = 0.05) -> tuple[float, float]:
    """Limits of a compute figure's y axis: from the best value less a margin to a high
    percentile of the first-epoch values (so that a steep first epoch does not flatten the
    rest).

    Args:
        curves: rows of :func:`learning_curves` (one dataset).
        percentile: the percentile of the runs' first-epoch values at the top.
        margin: the fraction of the range added below and above.
    Returns:
        ``(bottom, top)``.
    """
    lo = float(curves["valid"].min())
    first = curves.sort_values("epoch").groupby("run")["valid"].first()
    hi = float(np.percentile(first, percentile))
    if hi <= lo:
        hi = float(curves["valid"].max())
    if hi <= lo:
        hi = lo + 1.0
    pad = margin * (hi - lo)
    return lo - pad, hi + pad


def compute_figure(records: list[dict], dataset: str, budgets=()):
    """Validation value against cumulative training seconds (log scale) of every run on
    ``dataset`` with a timed history (:func:`learning_curves`), one line per run: its end
    marked ``x`` when training was cut short by a budget or a cap, ``o`` when it converged.

    Args:
        records: run records (usually those of one seed).
        dataset: the dataset shown.
        budgets: CPU budgets (seconds) drawn as dotted vertical lines (those of :func:`at_budget`).
    Returns:
        The figure; each line's end marker has the ``gid`` ``"converged"`` or ``"cut short"``.
    Raises:
        ValueError: no run on ``dataset`` has a timed history.
    """
    curves = learning_curves([r for r in records if r["dataset"] == dataset])
    if not len(curves):
        raise ValueError(f"no run on {dataset!r} records its cumulative training time per epoch")
    fig, ax = plt.subplots(figsize=(9, 5.6))
    n_runs = curves["run"].nunique()
    for i, (run, c) in enumerate(curves.groupby("run", sort=False)):
        c = c.sort_values("epoch")
        color = f"C{i}" if n_runs <= 10 else plt.get_cmap("tab20")(i % 20)
        style = "--" if c["criterion"].iloc[0] != "NLL" else "-"
        label = c["label"].iloc[0] + (", negative ELBO" if style == "--" else "")
        ax.plot(c["elapsed_seconds"], c["valid"], style, color=color, lw=1.5, label=label)
        kind = "converged" if c["converged"].iloc[0] else "cut short"
        ax.plot(c["elapsed_seconds"].iloc[-1], c["valid"].iloc[-1], "o" if kind == "converged" else "x",
                color=color, markersize=8, markeredgewidth=2, gid=kind)
    for b in budgets:
        ax.axvline(b, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(*y_limits(curves))
    ax.set_xlabel("cumulative training time (s, log scale)")
    ax.set_ylabel("validation NLL (nats per image)")
    ax.set_title(f"{dataset}: validation NLL against training time", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    marks = [Line2D([], [], marker="x", ls="none", color="black", markeredgewidth=2,
                    label="end: cut short by a budget or cap"),
             Line2D([], [], marker="o", ls="none", color="black", label="end: converged")]
    if budgets:
        marks.append(Line2D([], [], ls=":", color="grey", label="the table's budgets"))
    ax.legend(handles=ax.get_legend_handles_labels()[0] + marks, fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def at_budget(records: list[dict], budgets=BUDGETS) -> pd.DataFrame:
    """The best validation value each run had reached by an epoch that ended within each CPU
    budget (its cumulative training time at most the budget).

    Args:
        records: run records (usually those of one seed); those without a timed history are
            left out (:func:`learning_curves`).
        budgets: budgets in seconds of training.
    Returns:
        One row per run and budget: ``run``, ``label``, ``dataset``, ``budget``, ``value``
        (the best validation value in nats by then; NaN when its first epoch ended after the
        budget), ``ended_at`` (the run's total training time when it ended within the budget,
        its value then being its final best; else NaN) and ``text``: the value, ``"—"``, or the
        value followed by ``(ended at N s)``.
    """
    curves = learning_curves(records)
    rows = []
    for run, c in curves.groupby("run", sort=False):
        end = float(c["elapsed_seconds"].max())
        for b in budgets:
            within = c[c["elapsed_seconds"] <= b]
            value = float(within["valid"].min()) if len(within) else float("nan")
            ended = end if end <= b else float("nan")
            if not len(within):
                text = "—"
            elif end <= b:
                text = f"{value:.2f} (ended at {end:.0f} s)"
            else:
                text = f"{value:.2f}"
            rows.append({"run": run, "label": c["label"].iloc[0], "dataset": c["dataset"].iloc[0], "budget": b,
                         "value": value, "ended_at": ended, "text": text})
    return pd.DataFrame(rows, columns=["run", "label", "dataset", "budget", "value", "ended_at", "text"])


def budget_table(at: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows of :func:`at_budget` on ``dataset`` as a table: one row per run (its label),
    one column per budget (``≤ 60 s``), the ``text`` of each cell; runs in their order."""
    part = at[at["dataset"] == dataset]
    table = part.pivot(index="run", columns="budget", values="text")
    table = table.loc[list(dict.fromkeys(part["run"]))]
    table.index = [part.loc[part["run"] == run, "label"].iloc[0] for run in table.index]
    table.index.name = "model"
    table.columns = [f"≤ {b:g} s" for b in table.columns]
    return table


# --------------------------------------------------------------------------- published numbers


def compare(group: list[dict], anchor: dict | None = None) -> dict:
    """One entry set against a published number.

    Args:
        group: the records of one entry (its seeds).
        anchor: the published number (``value``, ``unit``); None: the entry's own ``anchor``.
    Returns:
        ``ours`` and ``se`` (:func:`entry_value` in the anchor's unit), ``published``,
        ``unit``, ``converged``, ``difference`` (ours − published; None unless every seed
        converged), ``z`` (the difference over its SE) and ``verdict``: :data:`REPRODUCES`
        (within :data:`WITHIN_SE` standard errors), :data:`LOWER`, :data:`HIGHER` or
        :data:`CUT_SHORT` (some seed stopped at a budget or a cap).
    Raises:
        ValueError: the entry has no published number, or no number in its unit.
    """
    a = anchor or group[0].get("anchor")
    if not a:
        raise ValueError(f"entry {report.entry_name(group[0])!r} has no published number")
    v = entry_value(group, a["unit"])
    if v["value"] is None:
        raise ValueError(f"entry {report.entry_name(group[0])!r} has no number in {a['unit']}")
    out = {"ours": v["value"], "se": v["se"], "published": a["value"], "unit": a["unit"],
           "converged": v["converged"], "difference": None, "z": None, "verdict": CUT_SHORT}
    if not v["converged"]:
        return out
    diff = v["value"] - a["value"]
    z = diff / v["se"] if v["se"] else math.copysign(math.inf, diff) if diff else 0.0
    verdict = REPRODUCES if abs(z) <= WITHIN_SE else LOWER if z < 0 else HIGHER
    return {**out, "difference": diff, "z": z, "verdict": verdict}


def difference_text(comparison: dict, digits: int = 2) -> str:
    """``ours − published ± SE`` of a :func:`compare` result, signed; ``—`` when not judged."""
    if comparison["difference"] is None:
        return "—"
    return f"{comparison['difference']:+.{digits}f} ± {comparison['se']:.{digits}f}"


def reproduction(records: list[dict]) -> pd.DataFrame:
    """Every entry with a published number (:func:`compare`), in the order of the records.

    Returns:
        Columns ``entry``, ``model`` (:func:`row_label`), ``dataset``, ``published`` (value
        and unit), ``source``, ``ours`` (± its SE), ``stopped by``, ``ours − published``
        (± its SE; ``—`` for an entry cut short), ``verdict``, and the numbers ``difference``,
        ``se``, ``z``, ``converged``.
    """
    rows = []
    for entry, group in report.by_entry(records).items():
        a = group[0].get("anchor")
        if not a or group[0].get(UNIT_FIELDS.get(a["unit"], ("",))[0]) is None:
            continue
        c = compare(group)
        d = unit_digits(a["unit"])
        rows.append({"entry": entry, "model": row_label(group[0]), "dataset": group[0]["dataset"],
                     "published": anchors.published_label(a), "source": a.get("source", "—"),
                     "ours": format_pm(c["ours"], c["se"], d),
                     "stopped by": "; ".join(dict.fromkeys(report.stopped_by(r) for r in group)),
                     "ours − published": difference_text(c, d),
                     "verdict": c["verdict"], "difference": c["difference"], "se": c["se"], "z": c["z"],
                     "converged": c["converged"]})
    cols = ["entry", "model", "dataset", "published", "source", "ours", "stopped by", "ours − published", "verdict",
            "difference", "se", "z", "converged"]
    return pd.DataFrame(rows, columns=cols)


def plural(n: int, one: str, many: str) -> str:
    """``n`` with the noun or verb phrase that agrees with it: ``1 entry``, ``2 entries``."""
    return f"{n} {one if n == 1 else many}"


def listing(names) -> str:
    """Names joined by semicolons (labels hold commas), ``"none"`` for none."""
    names = list(names)
    return "; ".join(names) if names else "none"


def _names(table: pd.DataFrame, verdict: str, column: str = "model") -> str:
    return listing(table.loc[table["verdict"] == verdict, column])


def reproduction_summary(table: pd.DataFrame) -> dict:
    """The verdict on "the published numbers reproduce", from :func:`reproduction`.

    Returns:
        Counts ``n_published`` (entries with a published number), ``n_converged``,
        ``n_reproduce``, ``n_lower``, ``n_higher`` and ``n_cut`` (cannot be judged); the
        entries of each (``reproduce``, ``lower``, ``higher``, ``cut``, comma-separated);
        ``verdict``: a phrase chosen from the counts.
    """
    counts = {"n_published": len(table), "n_converged": int(table["converged"].sum()) if len(table) else 0,
              "n_reproduce": int((table["verdict"] == REPRODUCES).sum()),
              "n_lower": int((table["verdict"] == LOWER).sum()),
              "n_higher": int((table["verdict"] == HIGHER).sum()),
              "n_cut": int((table["verdict"] == CUT_SHORT).sum())}
    n, k = counts["n_converged"], counts["n_reproduce"]
    if counts["n_published"] == 0:
        verdict = "cannot be tested here: no entry of this profile has a published number"
    elif n == 0:
        verdict = "cannot be judged here: every entry with a published number was cut short"
    elif k == n:
        verdict = "holds for " + ("the one entry" if n == 1 else f"all {n} entries") + " trained to convergence"
    elif k == 0:
        verdict = f"does not hold for any of the {n} entries trained to convergence"
    else:
        verdict = f"holds for {k} of the {n} entries trained to convergence"
    names = {"reproduce": _names(table, REPRODUCES), "lower": _names(table, LOWER), "higher": _names(table, HIGHER),
             "cut": _names(table, CUT_SHORT)}
    details = (f"Of the {plural(counts['n_published'], 'entry', 'entries')} with a published number, "
               f"{plural(n, 'was', 'were')} trained to convergence")
    if n:
        details += (f": {plural(k, 'reproduces', 'reproduce')} it within two standard errors "
                    f"({names['reproduce']}), {plural(counts['n_higher'], 'is', 'are')} worse by more "
                    f"({names['higher']}) and {plural(counts['n_lower'], 'is', 'are')} better by more "
                    f"({names['lower']})")
    if counts["n_cut"]:
        details += (f". The other {plural(counts['n_cut'], 'cannot', 'cannot')} be judged because training was cut "
                    f"short: {names['cut']}")
    return {**counts, **names, "verdict": verdict, "details": details + "."}


# --------------------------------------------------------------------------- robustness of MADE


def is_seed_made(record: dict, settings: dict | None = None) -> bool:
    """Whether a run is MADE with the seed's settings (:data:`SEED_MADE`: one mask, one hidden
    layer of 500 units), or with the hyperparameters ``settings`` when given."""
    hp = (record.get("spec") or {}).get("hparams") or {}
    return record.get("model") == "made" and all(hp.get(k) == v for k, v in (settings or SEED_MADE).items())


def made_robustness(records: list[dict]) -> pd.DataFrame:
    """MADE with the seed's settings (:func:`is_seed_made`) on every dataset it ran on, set
    against the published MADE number on that dataset where there is one.

    Args:
        records: run records of any profiles (the study's own and those it gathers).
    Returns:
        One row per dataset: ``dataset``, ``ours`` (± SE), ``published``, ``ours − published``,
        ``relative`` (the difference over the published number, in percent), ``verdict`` (of
        :func:`compare`; ``"no published number"`` where there is none) and the numbers
        ``difference``, ``se``, ``percent``.
    """
    rows, groups = [], {}
    for r in records:  # an entry's name may recur in another profile, on another dataset
        if is_seed_made(r):
            groups.setdefault((r["dataset"], report.entry_name(r)), []).append(r)
    for group in groups.values():
        r = group[0]
        a = r.get("anchor")
        row = {"dataset": r["dataset"], "model": r["label"], "stopped by": report.stopped_by(r)}
        if not a:
            v = entry_value(group, "nats")
            rows.append({**row, "ours": format_pm(v["value"], v["se"]), "published": "—", "ours − published": "—",
                         "relative": "—", "verdict": "no published number", "difference": None, "se": v["se"],
                         "percent": None})
            continue
        c = compare(group)
        d = unit_digits(a["unit"])
        pct = None if c["difference"] is None else 100 * c["difference"] / abs(c["published"])
        rows.append({**row, "ours": format_pm(c["ours"], c["se"], d), "published": anchors.published_label(a),
                     "ours − published": difference_text(c, d),
                     "relative": f"{pct:+.1f}%" if pct is not None else "—", "verdict": c["verdict"],
                     "difference": c["difference"], "se": c["se"], "percent": pct})
    cols = ["dataset", "model", "stopped by", "ours", "published", "ours − published", "relative", "verdict",
            "difference", "se", "percent"]
    return pd.DataFrame(rows, columns=cols)


def robustness_summary(table: pd.DataFrame) -> dict:
    """The verdict on "MADE is robust across datasets" against the published numbers.

    Args:
        table: :func:`made_robustness`.
    Returns:
        ``n_datasets`` (datasets MADE ran on), ``n_published`` (with a published number),
        ``n_judged`` (of those, trained to convergence), ``n_match`` (within 2 SE),
        ``matched`` and ``unmatched`` (datasets), ``gaps`` (the range of the differences
        where it is worse, in nats and percent) and ``verdict``, a sentence chosen from the
        numbers (with MADE on fewer than two datasets, the claim is not tested).
    """
    judged = table[table["verdict"].isin([REPRODUCES, LOWER, HIGHER])]
    match = judged[judged["verdict"] == REPRODUCES]
    worse = judged[judged["verdict"] == HIGHER]
    better = judged[judged["verdict"] == LOWER]
    out = {"n_datasets": len(table), "n_published": int((table["verdict"] != "no published number").sum()),
           "n_judged": len(judged), "n_match": len(match), "matched": ", ".join(match["dataset"]) or "none",
           "unmatched": ", ".join(list(worse["dataset"]) + list(better["dataset"])) or "none"}
    if len(worse):
        out["gaps"] = (f"{worse['difference'].min():+.2f} to {worse['difference'].max():+.2f} nats "
                       f"({worse['percent'].min():+.1f}% to {worse['percent'].max():+.1f}% of the published number)")
    else:
        out["gaps"] = "none"
    if len(table) < 2:
        verdict = (f"It is not tested here: MADE with the seed's settings ran on "
                   f"{'one dataset' if len(table) else 'no dataset'} of this profile and none other.")
    elif not len(judged):
        verdict = ("It cannot be judged against the published numbers here: no run of MADE with the seed's "
                   "settings on a dataset with a published MADE number was trained to convergence.")
    elif len(match) == len(judged):
        verdict = ("It holds against the published numbers: MADE with the seed's settings matches the published "
                   f"MADE (within 2 SE) on {'the one dataset' if len(judged) == 1 else f'all {len(judged)} datasets'} "
                   "where one exists.")
    else:
        verdict = ("It holds only partly against the published numbers: MADE with the seed's settings matches the "
                   f"published MADE (within 2 SE) on {len(match)} of the {len(judged)} datasets where one exists "
                   f"({out['matched']})")
        verdict += (f"; it is worse on {len(worse)} ({', '.join(worse['dataset'])}), by {out['gaps']}"
                    if len(worse) else "")
        verdict += (f"; it is better on {len(better)} ({', '.join(better['dataset'])})" if len(better) else "")
        verdict += "."
    out["verdict"] = verdict
    return out


# --------------------------------------------------------------------------- samples


def samples_comparison(sample_rows: dict, made: str | None, gmm: str | None) -> dict:
    """MADE's samples against PCA + GMM's, from the measures of the samples page.

    Args:
        sample_rows: the ``rows`` of the samples page's ``samples.json`` (entry -> measures
            with standard errors: ``recall``, ``precision``, ``fd``, ``mode_entropy``).
        made: the entry of MADE with the seed's settings (None: none).
        gmm: the entry of PCA + GMM (None: none).
    Returns:
        ``judged`` (both measured), ``z_recall``, ``z_precision``, ``z_fd`` (MADE minus
        PCA + GMM over the standard error of the difference; for the Fréchet distance PCA +
        GMM minus MADE, so that positive favours MADE everywhere) and the measures as
        ``value ± se`` text (``made_recall``, ``gmm_recall``, ...); ``verdict``: ``"holds"``
        (MADE's recall higher by more than 2 SE), ``"does not hold"`` (lower by more than
        2 SE) or ``"is not resolved at this sample size"``.
    """
    if not made or not gmm or made not in sample_rows or gmm not in sample_rows:
        return {"judged": False, "verdict": "is not tested on this page"}
    m, g = sample_rows[made], sample_rows[gmm]

    def z(key, sign=1.0):
        se = math.hypot(m[f"{key}_se"], g[f"{key}_se"])
        return sign * (m[key] - g[key]) / se if se else math.copysign(math.inf, sign * (m[key] - g[key]))

    out = {"judged": True, "z_recall": z("recall"), "z_precision": z("precision"), "z_fd": z("fd", -1.0),
           "z_entropy": z("mode_entropy")}
    for key, d in (("recall", 3), ("precision", 3), ("fd", 1), ("mode_entropy", 3)):
        out[f"made_{key}"] = format_pm(m[key], m[f"{key}_se"], d)
        out[f"gmm_{key}"] = format_pm(g[key], g[f"{key}_se"], d)
    zr = out["z_recall"]
    out["verdict"] = ("holds" if zr > WITHIN_SE else "does not hold" if zr < -WITHIN_SE
                      else "is not resolved at this sample size")
    return out


def samples_sentence(comparison: dict) -> str:
    """What :func:`samples_comparison` found, in words chosen from its numbers: recall (the
    verdict's measure), then the Fréchet distance, the entropy of the digit labels and
    precision, each said to differ only beyond :data:`WITHIN_SE` standard errors."""
    c = comparison
    if not c.get("judged"):
        return ("the samples page has not measured both models' samples for this profile; its measures, "
                "and both models' samples side by side, are on the samples page")

    def side(z, more, less, same):
        return more if z > WITHIN_SE else less if z < -WITHIN_SE else same

    text = (f"MADE's recall is {c['made_recall']} against PCA + GMM's {c['gmm_recall']} "
            f"({c['z_recall']:+.1f} standard errors of the difference): MADE's samples cover "
            + side(c["z_recall"], "more", "less", "about as much")
            + " of the variety of real images")
    text += (f"; their Fréchet distance is {c['made_fd']} against {c['gmm_fd']} (lower is better: "
             + side(c["z_fd"], "MADE's is lower", "PCA + GMM's is lower", "no difference beyond two standard errors")
             + f"), the entropy of their digit labels {c['made_mode_entropy']} against {c['gmm_mode_entropy']} "
             "nats (at most ln 10 = 2.303)")
    text += "; " + side(
        c["z_precision"],
        f"MADE's samples are also more precise ({c['made_precision']} against {c['gmm_precision']})",
        f"PCA + GMM's samples are more precise ({c['gmm_precision']} against MADE's {c['made_precision']}): "
        "more of them look like some real image",
        f"their precision does not differ beyond two standard errors ({c['made_precision']} against "
        f"{c['gmm_precision']})")
    return text


# --------------------------------------------------------------------------- best for what


def best_entry(records: list[dict], dataset: str, unit: str = "nats", *, converged_only: bool = False,
               likelihoods=("exact",)) -> dict | None:
    """The entry with the lowest test number on ``dataset`` (a row of :func:`headline_rows`).

    Args:
        records: run records.
        dataset: the dataset.
        unit: ``"nats"`` or ``"bits/dim"``.
        converged_only: only entries whose every seed converged.
        likelihoods: the kinds of number considered (``"exact"``, ``"bound"``).
    Returns:
        The row as a dict (``label``, ``value``, ``se``, ``converged``, ``stopped by``), or
        None when no entry qualifies.
    """
    rows = headline_rows([r for r in records if r["likelihood"] in likelihoods], dataset, unit)
    if converged_only:
        rows = rows[rows["converged"]]
    return rows.iloc[0].to_dict() if len(rows) else None


def per_image_time(seconds: float) -> str:
    """A time per image in a readable unit: ``4.4 µs``, ``0.42 ms``, ``8.2 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def sampling_extremes(records: list[dict]) -> dict:
    """The entries that draw a sample fastest and slowest (``sample_seconds_per_image``,
    mean over seeds): ``fastest`` and ``slowest`` as ``label (time per image)``, and their
    ``ratio``."""
    times = {}
    for entry, group in report.by_entry([r for r in records if r.get("sample_seconds_per_image")]).items():
        times[f"{row_label(group[0])} on {group[0]['dataset']}"] = report.over_seeds(
            group, "sample_seconds_per_image")[0]
    if not times:
        return {"fastest": "none", "slowest": "none", "ratio": None}
    fast, slow = min(times, key=times.get), max(times, key=times.get)
    return {"fastest": f"{fast} ({per_image_time(times[fast])} per image)",
            "slowest": f"{slow} ({per_image_time(times[slow])} per image)", "ratio": times[slow] / times[fast]}


def still_improving(records: list[dict], n: int = 5) -> pd.DataFrame:
    """The runs cut short by a budget or a cap while their validation value was still falling
    (``still_improving``), with the slope of their last ``n`` epochs
    (:func:`densitybench.report.valid_slope`).

    Args:
        records: run records.
        n: the epochs the slope is fitted to.
    Returns:
        Columns ``model`` (:func:`row_label`), ``dataset``, ``stopped by`` (the stop reason),
        ``epochs``, ``train (s)``, ``slope`` (per epoch, of the validation value in nats;
        None with one epoch) and the slope as text.
    """
    rows = []
    for r in records:
        if not (cut_short(r) and r.get("still_improving")):
            continue
        slope = report.valid_slope(r, n)
        rows.append({"model": row_label(r), "dataset": r["dataset"], "stopped by": r["stop_reason"].replace("_", " "),
                     "epochs": r["epochs"], "train (s)": round(r["train_seconds"]), "slope": slope,
                     f"slope over the last {n} epochs (nats/epoch)":
                         f"{slope:+.3f}" if slope is not None else "— (one epoch)"})
    return pd.DataFrame(rows, columns=["model", "dataset", "stopped by", "epochs", "train (s)", "slope",
                                       f"slope over the last {n} epochs (nats/epoch)"])


def unsettled(records: list[dict]) -> dict:
    """What the runs do not settle.

    Args:
        records: run records (every seed).
    Returns:
        ``cut_families``: the families (models) whose every run was cut short, each with its
        entries' labels (``"—"`` if none), and ``n_cut_families`` of ``n_families``; ``n_cut``
        and ``n_entries`` (entries with a seed cut short, entries in all); ``max_seeds``: the
        most seeds of any entry (1: no spread across seeds is measured).
    """
    groups = report.by_entry(records)
    families: dict[str, list[dict]] = {}
    for r in records:
        families.setdefault(r["model"], []).append(r)
    cut = {f: rs for f, rs in families.items() if all(cut_short(r) for r in rs)}
    text = "; ".join(f"{f} ({listing(dict.fromkeys(row_label(r) for r in rs))})" for f, rs in cut.items())
    return {"cut_families": text or "—", "n_cut_families": len(cut), "n_families": len(families),
            "n_cut": sum(any(cut_short(r) for r in g) for g in groups.values()), "n_entries": len(groups),
            "max_seeds": max((len(g) for g in groups.values()), default=0)}


def ranking(records: list[dict], dataset: str | None, unit: str = "nats") -> str:
    """What the runs say about the order of the entries on ``dataset``: the order of those
    trained to convergence (best first), the entries cut short whose place is not known, and
    the families (:func:`unsettled`) whose every run was cut short.

    Args:
        records: run records (every seed).
        dataset: the dataset ranked (None: no such dataset in the profile).
        unit: the unit of the ranking.
    Returns:
        A few sentences, chosen from the numbers.
    """
    rows = headline_rows(records, dataset, unit) if dataset else headline_rows([], "", unit)
    order = " < ".join(rows.loc[rows["converged"], "label"]) or "none"
    cut_here = listing(rows.loc[~rows["converged"], "label"])
    if not len(rows):
        text = "No dataset of this kind has an entry here."
    elif cut_here == "none":
        text = f"On {dataset}, every entry was trained to convergence; they rank, best first: {order}."
    else:
        text = (f"On {dataset}, the entries trained to convergence rank, best first: {order}. Where the others "
                f"({cut_here}) would stand after converged training is not known, and their order among themselves "
                "is an order of how far each got within its budget.")
    unset = unsettled(records)
    if unset["n_cut_families"]:
        text += (f" For {unset['n_cut_families']} of the {unset['n_families']} families every run was cut short: "
                 f"{unset['cut_families']}. This page ranks none of them.")
    else:
        text += " Every family has at least one run trained to convergence."
    return text
