"""Runs, the unit of the study: a typed spec with a key, a store of run folders, one engine.

A *run* is one model with its hyperparameters, trained on one dataset with one seed under
stated training and evaluation settings: a :class:`RunSpec`. Its canonical JSON (the fields
in :data:`KEY_FIELDS`) is hashed into its ``key``; settings that do not change a number
(labels, the sample-grid size, threads, the device) are not part of it.

Profiles (``src/densitybench/profiles/<name>.yaml``) list the runs of a study scale in one
schema for every family, may inherit another profile and override its entries, and are
validated when loaded (:func:`load_profile`). Seeds are an axis: each seed of a run entry is
a run of its own.

The run store is one folder per run, ``results/<profile>/runs/<name>-s<seed>/``:

- ``spec.json``: the spec (a folder whose spec differs from the requested one is an error,
  never reused or overwritten);
- ``train_state.pt`` (+ ``train_state.progress.json``): the resumable training state, written
  atomically at least once an epoch (see :func:`densitybench.train.fit`);
- ``model.pt``: the trained weights, always kept (those over the committed size are listed
  in the folder's ``.gitignore`` and the record says so);
- samples, figures, ``artifacts.npz`` (what a chapter analyses later: e.g. the GAN's loss trace);
- ``metrics.json``, written last: it alone marks the run done. A folder without it is a
  partial run, never tabulated.

A lock on each run folder lets one writer in at a time; a second one stops with a message
naming the holder. Chapters obtain their runs with :func:`ensure`, which loads a finished run
or trains it; :func:`train_one` is what every executor calls.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import paths

#: the spec fields whose values change a number: they make the key
KEY_FIELDS = ("model", "dataset", "hparams", "train", "evaluation", "seed")

#: training settings with their defaults (``epochs`` has none: every run states it)
TRAIN_DEFAULTS = {
    "epochs": None,
    "batch_size": 100,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "lr_step": None,
    "lr_gamma": 0.1,
    "patience": 10,
    "clip_grad_norm": None,
    "max_seconds": None,
}
#: evaluation settings that change a number. ``test_each_epoch``: the mean test NLL (the
#: validation criterion, on the test split) after every epoch in the history, as ``test_loss``:
#: a reported number that selects nothing (see the ``monitor`` of :func:`densitybench.train.fit`)
EVALUATION_DEFAULTS = {"valid_nll": True, "test_each_epoch": False}
#: evaluation settings added after runs were recorded: a spec holds one only where it differs
#: from its default, so that the keys of the runs recorded before it stay what they were
EVALUATION_KEYED_WHEN_SET = ("test_each_epoch",)
#: settings that change no number (not in the key)
OPTION_DEFAULTS = {"n_samples": 64, "n_judge_samples": 0}

RUN_FIELDS = ("chapter", "model", "dataset", "hparams", "train", "evaluation", "seeds", "anchor", "label", "note",
              "options")
PROFILE_FIELDS = ("description", "inherits", "device", "threads", "defaults", "runs", "chapters", "gathers")

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
#: seconds between the resumable checkpoints written within an epoch (one is written after every epoch)
CHECKPOINT_SECONDS = 300.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class SpecMismatch(RuntimeError):
    """A run folder holds a run with other settings than the one requested."""


class RunLocked(RuntimeError):
    """Another process is writing this run."""


class RunNotDone(LookupError):
    """The run has no ``metrics.json`` (it is missing or partial) and training was not allowed."""


# --------------------------------------------------------------------------- the spec


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run: what is trained, on what, how, with which seed (see :data:`KEY_FIELDS`).

    ``chapter``, ``label``, ``anchor`` (a key of :data:`densitybench.anchors.ANCHORS`),
    ``note`` (how the protocol differs from the published one; ``{field}`` placeholders are
    filled from the training settings and hyperparameters) and ``options`` are not in the key.
    """

    name: str
    model: str
    dataset: str
    hparams: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    seed: int = 0
    chapter: str | None = None
    label: str | None = None
    anchor: str | None = None
    note: str | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        validate_spec(self)

    def identity(self) -> dict:
        """The key fields, as stored and hashed."""
        return json.loads(_canonical({k: getattr(self, k) for k in KEY_FIELDS}))

    @property
    def key(self) -> str:
        return hashlib.sha256(_canonical(self.identity()).encode()).hexdigest()[:12]

    @property
    def folder(self) -> str:
        return f"{self.name}-s{self.seed}"

    @property
    def protocol_note(self) -> str | None:
        """``note`` with its ``{field}`` placeholders filled from the settings."""
        if not self.note:
            return None
        values = {**self.train, **self.hparams, "dataset": self.dataset, "seed": self.seed}
        if isinstance(self.hparams.get("hidden_sizes"), list):
            values["width"] = "-".join(map(str, self.hparams["hidden_sizes"]))
        return self.note.format(**values)

    def to_json(self) -> dict:
        return {"name": self.name, **self.identity(), "key": self.key, "chapter": self.chapter, "label": self.label,
                "anchor": self.anchor, "note": self.note, "options": self.options}

    @classmethod
    def from_json(cls, d: dict) -> "RunSpec":
        d = {k: v for k, v in d.items() if k != "key"}
        return cls(**d)

    def diff(self, other: "RunSpec | dict") -> list[str]:
        """The key fields where ``other`` differs, as ``field: theirs != ours`` lines."""
        theirs = other.identity() if isinstance(other, RunSpec) else {k: other.get(k) for k in KEY_FIELDS}
        ours = self.identity()
        out = []
        for k in KEY_FIELDS:
            a, b = theirs.get(k), ours.get(k)
            if isinstance(a, dict) and isinstance(b, dict):
                out += [f"{k}.{s}: {a.get(s)!r} != {b.get(s)!r}" for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)]
            elif a != b:
                out.append(f"{k}: {a!r} != {b!r}")
        return out


def make_spec(name: str, model: str, dataset: str, *, hparams=None, train=None, evaluation=None, seed: int = 0,
              **rest) -> RunSpec:
    """A :class:`RunSpec` with the training and evaluation defaults filled in."""
    tr = {**TRAIN_DEFAULTS, **(train or {})}
    ev = {**EVALUATION_DEFAULTS, **(evaluation or {})}
    ev = {k: v for k, v in ev.items() if not (k in EVALUATION_KEYED_WHEN_SET and v == EVALUATION_DEFAULTS[k])}
    opts = {**OPTION_DEFAULTS, **(rest.pop("options", None) or {})}
    return RunSpec(name=name, model=model, dataset=dataset, hparams=copy.deepcopy(dict(hparams or {})), train=tr,
                   evaluation=ev, seed=seed, options=opts, **rest)


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def validate_spec(spec: RunSpec) -> None:
    """Refuse a spec that cannot run, with a ``ValueError`` naming the field."""
    from . import anchors, models

    where = f"run {spec.name!r}"
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise ValueError(f"run name must be letters, digits and _ . + -, got {spec.name!r}")
    if not isinstance(spec.seed, int) or isinstance(spec.seed, bool) or spec.seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {spec.seed!r}")
    if spec.model not in models.MODELS:
        raise ValueError(f"{where}: model: unknown model {spec.model!r}; known: {', '.join(models.MODELS)}")
    if not isinstance(spec.dataset, str) or not spec.dataset:
        raise ValueError(f"{where}: dataset must be a dataset name, got {spec.dataset!r}")
    unknown = set(spec.train) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"{where}: train.{sorted(unknown)[0]}: unknown training setting; known: "
                         f"{', '.join(TRAIN_DEFAULTS)}")
    tr = {**TRAIN_DEFAULTS, **spec.train}
    for k in ("epochs", "batch_size", "patience"):
        if not _positive_int(tr[k]):
            raise ValueError(f"{where}: train.{k} must be a positive integer, got {tr[k]!r}")
    if tr["optimizer"] != "adam":
        raise ValueError(f"{where}: train.optimizer: only 'adam' is implemented, got {tr['optimizer']!r}")
    if not (isinstance(tr["lr"], (int, float)) and not isinstance(tr["lr"], bool) and tr["lr"] > 0
            and math.isfinite(tr["lr"])):
        raise ValueError(f"{where}: train.lr must be a positive number, got {tr['lr']!r}")
    if tr["lr_step"] is not None and not _positive_int(tr["lr_step"]):
        raise ValueError(f"{where}: train.lr_step must be a positive integer or null, got {tr['lr_step']!r}")
    for k in ("weight_decay", "lr_gamma"):
        if not isinstance(tr[k], (int, float)) or isinstance(tr[k], bool) or tr[k] < 0:
            raise ValueError(f"{where}: train.{k} must be a non-negative number, got {tr[k]!r}")
    for k in ("clip_grad_norm", "max_seconds"):
        if tr[k] is not None and (not isinstance(tr[k], (int, float)) or isinstance(tr[k], bool) or tr[k] <= 0):
            raise ValueError(f"{where}: train.{k} must be a positive number or null, got {tr[k]!r}")
    unknown = set(spec.evaluation) - set(EVALUATION_DEFAULTS)
    if unknown:
        raise ValueError(f"{where}: evaluation.{sorted(unknown)[0]}: unknown evaluation setting; known: "
                         f"{', '.join(EVALUATION_DEFAULTS)}")
    for k, v in spec.evaluation.items():
        if not isinstance(v, bool):
            raise ValueError(f"{where}: evaluation.{k} must be true or false, got {v!r}")
    unknown = set(spec.options) - set(OPTION_DEFAULTS)
    if unknown:
        raise ValueError(f"{where}: options.{sorted(unknown)[0]}: unknown option; known: {', '.join(OPTION_DEFAULTS)}")
    opts = {**OPTION_DEFAULTS, **spec.options}
    if not _positive_int(opts["n_samples"]):
        raise ValueError(f"{where}: options.n_samples must be a positive integer, got {opts['n_samples']!r}")
    if spec.anchor is not None and spec.anchor not in anchors.ANCHORS:
        raise ValueError(f"{where}: anchor: unknown published number {spec.anchor!r}")
    if not isinstance(spec.hparams, dict):
        raise ValueError(f"{where}: hparams must be a mapping, got {spec.hparams!r}")
    try:
        models.validate_hparams(spec.model, None, spec.hparams)
    except ValueError as err:
        raise ValueError(f"{where}: hparams: {err}") from None
    try:
        _canonical({k: getattr(spec, k) for k in KEY_FIELDS})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: the spec is not plain JSON ({err})") from None


# --------------------------------------------------------------------------- profiles


@dataclass
class Profile:
    """A validated, inheritance-resolved profile: its runs (entries, seeds not yet expanded)
    and its chapters' own settings."""

    name: str
    description: str
    device: str
    threads: int | None
    runs: dict
    chapters: dict
    chain: list = field(default_factory=list)
    #: profiles whose finished runs this profile's book also shows (trained by those profiles, in their stores)
    gathers: list = field(default_factory=list)

    def specs(self, chapter: str | None = None, names=None) -> list[RunSpec]:
        """Every run of the profile (one per seed), optionally of one chapter or matching names."""
        import fnmatch

        out = []
        for name, entry in self.runs.items():
            if chapter is not None and entry.get("chapter") != chapter:
                continue
            for seed in entry.get("seeds", [0]):
                spec = make_spec(name, entry["model"], entry["dataset"], hparams=entry.get("hparams"),
                                 train=entry.get("train"), evaluation=entry.get("evaluation"), seed=seed,
                                 chapter=entry.get("chapter"), label=entry.get("label"), anchor=entry.get("anchor"),
                                 note=entry.get("note"), options=entry.get("options"))
                if names and not any(fnmatch.fnmatchcase(spec.folder, p) or fnmatch.fnmatchcase(name, p)
                                     for p in names):
                    continue
                out.append(spec)
        return out

    def spec(self, name: str, seed: int | None = None) -> RunSpec:
        """The run ``name`` (its first seed unless ``seed`` is given)."""
        if name not in self.runs:
            raise KeyError(f"profile {self.name!r} has no run {name!r}; its runs: {', '.join(self.runs)}")
        specs = [s for s in self.specs(names=[name]) if s.name == name]
        if seed is None:
            return specs[0]
        for s in specs:
            if s.seed == seed:
                return s
        raise KeyError(f"run {name!r} of profile {self.name!r} has no seed {seed}")

    def chapter(self, name: str) -> dict:
        if name not in self.chapters:
            raise KeyError(f"profile {self.name!r} has no chapter {name!r}")
        return copy.deepcopy(self.chapters[name])


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _merge(base, over):
    """``over`` on top of ``base``: mappings merge key by key, a null run entry removes it, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base and isinstance(v, dict) else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _read_profile(name: str) -> dict:
    import yaml

    f = PROFILES_DIR / f"{name}.yaml"
    if not f.is_file():
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(profile_names())}")
    raw = yaml.safe_load(f.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"profile {name!r} ({f.name}): expected a mapping at the top")
    unknown = set(raw) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"profile {name!r}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(PROFILE_FIELDS)}")
    for k, v in (raw.get("runs") or {}).items():
        if v is None:
            continue
        if not isinstance(v, dict):
            raise ValueError(f"profile {name!r}: run {k!r} must be a mapping")
        unknown = set(v) - set(RUN_FIELDS)
        if unknown:
            raise ValueError(f"profile {name!r}: run {k!r}: unknown key {sorted(unknown)[0]!r}; known: "
                             f"{', '.join(RUN_FIELDS)}")
    return raw


def load_profile(name: str) -> Profile:
    """Read, resolve (``inherits``) and validate profile ``name``.

    Raises:
        ValueError: an unknown profile, an unknown or missing key (named), an invalid run.
    """
    chain, raws, seen = [], [], set()
    cur = name
    while cur is not None:
        if cur in seen:
            raise ValueError(f"profile {name!r}: inheritance cycle through {cur!r}")
        seen.add(cur)
        raw = _read_profile(cur)
        chain.append(cur)
        raws.append(raw)
        cur = raw.get("inherits")
    merged: dict = {}
    for raw in reversed(raws):
        merged = _merge(merged, {k: v for k, v in raw.items() if k != "inherits"})
    defaults = merged.get("defaults") or {}
    unknown = set(defaults) - (set(RUN_FIELDS) - {"chapter", "model", "dataset", "label", "note", "anchor"})
    if unknown:
        raise ValueError(f"profile {name!r}: defaults: unknown key {sorted(unknown)[0]!r}")
    runs = {}
    for run, entry in (merged.get("runs") or {}).items():
        if entry is None:  # removed by an inheriting profile
            continue
        entry = _merge(defaults, entry)
        for k in ("chapter", "model", "dataset"):
            if not entry.get(k):
                raise ValueError(f"profile {name!r}: run {run!r}: missing key {k!r}")
        if not (entry.get("train") or {}).get("epochs"):
            raise ValueError(f"profile {name!r}: run {run!r}: missing key 'train.epochs'")
        seeds = entry.setdefault("seeds", [0])
        if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"profile {name!r}: run {run!r}: seeds must be a non-empty list of distinct integers")
        runs[run] = entry
    prof = Profile(name=name, description=merged.get("description", ""), device=merged.get("device", "auto"),
                   threads=merged.get("threads"), runs=runs, chapters=merged.get("chapters") or {}, chain=chain,
                   gathers=list(merged.get("gathers") or []))
    for g in prof.gathers:
        if g not in profile_names():
            raise ValueError(f"profile {name!r}: gathers: unknown profile {g!r}")
    prof.specs()  # validates every run (names the field of the first bad one)
    return prof


# --------------------------------------------------------------------------- the store


def store_root(profile: str, results_root=None) -> Path:
    """``results/<profile>/runs``."""
    return paths.results_dir(profile, results_root) / "runs"


def run_dir(spec: RunSpec, root) -> Path:
    return Path(root) / spec.folder


def stored_spec(folder) -> dict | None:
    f = Path(folder) / "spec.json"
    return json.loads(f.read_text()) if f.is_file() else None


def check_folder(spec: RunSpec, folder) -> None:
    """Raise :class:`SpecMismatch` when ``folder`` holds a run with other key settings."""
    have = stored_spec(folder)
    if have is not None and have.get("key") != spec.key:
        lines = spec.diff(have)
        raise SpecMismatch(
            f"{paths.relative_to_repo(folder)} holds run {have.get('name')!r} (key {have.get('key')}), not the "
            f"requested {spec.name!r} (key {spec.key}); they differ in " + ("; ".join(lines) or "their key") +
            " (stored != requested). Move that folder away or give the run another name; it is never overwritten.")


def status(spec: RunSpec, root) -> dict:
    """``{"status": "done" | "partial" | "missing", "epoch": k, "folder": ...}`` of a run."""
    folder = run_dir(spec, root)
    out = {"folder": str(folder), "status": "missing", "epoch": None}
    check_folder(spec, folder)
    if (folder / "metrics.json").is_file():
        out["status"] = "done"
        try:
            out["epoch"] = json.loads((folder / "metrics.json").read_text()).get("epochs")
        except json.JSONDecodeError:
            pass
    elif (folder / "train_state.progress.json").is_file():
        out["status"] = "partial"
        out["epoch"] = json.loads((folder / "train_state.progress.json").read_text()).get("epoch")
    elif (folder / "spec.json").is_file():
        out["status"] = "partial"
        out["epoch"] = 0
    return out


#: the fields of a record that describe a run rather than result from it: not in the key, so a
#: profile may correct them after training (:func:`annotate`)
ANNOTATIONS = ("label", "anchor", "protocol_note")


def annotate(spec: RunSpec, root, *, dry_run: bool = False) -> list[str]:
    """Bring a finished run's label, published anchor and protocol note (:data:`ANNOTATIONS`)
    up to date with ``spec`` (its profile entry now), without touching a number: those fields
    are not in the key. The record keeps a note of each change (``annotations_changed``: when,
    which fields).

    Returns:
        the fields that changed (empty when the record already agrees or the run is not finished).
    Raises:
        SpecMismatch: the folder holds a run with other key settings.
    """
    from . import anchors, atomic

    folder = run_dir(spec, root)
    check_folder(spec, folder)
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return []
    rec = json.loads(metrics.read_text())
    config = rec.get("config") or {}
    stored = {"label": rec.get("label"), "anchor": (rec.get("anchor") or {}).get("key"),
              "protocol_note": rec.get("protocol_note")}
    wanted = {"label": spec.label or spec.name, "anchor": spec.anchor, "protocol_note": spec.protocol_note}
    changed = [k for k in ANNOTATIONS
               if stored[k] != wanted[k] or config.get(k, wanted[k]) != wanted[k]
               or (k == "anchor" and rec.get("anchor") != anchors.get(spec.anchor))]
    if changed and not dry_run:
        rec.update(label=wanted["label"], anchor=anchors.get(spec.anchor), protocol_note=wanted["protocol_note"])
        if isinstance(rec.get("config"), dict):
            rec["config"].update(wanted)
        if isinstance(rec.get("spec"), dict):
            rec["spec"] = spec.to_json()
        rec.setdefault("annotations_changed", []).append(
            {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fields": changed})
        atomic.write_json(folder / "spec.json", spec.to_json())
        atomic.write_json(metrics, rec)
    return changed


@contextmanager
def lock(folder, wait: bool = False):
    """Hold the run folder's lock (``.lock``, released by the OS when the holder dies).

    Raises:
        RunLocked: another live process holds it (``wait=False``); the message names it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / ".lock", "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            f.seek(0)
            holder = f.read().strip() or "an unknown process"
            raise RunLocked(f"run {folder.name} is being written by {holder}; wait for it to finish "
                            f"(nothing was written by this process)") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {platform.node()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}\n")
        f.flush()
        yield
    finally:
        f.close()


# --------------------------------------------------------------------------- training one run


def train_one(spec, root, *, device: str = "auto", data_dir=None, threads: int | None = None,
              progress: bool = False, wait: bool = False, deadline: float | None = None) -> dict:
    """Train (resuming from the run's checkpoint when there is one) and record the run ``spec``
    (a :class:`RunSpec` or its :meth:`~RunSpec.to_json`) in the store at ``root``.

    Idempotent: a finished run returns at once with status ``"skipped"``. Every executor calls this.

    ``deadline`` (an absolute ``time.time()``, e.g. the end of a window of machine time) stops
    training there with a resumable checkpoint and records nothing (status ``"interrupted"``); a
    run not begun by then is left untouched (status ``"not_started"``). It is not part of the
    spec: the run's own stop reasons and budget are unchanged (see :func:`densitybench.train.fit`).

    Returns:
        ``{"name", "seed", "key", "folder", "status": "done" | "skipped" | "interrupted" |
        "not_started", "seconds"}``; a run that continued from a checkpoint adds ``"resumed_from"``
        (``{"epoch", "step"}``), an interrupted one ``"epoch"`` and ``"step"`` reached.
    """
    import torch

    from . import data as data_mod, models, train

    if isinstance(spec, dict):
        spec = RunSpec.from_json(spec)
    if threads:
        torch.set_num_threads(int(threads))
    folder = run_dir(spec, root)
    t0 = time.perf_counter()
    result = {"name": spec.name, "seed": spec.seed, "key": spec.key, "folder": str(folder)}
    check_folder(spec, folder)
    if (folder / "metrics.json").is_file():
        return {**result, "status": "skipped", "seconds": 0.0}
    if deadline is not None and time.time() >= deadline:
        return {**result, "status": "not_started", "seconds": 0.0}
    with lock(folder, wait=wait):
        check_folder(spec, folder)
        if (folder / "metrics.json").is_file():  # finished by the holder we waited for
            return {**result, "status": "skipped", "seconds": 0.0}
        from . import atomic

        atomic.write_json(folder / "spec.json", spec.to_json())
        ds = data_mod.load(spec.dataset, data_dir)
        model = create_model(spec, ds)
        tr = {**TRAIN_DEFAULTS, **spec.train}
        ev = {**EVALUATION_DEFAULTS, **spec.evaluation}
        continuous = model.support == "continuous"
        dev = train.resolve_device(device)
        history = train.fit(
            model, ds.split("train"), ds.split("valid"), epochs=tr["epochs"], batch_size=tr["batch_size"],
            lr=tr["lr"], weight_decay=tr["weight_decay"], lr_step=tr["lr_step"], lr_gamma=tr["lr_gamma"],
            patience=tr["patience"], clip_grad_norm=tr["clip_grad_norm"], max_seconds=tr["max_seconds"],
            dequantize=ds.n_levels if continuous else None, seed=spec.seed, device=dev, progress=progress,
            checkpoint=folder / "train_state.pt", checkpoint_seconds=CHECKPOINT_SECONDS, name=spec.folder,
            deadline=deadline, monitor={"test": ds.split("test")} if ev["test_each_epoch"] else None,
        )
        if history.resumed_from is not None:
            result["resumed_from"] = history.resumed_from
        if history.interrupted:  # resumable from its checkpoint; nothing is recorded
            progress_file = train.progress_path(folder / "train_state.pt")
            reached = json.loads(progress_file.read_text()) if progress_file.is_file() else {}
            return {**result, "status": "interrupted", "epoch": reached.get("epoch", 0),
                    "step": reached.get("step", 0), "seconds": time.perf_counter() - t0}
        record_spec_run(model, ds, history, folder, spec)
    return {**result, "status": "done", "seconds": time.perf_counter() - t0}


def record_spec_run(model, data, history, run_dir, spec) -> dict:
    """The record of a run of the store: its model's own final step (:meth:`finalize`, e.g. a
    GAN's Parzen width chosen on validation), its extra test numbers and artifacts, then
    :func:`densitybench.evaluate.record_run` with the spec's settings."""
    from .evaluate import model_input, record_run

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


def create_model(spec: RunSpec, ds):
    """The run's model with its initial weights drawn from the run's seed."""
    import inspect

    from . import models

    hparams = dict(spec.hparams)
    # a model's own randomness (MADE's connectivity, a mixture's initialisation) follows the run's seed
    if "seed" in inspect.signature(models.MODELS[spec.model].__init__).parameters:
        hparams.setdefault("seed", spec.seed)
    return models.create(spec.model, ds.image_shape, init_seed=spec.seed, **hparams)


# --------------------------------------------------------------------------- reading runs


class Run:
    """A finished run folder: its spec, record, history, weights and artifacts."""

    def __init__(self, folder):
        self.folder = Path(folder)
        if not (self.folder / "metrics.json").is_file():
            raise RunNotDone(f"{paths.relative_to_repo(self.folder)} has no metrics.json: the run is not finished")
        self.record = json.loads((self.folder / "metrics.json").read_text())
        self.spec = RunSpec.from_json(stored_spec(self.folder)) if stored_spec(self.folder) else None

    def __repr__(self):
        return f"Run({paths.relative_to_repo(self.folder)})"

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.record["run"]

    @property
    def history(self) -> list[dict]:
        return self.record["history"]

    def path(self, name: str) -> Path:
        return self.folder / name

    def model(self):
        """The trained model (``model.pt``)."""
        from . import models

        f = self.folder / "model.pt"
        if not f.is_file():
            raise FileNotFoundError(f"{paths.relative_to_repo(f)} is absent: the checkpoint of this run was not "
                                    f"committed ({self.record.get('checkpoint')}); retrain the run to rebuild it")
        return models.load(f)

    def artifacts(self) -> dict:
        """What the run saved for later analysis (``artifacts.npz``)."""
        import numpy as np

        f = self.folder / "artifacts.npz"
        if not f.is_file():
            return {}
        with np.load(f) as z:
            return {k: z[k] for k in z.files}


def ensure(spec: RunSpec, root, *, device: str = "auto", data_dir=None, progress: bool = False,
           train_missing: bool = True, threads: int | None = None) -> Run:
    """The finished run ``spec`` from the store at ``root``, trained (or resumed) first when it
    is missing or partial, so that a chapter executes standalone.

    Raises:
        SpecMismatch: the folder holds a run with other settings.
        RunNotDone: the run is not finished and ``train_missing`` is False.
    """
    folder = run_dir(spec, root)
    check_folder(spec, folder)
    if not (folder / "metrics.json").is_file():
        if not train_missing:
            raise RunNotDone(f"run {spec.folder} is not finished in {paths.relative_to_repo(root)}")
        train_one(spec, root, device=device, data_dir=data_dir, progress=progress, threads=threads, wait=True)
    return Run(folder)


def ensure_all(specs, root, **kwargs) -> dict[str, Run]:
    """:func:`ensure` of every spec, keyed by run name (the chapters' runs of one seed)."""
    return {spec.name: ensure(spec, root, **kwargs) for spec in specs}


def plan(profile: str, results_root=None, names=None, gathered: bool = True) -> list[dict]:
    """Every run of ``profile`` with its key, status, epoch reached and folder; with ``gathered``,
    also the runs of the profiles it gathers (each in its own store)."""
    prof = load_profile(profile)
    rows = _plan_rows(profile, prof, results_root, names)
    if gathered:
        for g in prof.gathers:
            rows += _plan_rows(g, load_profile(g), results_root, names)
    return rows


def _plan_rows(profile, prof, results_root, names) -> list[dict]:
    root = store_root(profile, results_root)
    rows = []
    for spec in prof.specs(names=names):
        try:
            st = status(spec, root)
        except SpecMismatch as err:
            st = {"status": "mismatch", "epoch": None, "folder": str(run_dir(spec, root)), "error": str(err)}
        rows.append({"run": spec.folder, "profile": profile, "name": spec.name, "seed": spec.seed, "chapter": spec.chapter,
                     "model": spec.model, "dataset": spec.dataset, "key": spec.key, **st,
                     "folder": paths.relative_to_repo(st["folder"])})
    return rows
