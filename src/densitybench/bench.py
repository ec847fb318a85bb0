"""Throughput of every model family at a profile's settings: images per second, training and evaluation.

For every distinct configuration of a profile's runs (model, dataset, hyperparameters and
batch size; one seed), :func:`run` builds the model on the dataset's image shape and times

- training: ``model.training_step`` then ``model.after_step`` on minibatches drawn as
  :func:`densitybench.train.fit` draws them (a random permutation of the ``N`` training
  examples split into batches, ``x[idx]``, dequantized afresh for a continuous model of
  K-level data, moved to the device), for about ``seconds``; the models fitted by EM
  (``trained_by_gradient = False``) have no training step and are fitted once, untimed, on at
  most :data:`EM_FIT_EXAMPLES` examples so that their evaluation can be timed;
- evaluation: ``log_prob`` under ``torch.no_grad()`` in eval mode, in the batches of the
  evaluation code (``per_example_nll``'s, 500), on the test split prepared as the evaluation
  prepares it, for about ``seconds``.

Each phase is warmed up first; CUDA is synchronised before every clock reading. A phase whose
first step already takes longer than ``seconds`` is measured by that one step and marked
``single_step``. The data are the dataset's own when it loads (so that layout effects show),
else random tensors of its shape and support.

The module uses only interfaces that every version of the library has had (``models.create``,
``model.training_step``, ``model.log_prob``, ``model.configure_optimizers``,
``runs.load_profile``, ``data.load``), newer ones only where present, and imports the library
by its absolute name: ``scripts/bench.py`` loads this file into an older source tree to
measure that tree with the same benchmark. :func:`compare` sets two such reports side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fnmatch
import inspect
import json
import math
import numbers
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

import densitybench
from densitybench import data as data_mod
from densitybench import models, runs

#: the evaluation batch when the library's evaluation code does not state one
EVAL_BATCH_SIZE = 500
#: training examples of a synthetic dataset (a dataset that is not on disk)
SYNTHETIC_TRAIN = 10_000
#: evaluation examples of a synthetic dataset
SYNTHETIC_EVAL = 2_000
#: a model fitted by EM is fitted on at most this many training examples before its evaluation is timed
EM_FIT_EXAMPLES = 5_000
#: and with at most this many EM iterations (its evaluation's cost does not depend on them)
EM_FIT_ITERATIONS = 3
#: the Parzen kernel width set on a GAN before timing its evaluation (its cost does not depend on it)
PARZEN_SIGMA = 0.2


# --------------------------------------------------------------------------- configurations


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def config_key(row: dict) -> str:
    """The identity of a configuration: model, dataset, hyperparameters and batch size."""
    return _canonical([row["model"], row["dataset"], row["hparams"], row["batch_size"]])


def configurations(profile: str, names=None) -> list[dict]:
    """The distinct configurations of ``profile``'s runs (first seed of each, in profile order).

    Args:
        profile: a profile name of the imported library.
        names: globs; only runs whose name (or ``<name>-s<seed>`` folder) matches one.
    Returns:
        ``[{"name", "runs", "model", "dataset", "hparams", "batch_size", "lr", "weight_decay",
        "clip_grad_norm"}]``: ``name`` is the first run with this configuration, ``runs`` all of them.
    """
    prof = runs.load_profile(profile)
    out: dict[str, dict] = {}
    for spec in prof.specs():
        if names and not any(fnmatch.fnmatchcase(spec.name, p) or fnmatch.fnmatchcase(f"{spec.name}-s{spec.seed}", p)
                             for p in names):
            continue
        train = {**getattr(runs, "TRAIN_DEFAULTS", {}), **(spec.train or {})}
        row = {"name": spec.name, "runs": [spec.name], "model": spec.model, "dataset": spec.dataset,
               "hparams": json.loads(_canonical(spec.hparams or {})), "batch_size": int(train.get("batch_size", 100)),
               "lr": float(train.get("lr", 1e-3)), "weight_decay": float(train.get("weight_decay") or 0.0),
               "clip_grad_norm": train.get("clip_grad_norm")}
        key = config_key(row)
        if key in out:
            if spec.name not in out[key]["runs"]:
                out[key]["runs"].append(spec.name)
        else:
            out[key] = row
    return list(out.values())


# --------------------------------------------------------------------------- data


class BenchData:
    """The tensors a benchmark draws from: training and evaluation levels ``(N, C, H, W)``
    (float32, CPU), with the dataset's ``n_levels`` and ``image_shape`` and where they came
    from (``"data"`` or ``"synthetic"``)."""

    def __init__(self, train, evaluation, n_levels, image_shape, source):
        self.train, self.evaluation = train, evaluation
        self.n_levels, self.image_shape, self.source = int(n_levels), tuple(int(s) for s in image_shape), source


def _dataset_description(name: str):
    """``(kind, n_levels, image_shape)`` of a dataset from the library's registry, without its files."""
    spec = (getattr(data_mod, "REGISTRY", None) or {}).get(name)
    if spec is None:
        return None
    return spec.kind, spec.n_levels, tuple(spec.image_shape)


def synthetic(kind: str, n_levels: int, image_shape, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random examples in a dataset's support: ``{0, 1}`` (binary) or the integers
    ``0 .. n_levels - 1`` (levels), float32, shape ``(n, *image_shape)``."""
    levels = 2 if kind == "binary" else int(n_levels)
    return torch.randint(0, levels, (n, *image_shape), generator=generator).float()


def load_data(dataset: str, data_dir=None, seed: int = 0) -> BenchData:
    """The dataset's training and test splits when it loads, else random tensors of its shape
    and support (from the registry).

    Raises:
        ValueError: the dataset neither loads nor is described by the registry.
    """
    try:
        ds = data_mod.load(dataset, data_dir)
        return BenchData(ds.split("train"), ds.split("test"), ds.n_levels, ds.image_shape, "data")
    except Exception as err:  # noqa: BLE001 - absent or unreadable: fall back on its description
        reason = err
    desc = _dataset_description(dataset)
    if desc is None:
        raise ValueError(f"dataset {dataset!r} does not load ({reason}) and its shape is unknown")
    kind, n_levels, shape = desc
    g = torch.Generator().manual_seed(seed)
    return BenchData(synthetic(kind, n_levels, shape, SYNTHETIC_TRAIN, g),
                     synthetic(kind, n_levels, shape, SYNTHETIC_EVAL, g), n_levels, shape, "synthetic")


def _dequantize(x: torch.Tensor, n_levels: int, generator: torch.Generator) -> torch.Tensor:
    deq = getattr(data_mod, "dequantize", None)
    if deq is not None:
        return deq(x, n_levels, generator)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    return (x.float() + u) / n_levels


# --------------------------------------------------------------------------- the model


def build_model(name: str, image_shape, hparams: dict, seed: int = 0):
    """The model as a run builds it: its own randomness (``seed`` hyperparameter) and its
    initial weights (``init_seed``, where ``create`` takes it) from ``seed``."""
    hp = dict(hparams)
    cls = getattr(models, "MODELS", {}).get(name)
    if cls is not None and "seed" in inspect.signature(cls.__init__).parameters:
        hp.setdefault("seed", seed)
    if "init_seed" in inspect.signature(models.create).parameters:
        return models.create(name, image_shape, init_seed=seed, **hp)
    torch.manual_seed(seed)
    return models.create(name, image_shape, **hp)


def n_parameters(model) -> int:
    """The model's own count where it has one (a model fitted by EM counts its fitted buffers),
    else the number of its parameters."""
    own = getattr(model, "n_params", None)
    try:
        own = own() if callable(own) else own  # a method in some models, a property in others
    except Exception:  # noqa: BLE001 - e.g. not fitted yet: count the parameters
        own = None
    if isinstance(own, numbers.Integral) and not isinstance(own, bool):
        return int(own)
    return int(sum(p.numel() for p in model.parameters()))


def _eval_batch_size(dev: torch.device | None = None) -> int:
    """The evaluation code's batch: the library's ``train.eval_batch_size(device)`` where it has
    one, else ``per_example_nll``'s default, else :data:`EVAL_BATCH_SIZE`."""
    try:
        from densitybench import train as train_mod

        if hasattr(train_mod, "eval_batch_size"):
            return int(train_mod.eval_batch_size(dev or torch.device("cpu")))
        from densitybench import evaluate

        default = inspect.signature(evaluate.per_example_nll).parameters["batch_size"].default
        return int(default) if isinstance(default, int) else EVAL_BATCH_SIZE
    except Exception:  # noqa: BLE001 - older or other evaluation code: the usual batch
        return EVAL_BATCH_SIZE


def prepare_for_evaluation(model, bench_data: BenchData, seconds: float) -> dict:
    """Make ``log_prob`` callable: fit a model fitted by EM (untimed, on at most
    :data:`EM_FIT_EXAMPLES` examples and :data:`EM_FIT_ITERATIONS` iterations), give a GAN its
    Parzen width. Returns notes for the report."""
    notes = {}
    if not getattr(model, "trained_by_gradient", True):
        pick = torch.randperm(len(bench_data.train), generator=torch.Generator().manual_seed(0))[:EM_FIT_EXAMPLES]
        x = bench_data.train[pick]  # a seeded random draw (a split may be sorted by class)
        v = bench_data.evaluation[: max(1, EM_FIT_EXAMPLES // 5)]
        if model.support == "continuous":
            g = torch.Generator().manual_seed(0)
            x, v = _dequantize(x, bench_data.n_levels, g), _dequantize(v, bench_data.n_levels, g)
        if hasattr(model, "max_iter"):
            model.max_iter = min(int(model.max_iter), EM_FIT_ITERATIONS)
        kwargs = {"progress": False}
        if "max_seconds" in inspect.signature(model.fit_closed_form).parameters:
            kwargs["max_seconds"] = max(seconds, 1.0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # a deliberately short fit: its convergence warnings say nothing here
            warnings.simplefilter("ignore")
            model.fit_closed_form(x, v, **kwargs)  # CPU tensors, as the training loop passes them
        notes["fit_seconds"] = time.perf_counter() - t0
        notes["fit_examples"] = int(x.shape[0])
    sigma = getattr(model, "parzen_sigma", None)
    if isinstance(sigma, torch.Tensor) and sigma.numel() == 1 and torch.isnan(sigma).item():
        sigma.fill_(PARZEN_SIGMA)
        notes["parzen_sigma"] = PARZEN_SIGMA
    return notes


# --------------------------------------------------------------------------- memory and clocks


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """Peak memory over a phase, in MiB: on CUDA ``torch.cuda.max_memory_allocated``; on the
    CPU (best effort, Linux) the rise of the resident set's high-water mark above the
    resident set at the start, after resetting the mark (``/proc/self/clear_refs``); None
    where neither can be read."""

    def __init__(self, dev: torch.device):
        self.dev = dev

    def __enter__(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.start = torch.cuda.memory_allocated(self.dev) / 2**20
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
                self.reset = True
            except OSError:
                self.reset = False
            self.start = _proc_status_mb("VmRSS")
        self.peak_mb = None
        return self

    def __exit__(self, *exc):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            self.peak_mb = torch.cuda.max_memory_allocated(self.dev) / 2**20
        elif self.start is not None and self.reset:
            hwm = _proc_status_mb("VmHWM")
            self.peak_mb = None if hwm is None else max(0.0, hwm - self.start)
        return False


# --------------------------------------------------------------------------- the timings


def _timed_loop(step, dev: torch.device, seconds: float) -> dict:
    """Run ``step() -> images`` once (warm-up, timed); if that took longer than ``seconds``,
    report it alone (``single_step``); else warm up for a tenth of ``seconds`` more, then
    run steps until ``seconds`` have passed. CUDA is synchronised before each clock reading."""
    _sync(dev)
    t0 = time.perf_counter()
    n = step()
    _sync(dev)
    first = time.perf_counter() - t0
    if first >= seconds:
        return {"images_per_s": n / first, "step_s": first, "steps": 1, "images": n, "seconds": first,
                "single_step": True}
    warm_until = time.perf_counter() + 0.1 * seconds
    while time.perf_counter() < warm_until:
        step()
        _sync(dev)
    steps = images = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds or steps == 0:
        images += step()
        steps += 1
        _sync(dev)
        elapsed = time.perf_counter() - t0
    return {"images_per_s": images / elapsed, "step_s": elapsed / steps, "steps": steps, "images": images,
            "seconds": elapsed, "single_step": False}


def _trusted(model):
    """``model.trusted_inputs()`` where the library has it (the per-batch value check skipped
    after one check of the whole split, as its training loop and evaluation do), else nothing."""
    trusted = getattr(model, "trusted_inputs", None)
    return trusted() if trusted is not None else contextlib.nullcontext()


def time_training(model, bench_data: BenchData, cfg: dict, dev: torch.device, seconds: float) -> dict:
    """Images per second of ``training_step`` + ``after_step`` at the configuration's batch size.

    Where the library's training loop checks the split once and keeps it on the device (it has
    ``trusted_inputs``), so does this: the split is checked and moved before the clock starts,
    the steps skip the per-batch value check and the losses are summed on the device, checked
    for finiteness once at the end; otherwise each batch is moved and each loss read, as that
    library's loop did."""
    new_loop = hasattr(model, "trusted_inputs")
    x_all = bench_data.train
    continuous = model.support == "continuous"
    if new_loop and not continuous:
        x_all = model.check_input(x_all).to(dev)
    g = torch.Generator().manual_seed(0)
    optimizers = model.configure_optimizers(cfg["lr"], cfg["weight_decay"])
    batches: list = []
    total = torch.zeros((), dtype=torch.float64, device=dev)
    model.train()

    def step() -> int:
        nonlocal total
        if not batches:  # a new epoch: its shuffling, as the training loop draws it
            perm = torch.randperm(x_all.shape[0], generator=g).to(x_all.device)
            batches.extend(reversed(perm.split(cfg["batch_size"])))
        idx = batches.pop()
        x = x_all[idx]
        if continuous:
            x = _dequantize(x, bench_data.n_levels, g)
        with _trusted(model) if new_loop else contextlib.nullcontext():
            loss = model.training_step(x.to(dev), optimizers, cfg["clip_grad_norm"])
        if new_loop:
            total = total + torch.as_tensor(loss).detach().to(dev, torch.float64)
        elif not math.isfinite(float(loss)):
            raise FloatingPointError(f"the training loss is {loss}")
        after = getattr(model, "after_step", None)
        if after is not None:
            after()
        return int(idx.shape[0])

    with PeakMemory(dev) as mem:
        out = _timed_loop(step, dev, seconds)
    if not math.isfinite(float(total)):
        raise FloatingPointError(f"a training loss was not finite (sum {float(total)})")
    return {**out, "peak_mem_mb": mem.peak_mb}


def time_evaluation(model, bench_data: BenchData, dev: torch.device, seconds: float,
                    batch_size: int | None = None) -> dict:
    """Images per second of ``log_prob`` under ``torch.no_grad()`` in eval mode, batch by batch
    through the test split (dequantized once for a continuous model), as the evaluation runs."""
    batch_size = batch_size or _eval_batch_size(dev)
    x_all = bench_data.evaluation
    if model.support == "continuous":
        x_all = _dequantize(x_all, bench_data.n_levels, torch.Generator().manual_seed(1234))
    new_eval = hasattr(model, "trusted_inputs")
    if new_eval:  # checked once, whole, and moved once, as the evaluation does
        x_all = model.check_input(x_all).to(dev)
    chunks = x_all.split(batch_size)
    pos = [0]
    model.eval()

    @torch.no_grad()
    def step() -> int:
        b = chunks[pos[0] % len(chunks)]
        pos[0] += 1
        with _trusted(model) if new_eval else contextlib.nullcontext():
            nll = -model.log_prob(b.to(dev)).double().cpu()
        if not bool(torch.isfinite(nll).all()):
            raise FloatingPointError("log_prob is not finite")
        return int(b.shape[0])

    with PeakMemory(dev) as mem:
        out = _timed_loop(step, dev, seconds)
    return {**out, "batch_size": batch_size, "peak_mem_mb": mem.peak_mb}


def bench_config(cfg: dict, bench_data: BenchData, dev: torch.device, seconds: float,
                 max_params: int | None = None) -> dict:
    """One row of the report: the configuration, its parameter count and both timings
    (``train`` is None for a model fitted by EM; ``skipped`` says why a row was not timed)."""
    row = {**cfg, "image_shape": list(bench_data.image_shape), "data": bench_data.source,
           "n_params": None, "train": None, "eval": None, "notes": {}}
    torch.manual_seed(0)
    model = build_model(cfg["model"], bench_data.image_shape, cfg["hparams"])
    row["n_params"] = n_parameters(model)
    if max_params is not None and row["n_params"] > max_params:
        row["skipped"] = f"{row['n_params']:,} parameters > --max-params {max_params:,}"
        return row
    model.to(dev)
    if getattr(model, "trained_by_gradient", True):
        row["train"] = time_training(model, bench_data, cfg, dev, seconds)
    else:
        row["notes"]["train"] = "fitted by EM: no training step"
    if getattr(model, "likelihood", "exact") == "none":
        row["notes"]["eval"] = "no likelihood"
    else:
        row["notes"].update(prepare_for_evaluation(model, bench_data, seconds))
        row["n_params"] = n_parameters(model)  # a model fitted by EM has its parameters now
        row["eval"] = time_evaluation(model, bench_data, dev, seconds)
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return row


# --------------------------------------------------------------------------- the report


def _library_name() -> str:
    """The measured library as ``<checkout>/src/densitybench`` named by its commit, never by a
    path on this machine (a report is committed and shared)."""
    c = commit_of_library()
    return f"densitybench at {(c.get('commit') or 'an unknown commit')[:10]}" + (" (modified)" if c.get("dirty") else "")


def commit_of_library() -> dict:
    """The commit of the imported library's checkout (``densitybench.provenance`` where it
    exists, else ``git`` in the package's folder); None outside a git checkout."""
    try:
        from densitybench import provenance

        return provenance.git_commit()
    except Exception:  # noqa: BLE001 - an older library: ask git directly
        pass
    where = Path(densitybench.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=30,
                              check=False)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=where, capture_output=True,
                               text=True, timeout=30, check=False).stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def describe_device(dev: torch.device) -> str:
    """The library's own description of the device (``provenance`` now, ``evaluate`` in older trees)."""
    try:
        from densitybench.provenance import describe_device as describe
    except ImportError:  # a tree from before the provenance module
        from densitybench.evaluate import describe_device as describe
    return describe(dev)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run(profile: str = "mnist", names=None, device: str | None = "auto", threads: int | None = None,
        seconds: float = 5.0, max_params: int | None = None, data_dir=None, report=None) -> dict:
    """Benchmark every distinct configuration of ``profile`` (see :func:`configurations`).

    Args:
        profile, names: the profile and the run globs.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        threads: torch's CPU threads (torch's choice when None).
        seconds: the length of each timed phase.
        max_params: configurations with more parameters are built but not timed.
        data_dir: the data directory (the library's default when None).
        report: called with each row as it is measured (e.g. to print it).
    Returns:
        ``{"profile", "device", "device_type", "torch", "threads", "seconds", "commit",
        "library", "time", "rows"}``; a row that failed holds ``error``.
    """
    if not (isinstance(seconds, (int, float)) and seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if threads:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    cfgs = configurations(profile, names)
    if not cfgs:
        raise ValueError(f"no run of profile {profile!r} matches {' '.join(names or [])}")
    out = {"profile": profile, "device": describe_device(dev), "device_type": dev.type, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "seconds": float(seconds), "max_params": max_params,
           "commit": commit_of_library(), "library": _library_name(),
           "python": platform.python_version(),
           "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "rows": []}
    cache: dict[str, BenchData] = {}
    for cfg in cfgs:
        try:
            if cfg["dataset"] not in cache:
                cache[cfg["dataset"]] = load_data(cfg["dataset"], data_dir)
            row = bench_config(cfg, cache[cfg["dataset"]], dev, seconds, max_params)
        except Exception as err:  # noqa: BLE001 - one configuration's failure is reported, the others measured
            row = {**cfg, "n_params": None, "train": None, "eval": None, "notes": {},
                   "error": f"{type(err).__name__}: {err}"}
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        out["rows"].append(row)
        if report is not None:
            report(row)
    return out


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


TABLE_HEAD = (f"{'configuration':28s} {'model':16s} {'batch':>5s} {'params':>11s} {'train img/s':>12s} "
              f"{'step ms':>9s} {'train MiB':>9s} {'eval img/s':>11s} {'batch ms':>9s} {'eval MiB':>8s}  notes")


def format_row(row: dict) -> str:
    """One line of the table (see :data:`TABLE_HEAD`)."""
    tr, ev = row.get("train") or {}, row.get("eval") or {}
    notes = []
    if row.get("error"):
        notes.append(row["error"])
    if row.get("skipped"):
        notes.append("skipped: " + row["skipped"])
    if tr.get("single_step"):
        notes.append("train: 1 step")
    if ev.get("single_step"):
        notes.append("eval: 1 batch")
    notes += [v for k, v in (row.get("notes") or {}).items() if isinstance(v, str)]
    if row.get("data") == "synthetic":
        notes.append("random data")
    return (f"{row['name'][:28]:28s} {row['model'][:16]:16s} {row['batch_size']:5d} "
            f"{_num(row.get('n_params'), ',d'):>11s} {_num(tr.get('images_per_s'), ',.1f'):>12s} "
            f"{_num(None if not tr else 1000 * tr['step_s'], '.2f'):>9s} {_num(tr.get('peak_mem_mb'), '.0f'):>9s} "
            f"{_num(ev.get('images_per_s'), ',.1f'):>11s} {_num(None if not ev else 1000 * ev['step_s'], '.2f'):>9s} "
            f"{_num(ev.get('peak_mem_mb'), '.0f'):>8s}  {'; '.join(notes)}")


def format_header(result: dict) -> str:
    c = result.get("commit") or {}
    commit = (c.get("commit") or "unknown")[:10] + (" (modified)" if c.get("dirty") else "")
    return (f"profile {result['profile']}, {result['device']}, {result['threads']} threads, torch {result['torch']}, "
            f"commit {commit}, {result['seconds']:g} s per phase")


def format_table(result: dict) -> str:
    return "\n".join([format_header(result), TABLE_HEAD, *(format_row(r) for r in result["rows"])])


def _jsonable(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(result: dict, path) -> Path:
    """Write the report as JSON (non-finite numbers as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- before and after


def _rate(row: dict | None, phase: str):
    part = (row or {}).get(phase) or {}
    v = part.get("images_per_s")
    return v if isinstance(v, (int, float)) and v > 0 else None


def compare(before: dict, after: dict) -> list[dict]:
    """Match the rows of two reports (by configuration, else by run name) and set their
    throughputs side by side.

    Returns:
        One dict per configuration of either report: ``model``, ``name``, ``batch_size`` and,
        for ``train`` and ``eval``, ``<phase>_before``, ``<phase>_after`` (images/s or None)
        and ``<phase>_ratio`` (after / before, None unless both are there).
    """
    b_rows, a_rows = before.get("rows", []), after.get("rows", [])
    b_by_key = {config_key(r): r for r in b_rows}
    b_by_name = {r["name"]: r for r in b_rows}
    used, out = set(), []
    for a in a_rows:
        b = b_by_key.get(config_key(a))
        if b is None or id(b) in used:
            b = b_by_name.get(a["name"])
            if b is not None and (id(b) in used or b["model"] != a["model"]):
                b = None
        if b is not None:
            used.add(id(b))
        out.append(_compared(b, a))
    out += [_compared(b, None) for b in b_rows if id(b) not in used]
    return out


def _compared(b: dict | None, a: dict | None) -> dict:
    ref = a or b
    row = {"model": ref["model"], "name": ref["name"], "dataset": ref["dataset"], "batch_size": ref["batch_size"]}
    for phase in ("train", "eval"):
        x, y = _rate(b, phase), _rate(a, phase)
        row[f"{phase}_before"], row[f"{phase}_after"] = x, y
        row[f"{phase}_ratio"] = y / x if x and y else None
    return row


def family_ratios(rows: list[dict]) -> dict[str, dict]:
    """Per model family, the geometric mean of the ratios of its configurations
    (``{"train": r or None, "eval": r or None, "n": configurations}``)."""
    fam: dict[str, dict] = {}
    for r in rows:
        f = fam.setdefault(r["model"], {"train": [], "eval": [], "n": 0})
        f["n"] += 1
        for phase in ("train", "eval"):
            if r[f"{phase}_ratio"] is not None:
                f[phase].append(r[f"{phase}_ratio"])
    return {m: {"n": f["n"], **{p: (math.exp(sum(map(math.log, f[p])) / len(f[p])) if f[p] else None)
                                for p in ("train", "eval")}} for m, f in fam.items()}


def format_compare(rows: list[dict], before: dict | None = None, after: dict | None = None) -> str:
    """The comparison as a table, by family (images/s before and after, and their ratio),
    then each family's geometric-mean ratio."""
    lines = []
    if before is not None and after is not None:
        lines += [f"before: {format_header(before)}", f"after:  {format_header(after)}"]
    lines.append(f"{'model':16s} {'configuration':28s} {'batch':>5s} {'train before':>13s} {'train after':>12s} "
                 f"{'ratio':>6s} {'eval before':>12s} {'eval after':>11s} {'ratio':>6s}")
    for r in sorted(rows, key=lambda r: r["model"]):
        lines.append(f"{r['model'][:16]:16s} {r['name'][:28]:28s} {r['batch_size']:5d} "
                     f"{_num(r['train_before'], ',.1f'):>13s} {_num(r['train_after'], ',.1f'):>12s} "
                     f"{_num(r['train_ratio'], '.2f'):>6s} {_num(r['eval_before'], ',.1f'):>12s} "
                     f"{_num(r['eval_after'], ',.1f'):>11s} {_num(r['eval_ratio'], '.2f'):>6s}")
    lines.append("")
    lines.append(f"{'family':16s} {'configs':>7s} {'train ratio':>11s} {'eval ratio':>10s}  (geometric means)")
    for m, f in sorted(family_ratios(rows).items()):
        lines.append(f"{m[:16]:16s} {f['n']:7d} {_num(f['train'], '.2f'):>11s} {_num(f['eval'], '.2f'):>10s}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``densitybench bench`` (also those of ``scripts/bench.py``)."""
    p.add_argument("--profile", default="mnist", help="the profile whose runs are measured (default: mnist)")
    p.add_argument("--runs", nargs="+", metavar="GLOB", help="only runs whose name or folder matches")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of each timed phase (default 5)")
    p.add_argument("--max-params", type=float, default=None, metavar="N",
                   help="build but do not time configurations with more parameters (e.g. 5e6 on a CPU)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, metavar="OUT", help="also write the report to this JSON file")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), default=None,
                   help="measure nothing: compare two reports written by --json")


def main_from_args(a: argparse.Namespace) -> int:
    """Run what the parsed options ask; returns the exit status (1 when a configuration failed)."""
    if a.compare:
        before, after = (json.loads(Path(f).read_text()) for f in a.compare)
        print(format_compare(compare(before, after), before, after))
        return 0
    max_params = None if a.max_params is None else int(a.max_params)
    dev = resolve_device(a.device)
    print(f"profile {a.profile}, {describe_device(dev)}, {a.seconds:g} s per phase", flush=True)
    print(TABLE_HEAD, flush=True)
    result = run(a.profile, a.runs, device=a.device, threads=a.threads, seconds=a.seconds, max_params=max_params,
                 data_dir=a.data_dir, report=lambda row: print(format_row(row), flush=True))
    print(format_header(result))
    if a.json:
        print(f"written: {write_json(result, a.json)}")
    return 1 if any(r.get("error") for r in result["rows"]) else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="densitybench bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return main_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
