"""Executors: how the runs of a study are trained, one after another or spread over a Ray cluster.

Every executor calls the same function for every run, :func:`densitybench.runs.train_one`,
which trains a run (resuming from its checkpoint) and records it in the run store; a finished
run is found and skipped, never redone. An executor only decides *where* each call happens:

- ``"local"``: one run after another in this process.
- ``"ray"``: each run is a Ray task (``num_cpus=cpus_per_run``, ``num_gpus=gpus_per_run``,
  fractions allowed) that receives the spec as JSON, the store's path and the settings, and
  loads its own data. Without ``address`` a local cluster with every core of this machine is
  started (offline, no dashboard) and shut down afterwards; with ``address`` (``"auto"``,
  ``"host:port"`` or ``"ray://host:port"``) an existing cluster is joined and left running; a
  Ray already initialised in this process is used as it is. The store must be a folder every
  node sees (a shared filesystem on a multi-node cluster).

  A task whose worker dies (killed, out of memory, a lost node) is retried up to
  ``max_retries`` times and resumes from the run's last checkpoint; an exception raised by
  training itself (a bad setting, a divergence) is not retried, since it would recur. Ray sets
  ``OMP_NUM_THREADS`` of a task to its CPUs and ``threads`` defaults to ``cpus_per_run``
  (at least one), so runs sharing a node do not oversubscribe it. The workers' own output
  stays in Ray's session logs.

Both print one line per finished run and show a bar over the runs with its ETA (neither when
``progress`` is false). A run that fails does not stop the others: every run is tried, then one
:class:`RunsFailed` (a ``RuntimeError``) names the failed runs with their errors.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

EXECUTORS = ("local", "ray")


class RunsFailed(RuntimeError):
    """Some runs failed; the others finished.

    Attributes:
        failures: ``{folder: "ErrorType: message"}`` of the failed runs, in the order of the specs.
        errors: ``{folder: exception}``: what each failed run raised (with Ray, the exception
            raised in the worker, or Ray's error when the worker died more often than retried).
        results: the finished runs' results, in the order of the specs.
    """

    def __init__(self, message: str, errors: dict, results: list[dict]):
        super().__init__(message)
        self.errors = errors
        self.failures = {folder: _describe(err) for folder, err in errors.items()}
        self.results = results


def run_all(specs, root, *, executor: str = "local", address: str | None = None, cpus_per_run: float = 1,
            gpus_per_run: float = 0.0, max_retries: int = 3, device: str = "auto", data_dir=None,
            threads: int | None = None, progress: bool = True, train_fn=None) -> list[dict]:
    """Train and record every run of ``specs`` in the store at ``root`` (finished runs are skipped).

    Args:
        specs: :class:`~densitybench.runs.RunSpec` objects.
        root: the run store (one folder per run).
        executor: ``"local"`` or ``"ray"`` (see the module's docstring).
        address: the Ray cluster to join; ``None`` starts a local one for these runs.
        cpus_per_run, gpus_per_run: what Ray reserves for each run (fractions allowed).
        max_retries: how often Ray retries a run whose worker died.
        device, data_dir, threads: passed to ``train_fn`` for every run (with Ray, ``threads``
            is ``cpus_per_run`` by default).
        progress: print a line per finished run and show a bar over the runs.
        train_fn: ``train_fn(spec_json, root, device=, data_dir=, threads=) -> dict``;
            :func:`densitybench.runs.train_one` by default.

    Returns:
        ``train_fn``'s result for every run, in the order of ``specs``.

    Raises:
        RunsFailed: after every run was tried, when at least one failed.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if train_fn is None:
        from .runs import train_one as train_fn
    specs = list(specs)
    if not specs:
        return []
    # absolute paths: a Ray worker does not run in this process's working directory
    root = str(Path(root).resolve())
    settings = {"device": device, "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                "threads": threads}
    outcomes = {}  # folder -> (result or None, exception or None)
    # Ray starts (or is joined) before the bar shows, so that the bar's ETA counts only runs
    with _ray_connection(address) if executor == "ray" else nullcontext(), \
            _Progress(len(specs), enabled=progress) as report:
        if executor == "local":
            for spec in specs:
                t0 = time.perf_counter()
                try:
                    result = _train_task(train_fn, spec.to_json(), root, settings)
                except Exception as err:  # one failed run must not lose the others
                    outcomes[spec.folder] = (None, err)
                else:
                    outcomes[spec.folder] = (result, None)
                report(spec.folder, *outcomes[spec.folder], time.perf_counter() - t0)
        else:
            _run_ray(specs, root, train_fn, settings, outcomes, report, cpus_per_run=cpus_per_run,
                     gpus_per_run=gpus_per_run, max_retries=max_retries)
    results = [outcomes[s.folder][0] for s in specs if outcomes[s.folder][1] is None]
    errors = {s.folder: outcomes[s.folder][1] for s in specs if outcomes[s.folder][1] is not None}
    if errors:
        lines = "\n".join(f"  {folder}: {_describe(err)}" for folder, err in errors.items())
        raise RunsFailed(f"{len(errors)} of {len(specs)} runs failed:\n{lines}", errors,
                         results) from next(iter(errors.values()))
    return results


def _train_task(train_fn, spec_json: dict, root: str, settings: dict) -> dict:
    """One run, wherever it executes: only JSON, a path and the settings cross to it."""
    return train_fn(spec_json, root, **settings)


@contextmanager
def _ray_connection(address: str | None):
    """Ray for the runs: the one already initialised in this process, else the cluster at
    ``address`` (left running), else a new local cluster (shut down on leaving)."""
    import ray

    if ray.is_initialized():
        yield
        return
    # Ray's own output goes to its session logs, never to our stdout
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    if address is not None:
        ray.init(address=address, **quiet)
        yield
        return
    # offline: no usage report (a user's own setting wins)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # "local" starts a new cluster even when RAY_ADDRESS names another one
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


def _run_ray(specs, root, train_fn, settings, outcomes, report, *, cpus_per_run, gpus_per_run,
             max_retries) -> None:
    import ray

    if settings["threads"] is None:
        settings = {**settings, "threads": max(1, int(cpus_per_run))}
    have = ray.cluster_resources()
    for name, need in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if need and need > have.get(name, 0):  # such a task would wait forever
            raise ValueError(f"each run requests {need:g} {name}(s) but the Ray cluster has "
                             f"{have.get(name, 0):g}; lower --{name.lower()}s-per-run or join a larger cluster")
    task = ray.remote(_train_task)
    resources = {"num_cpus": cpus_per_run, "num_gpus": gpus_per_run, "max_retries": max_retries,
                 "retry_exceptions": False}
    train_ref = ray.put(train_fn)
    started_at = time.perf_counter()
    pending = {task.options(name=spec.folder, **resources).remote(train_ref, spec.to_json(), root, settings): spec
               for spec in specs}
    try:
        _collect(pending, outcomes, report, started_at)
    except KeyboardInterrupt:  # stop the runs still queued or training (each resumes from its checkpoint)
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _collect(pending, outcomes, report, started_at) -> None:
    import ray

    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            spec = pending.pop(ref)
            try:
                result, err = ray.get(ref), None
            except ray.exceptions.RayTaskError as e:  # training raised: report the original exception
                result, err = None, e.cause if isinstance(e.cause, BaseException) else e
            except ray.exceptions.RayError as e:  # the worker died more often than retried, a lost node
                result, err = None, e
            outcomes[spec.folder] = (result, err)
            seconds = (result or {}).get("seconds", time.perf_counter() - started_at)
            report(spec.folder, result, err, seconds)


def _describe(err: BaseException) -> str:
    """``ErrorType: first line of the message``."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


class _Progress:
    """A bar over the runs and one line per finished run on stdout (neither when not enabled)."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self._tqdm = tqdm
        self._enabled = enabled
        self._bar = tqdm(total=total, unit="run", desc="runs", disable=not enabled, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()

    def __call__(self, folder: str, result: dict | None, err: BaseException | None, seconds: float) -> None:
        if not self._enabled:
            return
        if err is not None:
            line = f"[densitybench] failed {folder}: {_describe(err)}"
        else:
            status = result.get("status", "done") if isinstance(result, dict) else "done"
            if status == "skipped":
                line = f"[densitybench] skipped {folder}"
            else:
                line = f"[densitybench] {status} {folder} in {seconds:.0f} s"
        self._tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
        self._bar.update(1)
