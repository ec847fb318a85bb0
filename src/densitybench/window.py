"""Windows of machine time: train a profile's plan within a wall-clock limit, resumed by the next window.

A study too long for the machine time one gets at once (a GPU lent for a quarter of an hour, a
job queue's time limit) advances by *windows*: each call of :func:`run_window` trains the runs
of a profile that are not finished yet, for at most ``limit`` seconds, in the run store
``<out>/<profile>/runs/`` (see :mod:`densitybench.runs`). A later window given the same ``out``
skips the finished runs and resumes the others from their checkpoints.

The window's end is no property of a run. Every run gets the same ``deadline``, the window's end
less a ``margin`` left for writing checkpoints and for recording the runs that end just before
it; :func:`densitybench.train.fit` stops there with a resumable checkpoint, and nothing is
recorded: no stop reason is written for a run the window cut. A run's own budget
(``train.max_seconds``, counted over all windows) and its stop reasons stay its own. A run not
begun by the deadline is left untouched. With Ray, a run still busy at the window's end itself
(recording its results) is cancelled; it resumes from its last checkpoint next time. A model
fitted in closed form (EM) cannot stop midway: a fit cut by the deadline is fitted again from
the start in the next window.

On CUDA with the Ray executor several runs share one GPU through fractional GPU requests:
``gpus_per_run`` gives every run the same fraction, ``pack="auto"`` one per run from its
measured training footprint (:func:`training_footprint`; see :func:`gpu_fractions`).

At the end a summary (runs finished in this window, finished before, in progress with their
epoch and training time, not started, failed) is printed and written to
``<out>/<profile>/window.json``; ``windows.jsonl`` beside it keeps one line per window.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path

from . import runs

#: the margin before the window's end, as a fraction of the limit, at most :data:`MAX_MARGIN` seconds
MARGIN_FRACTION = 0.1
MAX_MARGIN = 120.0
#: runs packed on one GPU at most with ``pack="auto"``: more small runs would only queue for its cores
MAX_RUNS_PER_GPU = 8
#: GPU memory a run holds beyond its tensors (its CUDA context, the allocator's reserve), in bytes
CONTEXT_BYTES = 1 << 30
#: the training footprint is multiplied by this for a run's GPU share (evaluation batches, fragmentation)
FOOTPRINT_SAFETY = 2.0


def default_margin(limit: float) -> float:
    """Seconds kept before the window's end: a tenth of ``limit``, at most :data:`MAX_MARGIN`."""
    return min(MAX_MARGIN, MARGIN_FRACTION * float(limit))


# --------------------------------------------------------------------------- packing runs on a GPU


def training_footprint(spec: runs.RunSpec, data_shape) -> int:
    """Bytes one training step of ``spec`` holds: parameters, gradients, Adam's two moments, buffers
    and the activations saved for the backward pass, at the run's batch size.

    Measured by building the model on the CPU and taking one step on a batch of zeros (every
    support contains 0); the count does not depend on the device. A model fitted in closed form
    counts its parameters and buffers only.

    Args:
        spec: the run.
        data_shape: the shape of one example of its dataset, e.g. ``(1, 28, 28)``.
    """
    from types import SimpleNamespace

    import torch

    model = runs.create_model(spec, SimpleNamespace(image_shape=tuple(data_shape)))
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    if not model.trained_by_gradient:
        return int(state)
    tr = {**runs.TRAIN_DEFAULTS, **spec.train}
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    x = torch.zeros(tr["batch_size"], *data_shape)
    optimizers = model.configure_optimizers(tr["lr"], tr["weight_decay"])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()
        model.training_step(x, optimizers, tr["clip_grad_norm"])
    n_params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(state + 3 * n_params + saved[0])  # + gradients and Adam's two moments


def gpu_fractions(specs, data_shapes: dict, gpu_bytes: int, n_gpus: int = 1) -> dict[str, float]:
    """The GPU share each run requests with ``pack="auto"``, by run folder.

    A run's share is the larger of an equal share of the GPU among the runs that fit on it at
    once (``1 / min(MAX_RUNS_PER_GPU, runs per GPU)``) and its memory need,
    ``(CONTEXT_BYTES + FOOTPRINT_SAFETY * training_footprint) / gpu_bytes``, rounded up to a
    hundredth and at most 1; runs with the same model, settings and data shape are measured once.

    Args:
        specs: the runs to train.
        data_shapes: ``{dataset: shape of one example}``.
        gpu_bytes: the memory of one GPU.
        n_gpus: GPUs in the cluster.
    """
    specs = list(specs)
    if not specs:
        return {}
    slots = min(MAX_RUNS_PER_GPU, math.ceil(len(specs) / max(1, n_gpus)))
    measured: dict[str, int] = {}
    out = {}
    for spec in specs:
        shape = tuple(data_shapes[spec.dataset])
        what = json.dumps([spec.model, spec.hparams, spec.train, shape], sort_keys=True)
        if what not in measured:
            measured[what] = training_footprint(spec, shape)
        need = (CONTEXT_BYTES + FOOTPRINT_SAFETY * measured[what]) / gpu_bytes
        out[spec.folder] = min(1.0, math.ceil(max(1.0 / slots, need) * 100) / 100)
    return out


# --------------------------------------------------------------------------- one window


def run_window(profile: str, limit: float, out, *, names=None, executor: str = "local", address: str | None = None,
               gpus_per_run: float | None = None, pack: str | None = None, cpus_per_run: float = 1,
               margin: float | None = None, device: str | None = None, data_dir=None, threads: int | None = None,
               max_retries: int = 3, progress: bool = True) -> dict:
    """Train the unfinished runs of ``profile`` for at most ``limit`` seconds in ``<out>/<profile>/runs``.

    Args:
        profile: a profile name (:func:`densitybench.runs.load_profile`).
        limit: the window's length in seconds, from this call.
        out: the results root of the window's run store (the same one for every window of a study).
        names: glob patterns of run names or folders (all runs when None).
        executor: ``"local"`` (one run after another) or ``"ray"``.
        address: with Ray, the cluster to join (a local one is started when None).
        gpus_per_run: with Ray on CUDA, the GPU share of every run.
        pack: ``"auto"``: with Ray on CUDA, each run's share from :func:`gpu_fractions` (the
            default there when ``gpus_per_run`` is not given).
        cpus_per_run: what Ray reserves for each run.
        margin: seconds before the window's end when training stops (:func:`default_margin`).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; the profile's device when None.
        data_dir, threads: passed to :func:`densitybench.runs.train_one`.
        max_retries: how often Ray retries a run whose worker died.
        progress: print a line per run and the summary.

    Returns:
        The summary (also written to ``<out>/<profile>/window.json``): ``finished`` (in this
        window), ``skipped`` (finished before), ``in_progress`` (``{"run", "epoch", "step",
        "elapsed_seconds"}``), ``not_started``, ``failed`` (``{run: error}``), ``resumed``
        (``{run: {"epoch", "step"}}``: where the runs continued from a checkpoint started),
        ``complete``, the timings and each run's GPU share.

    Raises:
        ValueError: a bad limit, margin, executor or packing option.
    """
    from . import atomic, executors, study, train

    started = time.time()
    if not (isinstance(limit, (int, float)) and limit > 0 and math.isfinite(limit)):
        raise ValueError(f"limit must be a positive number of seconds, got {limit!r}")
    margin = default_margin(limit) if margin is None else float(margin)
    if not 0 <= margin < limit:
        raise ValueError(f"margin must be at least 0 and less than the limit ({limit:g} s), got {margin!r}")
    if executor not in executors.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(executors.EXECUTORS)}")
    if pack not in (None, "auto"):
        raise ValueError(f"pack must be 'auto' or None, got {pack!r}")
    if pack is not None and gpus_per_run is not None:
        raise ValueError("give gpus_per_run or pack, not both")
    end = started + float(limit)
    deadline = end - margin
    prof = runs.load_profile(profile)
    specs = prof.specs(names=names)
    root = runs.store_root(profile, out)
    dev = str(train.resolve_device(device or prof.device))
    before = {s.folder: runs.status(s, root)["status"] for s in specs}
    todo = [s for s in specs if before[s.folder] != "done"]
    absent = {d: study.missing_data(d, data_dir) for d in sorted({s.dataset for s in todo})}
    failed = {s.folder: f"data absent: {absent[s.dataset]}" for s in todo if absent[s.dataset]}
    todo = [s for s in todo if not absent[s.dataset]]
    say = print if progress else (lambda *a, **k: None)
    say(f"[densitybench] window of {limit:g} s on {dev} ({executor}): profile {profile}, {len(specs)} runs, "
        f"{len(specs) - len(todo) - len(failed)} done before, {len(todo)} to train; training stops "
        f"{margin:g} s before the end", flush=True)

    shares: dict[str, float] = {}
    train_fn = functools.partial(runs.train_one, deadline=deadline)
    settings = {"device": dev, "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                "threads": threads}
    results: dict[str, dict] = {}
    if executor == "local":
        for spec in todo:
            try:
                results[spec.folder] = executors._train_task(train_fn, spec.to_json(), str(root), settings)
            except Exception as err:  # one failed run must not lose the others
                failed[spec.folder] = executors._describe(err)
                say(f"[densitybench] failed {spec.folder}: {failed[spec.folder]}", flush=True)
                continue
            _report(say, spec.folder, results[spec.folder])
    elif todo:
        with executors._ray_connection(address):
            import ray

            have = ray.cluster_resources()
            if dev.startswith("cuda"):
                if gpus_per_run is not None:
                    shares = {s.folder: float(gpus_per_run) for s in todo}
                else:
                    shares = _auto_shares(todo, data_dir, int(have.get("GPU", 0)))
            _run_ray(todo, str(root), train_fn, settings, shares, cpus_per_run, max_retries, end, results, failed, say)

    summary = _summary(prof.name, specs, root, before, results, failed, started, limit, margin, deadline, executor,
                       dev, shares)
    folder = Path(root).parent
    atomic.write_json(folder / "window.json", summary)
    with open(folder / "windows.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    if progress:
        print_summary(summary)
    return summary


def _auto_shares(todo, data_dir, n_gpus: int) -> dict[str, float]:
    import torch

    from . import data as data_mod

    if n_gpus < 1:
        raise ValueError("pack='auto' needs a GPU in the Ray cluster; it has none")
    shapes = {d: tuple(data_mod.load(d, data_dir).image_shape) for d in sorted({s.dataset for s in todo})}
    return gpu_fractions(todo, shapes, torch.cuda.get_device_properties(0).total_memory, n_gpus)


def _run_ray(todo, root, train_fn, settings, shares, cpus_per_run, max_retries, end, results, failed, say) -> None:
    """Every run a Ray task with its GPU share; tasks still running at the window's end are cancelled."""
    import ray

    from . import executors

    have = ray.cluster_resources()
    need_gpu = max(shares.values(), default=0.0)
    for name, need in (("CPU", cpus_per_run), ("GPU", need_gpu)):
        if need and need > have.get(name, 0):  # such a task would wait forever
            raise ValueError(f"a run requests {need:g} {name}(s) but the Ray cluster has {have.get(name, 0):g}")
    if settings["threads"] is None:
        settings = {**settings, "threads": max(1, int(cpus_per_run))}
    task = ray.remote(executors._train_task)
    fn_ref = ray.put(train_fn)
    pending = {}
    for spec in todo:
        opts = {"num_cpus": cpus_per_run, "num_gpus": shares.get(spec.folder, 0.0), "max_retries": max_retries,
                "retry_exceptions": False, "name": spec.folder}
        pending[task.options(**opts).remote(fn_ref, spec.to_json(), root, settings)] = spec
    while pending:
        left = end - time.time()
        if left <= 0:
            for ref, spec in pending.items():  # each resumes from its last checkpoint next time
                ray.cancel(ref, force=True)
                say(f"[densitybench] cancelled {spec.folder} at the window's end", flush=True)
            return
        done, _ = ray.wait(list(pending), num_returns=1, timeout=min(left, 5.0))
        for ref in done:
            spec = pending.pop(ref)
            try:
                results[spec.folder] = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                failed[spec.folder] = executors._describe(e.cause if isinstance(e.cause, BaseException) else e)
            except ray.exceptions.RayError as e:
                failed[spec.folder] = executors._describe(e)
            if spec.folder in failed:
                say(f"[densitybench] failed {spec.folder}: {failed[spec.folder]}", flush=True)
            else:
                _report(say, spec.folder, results[spec.folder])


def _report(say, folder: str, result: dict) -> None:
    status = result.get("status")
    if status == "interrupted":
        say(f"[densitybench] interrupted {folder} at epoch {result.get('epoch')} step {result.get('step')} "
            f"(resumable) after {result['seconds']:.0f} s", flush=True)
    elif status in ("skipped", "not_started"):
        say(f"[densitybench] {status.replace('_', ' ')} {folder}", flush=True)
    else:
        resumed = result.get("resumed_from")
        since = f" (resumed at epoch {resumed['epoch']} step {resumed['step']})" if resumed else ""
        say(f"[densitybench] {status} {folder} in {result['seconds']:.0f} s{since}", flush=True)


def _summary(profile, specs, root, before, results, failed, started, limit, margin, deadline, executor, dev,
             shares) -> dict:
    from . import train

    out = {"profile": profile, "store": str(root), "limit_seconds": float(limit), "margin_seconds": margin,
           "started_at": started, "deadline_at": deadline, "seconds": time.time() - started, "executor": executor,
           "device": dev, "finished": [], "skipped": [], "in_progress": [], "not_started": [], "failed": dict(failed),
           "gpus_per_run": shares}
    for spec in specs:
        if spec.folder in failed:
            continue
        st = runs.status(spec, root)
        if st["status"] == "done":
            out["skipped" if before[spec.folder] == "done" else "finished"].append(spec.folder)
        elif st["status"] == "partial":
            f = train.progress_path(runs.run_dir(spec, root) / "train_state.pt")
            reached = json.loads(f.read_text()) if f.is_file() else {}
            out["in_progress"].append({"run": spec.folder, "epoch": reached.get("epoch", 0),
                                       "step": reached.get("step", 0),
                                       "elapsed_seconds": reached.get("elapsed_seconds", 0.0)})
        else:
            out["not_started"].append(spec.folder)
    out["resumed"] = {run: r["resumed_from"] for run, r in results.items() if r.get("resumed_from")}
    out["complete"] = not (out["in_progress"] or out["not_started"] or out["failed"])
    return out


def print_summary(summary: dict) -> None:
    """The window's summary: counts, then the runs in progress and those not started."""
    print(f"[densitybench] window over after {summary['seconds']:.0f} s of {summary['limit_seconds']:g}: "
          f"{len(summary['finished'])} finished, {len(summary['skipped'])} finished before, "
          f"{len(summary['in_progress'])} in progress, {len(summary['not_started'])} not started, "
          f"{len(summary['failed'])} failed")
    for r in summary["in_progress"]:
        print(f"  in progress  {r['run']}: epoch {r['epoch']} step {r['step']}, {r['elapsed_seconds']:.0f} s trained")
    for r in summary["not_started"]:
        print(f"  not started  {r}")
    for r, err in summary["failed"].items():
        print(f"  failed       {r}: {err}")
    print("[densitybench] all runs finished" if summary["complete"] else
          "[densitybench] call the window again with the same --out to continue", flush=True)
