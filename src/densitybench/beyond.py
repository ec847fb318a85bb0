"""Beyond MNIST: one fixed set of settings on every binary dataset, baselines chosen on validation.

The chapter "Beyond MNIST" tests the seed's claim that MADE is robust: MADE with one set of
hyperparameters beside a mixture of Bernoullis and PCA + GMM (Germain et al. 2015, Table 2;
the seed's Atari comparison), on the UCI binary datasets, Atari frames, silhouettes and
Fashion-MNIST. Its runs are in the plans of the group profiles (``uci``, ``atari``,
``caltech``, ``fashion``; chapter ``beyond``), one run per model *kind* and dataset, named
``<dataset>-<kind><K>``:

- ``made_masks`` (MADE with mask sampling), ``made`` (one mask), ``nade``, ``fvsbn``: no ``K``;
- ``mob<K>`` and ``pca_gmm<K>``: one run per number of mixture components ``K`` of a grid,
  the one with the best validation NLL chosen (:func:`select_on_validation`); on 8-bit images
  a single ``pca_gmm`` run.

:class:`Gathering` finds a dataset's runs where its chapter settings say they are (the
profile's own store, or the stores of the profiles in ``collect``), trains them first when
that is allowed, and otherwise lists the dataset as not run with the command that makes its
runs. :func:`folder_specs` writes the specs of runs made on the fly (a folder of the reader's
own images) with the chapter's one set of settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import runs

#: every kind of run of the chapter, in the order of its tables
KINDS = ("made_masks", "made", "nade", "fvsbn", "mob", "pca_gmm")
#: the kinds whose number of mixture components is chosen on validation
GRIDDED = ("mob", "pca_gmm")
#: the registry model of each kind
MODEL_OF = {"made_masks": "made", "made": "made", "nade": "nade", "fvsbn": "fvsbn", "mob": "bernoulli_mixture",
            "pca_gmm": "pca_gmm"}
#: how the tables name each kind
LABEL = {"made_masks": "MADE, seed settings (mask sampling)", "made": "MADE, 1 mask", "nade": "NADE",
         "fvsbn": "FVSBN", "mob": "mixture of Bernoullis", "pca_gmm": "PCA + GMM (dequantized bound)"}
#: the kinds each group of datasets of the chapter shows
GROUP_KINDS = {
    "uci": ("made_masks", "made", "nade", "fvsbn", "mob", "pca_gmm"),
    "atari": ("made_masks", "made", "mob", "pca_gmm"),
    "images": ("made_masks", "made", "mob", "pca_gmm"),
    "levels": ("pca_gmm",),
}

_RUN_NAME = re.compile(r"^(?P<stem>.+)-(?P<kind>made_masks|made|nade|fvsbn|mob|pca_gmm)(?P<k>\d*)$")


def parse_name(name: str) -> tuple[str, str, int | None]:
    """``(dataset stem, kind, K or None)`` of a run named ``<stem>-<kind><K>``.

    Raises:
        ValueError: the name does not end in a kind of :data:`KINDS`.
    """
    m = _RUN_NAME.match(name)
    if m is None:
        raise ValueError(f"run {name!r} is not named <dataset>-<kind><K> with a kind of {', '.join(KINDS)}")
    return m["stem"], m["kind"], int(m["k"]) if m["k"] else None


def select_on_validation(candidates: list) -> "runs.Run":
    """The run of ``candidates`` (finished :class:`~densitybench.runs.Run`) with the lowest
    validation NLL; ties go to the first.

    Raises:
        ValueError: no candidate, or one without a validation NLL.
    """
    if not candidates:
        raise ValueError("no run to choose from")
    missing = [r.folder.name for r in candidates if r.record.get("valid_nll_nats") is None]
    if missing:
        raise ValueError(f"no validation NLL recorded for {', '.join(missing)}: cannot choose on validation")
    return min(candidates, key=lambda r: r.record["valid_nll_nats"])


class NotRun(LookupError):
    """The runs of a dataset are absent and may not be trained here; the message says how to make them."""


@dataclass
class DatasetRuns:
    """The runs of one dataset: every run found, and per kind the one shown.

    Attributes:
        dataset: the name the chapter shows.
        profile: the profile whose plan holds the runs (the chapter's own for runs made on the fly).
        store: the run store they were read from.
        runs: spec name -> :class:`~densitybench.runs.Run`, every ``K`` of a grid included.
        grid: kind -> ``[(K, Run), ...]`` for the kinds with a grid of ``K``.
        chosen: kind -> the run shown (for a grid, the one with the best validation NLL).
    """

    dataset: str
    profile: str
    store: Path
    runs: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    chosen: dict = field(default_factory=dict)

    def record(self, kind: str) -> dict:
        """The ``metrics.json`` record of the run shown for ``kind``."""
        return self.chosen[kind].record


def dataset_runs(dataset: str, specs, root, kinds, *, profile: str, train_missing: bool = True, device="auto",
                 data_dir=None, progress: bool = False) -> DatasetRuns:
    """The runs ``specs`` of ``dataset`` from the store at ``root`` (trained first when missing
    and ``train_missing``), grouped by kind, each grid's run chosen on validation.

    Args:
        dataset: the name shown for the dataset.
        specs: its :class:`~densitybench.runs.RunSpec` (one seed), named ``<stem>-<kind><K>``.
        root: the run store.
        kinds: the kinds the dataset must have (see :data:`GROUP_KINDS`).
        profile: the profile whose plan the specs come from.

    Raises:
        NotRun: a kind has no run in ``specs``, or (``train_missing`` False) a run is not
            finished or holds other settings than its spec.
        runs.SpecMismatch: with ``train_missing``, a folder holds a run with other settings.
    """
    by_kind: dict[str, list] = {}
    for spec in specs:
        _, kind, k = parse_name(spec.name)
        by_kind.setdefault(kind, []).append((k, spec))
    absent = [k for k in kinds if k not in by_kind]
    if absent:
        raise NotRun(f"the plan of profile {profile!r} has no {', '.join(absent)} run on {dataset}")
    out = DatasetRuns(dataset=dataset, profile=profile, store=Path(root))
    for kind in kinds:
        found = []
        for k, spec in sorted(by_kind[kind], key=lambda t: (t[0] is not None, t[0] or 0)):
            try:
                run = runs.ensure(spec, root, device=device, data_dir=data_dir, progress=progress,
                                  train_missing=train_missing)
            except runs.RunNotDone as err:
                raise NotRun(str(err)) from None
            except runs.SpecMismatch as err:
                if train_missing:
                    raise
                raise NotRun(str(err)) from None
            out.runs[spec.name] = run
            found.append((k, run))
        if kind in GRIDDED and any(k is not None for k, _ in found):
            out.grid[kind] = found
            out.chosen[kind] = select_on_validation([r for _, r in found])
        else:
            if len(found) != 1:
                raise NotRun(f"{dataset}: {len(found)} {kind} runs without a K in the plan of profile {profile!r}")
            out.chosen[kind] = found[0][1]
    return out


def fetch_command(err: Exception, name: str) -> str:
    """The command that fetches a missing dataset, as its loader's message gives it (without
    the machine's data directory), else the generic one."""
    m = re.search(r"get (?:them|it) with: (densitybench data fetch \S+)", str(err))
    return m.group(1) if m else f"densitybench data fetch {name}"


class Gathering:
    """Where the chapter's runs come from under one profile, and what is absent.

    With ``collect`` empty in the chapter's settings the runs are the profile's own plan
    (chapter ``beyond``) in its own store; otherwise each dataset's runs are those of the first
    profile of ``collect`` whose plan has runs on it, in that profile's store
    (``runs.store_root(profile, results_root)``). A run not finished there is trained first
    when ``train_missing``; otherwise its dataset is listed in :attr:`not_run` with the command
    that makes its runs, as is a dataset that no plan searched has runs on.

    Args:
        profile: the chapter's profile.
        cfg: the chapter's settings (``collect``, ``train_missing``).
        results_root: the folder holding ``<profile>/runs`` of every profile.
        seed: the seed of the runs shown.
    """

    def __init__(self, profile: str, cfg: dict, results_root, *, seed: int = 0, device="auto", data_dir=None,
                 progress: bool = False):
        self.profile = profile
        self.collect = list(cfg.get("collect") or [])
        self.train_missing = bool(cfg.get("train_missing", True))
        self.results_root = Path(results_root)
        self.seed, self.device, self.data_dir, self.progress = seed, device, data_dir, progress
        self.plans = {p: [s for s in runs.load_profile(p).specs(chapter="beyond") if s.seed == seed]
                      for p in (self.collect or [profile])}
        self.shown: dict[str, DatasetRuns] = {}
        self.not_run: dict[str, str] = {}

    def source(self, dataset: str) -> str | None:
        """The profile whose plan has the runs of ``dataset`` (None: no profile searched has them)."""
        return next((p for p, specs in self.plans.items() if any(s.dataset == dataset for s in specs)), None)

    def store(self, profile: str) -> Path:
        return runs.store_root(profile, self.results_root)

    def how_to_make(self, dataset: str, profile: str) -> str:
        """The command that trains the runs of ``dataset`` in ``profile``'s plan."""
        return f"run it with `densitybench train --profile {profile} --runs '{dataset}-*'`"

    def dataset(self, dataset: str, kinds) -> DatasetRuns | None:
        """The runs of ``dataset`` (kinds ``kinds``), or None with the dataset listed in :attr:`not_run`."""
        profile = self.source(dataset)
        if profile is None:
            searched = ", ".join(self.plans)
            self.not_run[dataset] = (f"no run on it in the plan of the profile{'s' if len(self.plans) > 1 else ''} "
                                     f"{searched}")
            return None
        specs = [s for s in self.plans[profile] if s.dataset == dataset]
        try:
            found = dataset_runs(dataset, specs, self.store(profile), kinds, profile=profile,
                                 train_missing=self.train_missing, device=self.device, data_dir=self.data_dir,
                                 progress=self.progress)
        except NotRun as err:
            self.not_run[dataset] = f"{self.how_to_make(dataset, profile)}; {err}"
            return None
        self.shown[dataset] = found
        return found

    def group(self, names, kinds) -> dict[str, DatasetRuns]:
        """:meth:`dataset` for each of ``names``: name -> its runs, the absent ones left out."""
        return {n: found for n in names if (found := self.dataset(n, kinds)) is not None}

    def own(self, dataset: str, specs, kinds) -> DatasetRuns:
        """Runs made on the fly (``specs``, not in any plan), trained in this profile's store."""
        found = dataset_runs(dataset, specs, self.store(self.profile), kinds, profile=self.profile,
                             train_missing=True, device=self.device, data_dir=self.data_dir, progress=self.progress)
        self.shown[dataset] = found
        return found

    def every_run(self) -> dict[str, "runs.Run"]:
        """Every run found, grid runs included: run folder -> Run."""
        return {r.folder.name: r for d in self.shown.values() for r in d.runs.values()}


def folder_stem(folder) -> str:
    """``image_folder-<folder name>``, with characters a run name may not hold replaced by ``_``."""
    return "image_folder-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(folder).name)


def folder_specs(stem: str, dataset: str, train_images, cfg: dict, seed: int = 0) -> list:
    """The runs of a binary image folder made on the fly, with the chapter's one set of settings:
    MADE with mask sampling and with one mask, and the mixture of Bernoullis and PCA + GMM on
    the grids ``mob_components`` and ``pca_components_images``.

    Args:
        stem: the first part of the run names (letters, digits, ``_ . + -``).
        dataset: the dataset name the runs load (see :func:`densitybench.data.image_folder_name`).
        train_images: ``(N, ...)`` training images, for the principal dimension of PCA + GMM
            (keeping ``pca_variance`` of the variance of the binary images).
        cfg: the chapter's settings.
    """
    from .models.mixtures import principal_dimension

    train = {k: cfg[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "lr_step", "patience") if k in cfg}
    if cfg.get("max_seconds"):
        train["max_seconds"] = cfg["max_seconds"]
    common = dict(train=train, seed=seed, chapter="beyond", options={"n_samples": cfg["n_samples"]})
    d = principal_dimension(train_images, cfg["pca_variance"])
    specs = [
        runs.make_spec(f"{stem}-made_masks", "made", dataset, hparams=cfg["made_masks"], label=LABEL["made_masks"],
                       **common),
        runs.make_spec(f"{stem}-made", "made", dataset, hparams=cfg["made"], label=LABEL["made"], **common),
    ]
    specs += [runs.make_spec(f"{stem}-mob{k}", "bernoulli_mixture", dataset,
                             hparams={"n_components": k, "max_iter": cfg["mob_max_iter"]},
                             label=f"mixture of Bernoullis, K = {k}", **common) for k in cfg["mob_components"]]
    specs += [runs.make_spec(f"{stem}-pca_gmm{k}", "pca_gmm", dataset,
                             hparams={"n_principal": d, "n_components": k, "max_iter": cfg["pca_max_iter"]},
                             label=f"PCA({d} directions) + GMM, K = {k}", **common)
              for k in cfg["pca_components_images"]]
    return specs


def em_outcome(record: dict) -> dict:
    """A PCA + GMM record's EM steps and whether EM converged."""
    last = record["history"][-1]
    return {"EM steps": last["epoch"], "converged": last.get("converged")}


def stop_summary(found) -> str:
    """Why the runs stopped, counted: ``"patience: 4; time budget: 2; converged: 6"``."""
    counts: dict[str, int] = {}
    for r in found:
        reason = (r.record.get("stop_reason") or "not recorded").replace("_", " ")
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(f"{k}: {n} run{'s' if n > 1 else ''}" for k, n in sorted(counts.items(), key=lambda t: -t[1]))


def _values(values) -> str:
    """Distinct values in order of first appearance, joined with "or"."""
    out = []
    for v in values:
        v = f"{v:g}" if isinstance(v, float) else " x ".join(map(str, v)) if isinstance(v, list) else str(v)
        if v not in out:
            out.append(v)
    return " or ".join(out)


def settings_text(specs, cfg: dict) -> dict[str, str]:
    """The settings of the runs ``specs`` as the chapter's text states them, each key one value
    (or the distinct values, joined with "or"); the chapter's own settings ``cfg`` where no run
    of a kind was read.

    Returns:
        ``lr``, ``batch_size``, ``epochs``, ``patience`` and ``budget`` of the gradient-trained
        runs; ``made_hidden``, ``made_masks``, ``nade_hidden``; ``mob_grid`` (the numbers of
        components of the mixtures of Bernoullis); ``em_steps`` (PCA + GMM's most EM steps, with
        the datasets given fewer).
    """
    of_kind = {k: [s for s in specs if parse_name(s.name)[1] == k] for k in KINDS}
    gradient = [s for k in KINDS if k not in GRIDDED for s in of_kind[k]]
    train = [s.train for s in gradient] or [{**runs.TRAIN_DEFAULTS, **{k: cfg.get(k) for k in runs.TRAIN_DEFAULTS
                                                                     if k in cfg}}]
    budgets = [t.get("max_seconds") for t in train]
    out = {k: _values(t[k] for t in train) for k in ("lr", "batch_size", "epochs", "patience")}
    out["budget"] = (f"and a wall-clock budget of {_values(b for b in budgets if b)} s of training, a CPU budget"
                     if any(budgets) else "no time limit")

    def hparam(kind, key, fallback):
        return _values(s.hparams.get(key) for s in of_kind[kind]) or _values([fallback])

    out["made_hidden"] = hparam("made_masks", "hidden_sizes", cfg["made_masks"]["hidden_sizes"])
    out["made_masks"] = hparam("made_masks", "n_masks", cfg["made_masks"]["n_masks"])
    out["nade_hidden"] = hparam("nade", "hidden_size", cfg["nade"]["hidden_size"])
    grid = sorted({parse_name(s.name)[2] for s in of_kind["mob"]}) or cfg["mob_components"]
    out["mob_grid"] = ", ".join(map(str, grid))
    steps: dict[int, list] = {}
    for s in of_kind["pca_gmm"]:
        steps.setdefault(s.hparams["max_iter"], [])
        if s.dataset not in steps[s.hparams["max_iter"]]:
            steps[s.hparams["max_iter"]].append(s.dataset)
    common = max(steps, key=lambda k: len(steps[k])) if steps else cfg["pca_max_iter"]
    fewer = {k: v for k, v in steps.items() if k != common}
    out["em_steps"] = f"at most {common} EM steps" + "".join(
        f"; {', '.join(v)}: at most {k}" for k, v in sorted(fewer.items())) + (
        ", a CPU budget under which EM may stop before it converges; the table of PCA + GMM fits says whether it did"
        if fewer else "")
    return out
