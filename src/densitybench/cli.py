"""Command line: ``densitybench {plan,train,window,study,book,data,evaluate,bench}``."""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

from . import data, evaluate, runs, study


def parse_params(items) -> dict:
    """``["epochs=7", "dataset=mnist"]`` -> ``{"epochs": 7, "dataset": "mnist"}``."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def _executor_args(p) -> None:
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: one run after another; ray: each run a Ray task (default: local)")
    p.add_argument("--address", default=None,
                   help="with --executor ray: join this cluster ('auto', 'host:port' or 'ray://host:port'); "
                        "default: start a local one")
    p.add_argument("--cpus-per-run", type=float, default=1, help="CPUs a Ray task requests (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="GPUs a Ray task requests, a fraction packs several runs on one GPU (default 0)")


def print_plan(rows) -> None:
    """The plan as an aligned table: run, key, status (epoch reached), folder."""
    width = max((len(r["run"]) for r in rows), default=3)
    print(f"{'run':{width}s}  {'key':12s}  {'status':18s}  folder")
    for r in rows:
        st = r["status"] + (f" at epoch {r['epoch']}" if r["status"] == "partial" else "")
        print(f"{r['run']:{width}s}  {r['key']:12s}  {st:18s}  {r['folder']}")
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"{len(rows)} runs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def _nats(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def print_reevaluation(folders, data_dir=None, tolerance: float = 0.01) -> int:
    """Re-evaluate the finished runs of ``folders``: one line per run (run, committed, recomputed,
    difference, ok) under a progress bar, then a summary. Returns 1 if a run is outside
    ``tolerance`` nats or could not be recomputed, else 0."""
    from tqdm.auto import tqdm

    width = max([len(Path(f).name) for f in folders] + [3])
    tqdm.write(f"{'run':{width}s}  {'committed':>14s} {'recomputed':>14s} {'difference':>11s}  ok")

    def line(r):
        diff = "-" if r["difference"] is None else f"{r['difference']:+.2e}"
        ok = "yes" if r["ok"] else "NO"
        note = f"  ({r['note']})" if r["note"] else ""
        tqdm.write(f"{r['run']:{width}s}  {_nats(r['committed']):>14s} {_nats(r['recomputed']):>14s} {diff:>11s}  "
                   f"{ok}{note}")

    res = evaluate.reevaluate_store(folders, data_dir, tolerance=tolerance, progress=True, report=line)
    worst = res["max_abs_difference"]
    print(f"{res['n_reevaluated']} runs re-evaluated; max |difference| "
          f"{'-' if worst is None else f'{worst:.2e}'} nats (tolerance {tolerance:g})")
    without = res["without_checkpoint"]
    print(f"{len(without)} without a checkpoint (not re-evaluated): {', '.join(without) or 'none'}")
    if res["failed"]:
        print(f"{len(res['failed'])} outside the tolerance or not recomputed: {', '.join(res['failed'])}")
        return 1
    return 0


def print_sources(profile: str, names=None) -> None:
    """Every entry of ``profile`` once: its model, dataset, seeds, hyperparameters and training
    settings, and its note (which names the source of each setting)."""
    import textwrap

    entries: dict[str, list] = {}
    for spec in runs.load_profile(profile).specs(names=names):
        entries.setdefault(spec.name, []).append(spec)
    for name, specs in entries.items():
        spec = specs[0]
        print(f"\n{name}: {spec.model} on {spec.dataset}, seeds {', '.join(str(s.seed) for s in specs)}")
        print(f"  hyperparameters: {json.dumps(spec.hparams)}")
        print(f"  training: {json.dumps(spec.train)}")
        print(textwrap.fill(f"sources: {spec.protocol_note or 'no note'}", width=110, initial_indent="  ",
                            subsequent_indent="    "))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="densitybench", description="Density estimators on images, by a stated protocol.")
    sub = p.add_subparsers(dest="cmd", required=True)

    profiles = runs.profile_names()
    pl = sub.add_parser("plan", help="list every run of a profile with its key, status and folder")
    pl.add_argument("--profile", default="digits", choices=profiles)
    pl.add_argument("--runs", nargs="+", metavar="GLOB", help="only runs whose name or folder matches")
    pl.add_argument("--results-root", default=None, help="default: <repo>/results")
    pl.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    pl.add_argument("--sources", action="store_true",
                    help="after the table, every entry once: its seeds, settings and the note naming each setting's source")

    t = sub.add_parser("train", help="train the missing and partial runs of a profile (finished runs are skipped)")
    t.add_argument("--profile", default="digits", choices=profiles)
    t.add_argument("--runs", nargs="+", metavar="GLOB", help="only runs whose name or folder matches")
    t.add_argument("--results-root", default=None, help="default: <repo>/results")
    _executor_args(t)
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--threads", type=int, default=None, help="CPU threads per run")

    w = sub.add_parser("window", help="train a profile's unfinished runs within a wall-clock limit, leaving "
                                      "resumable checkpoints for the next window")
    w.add_argument("--profile", required=True, choices=profiles)
    w.add_argument("--limit", type=float, required=True, metavar="SECONDS", help="the window's length")
    w.add_argument("--out", required=True, metavar="DIR",
                   help="results root: the runs live in DIR/<profile>/runs; give the same DIR to every window")
    w.add_argument("--runs", nargs="+", metavar="GLOB", help="only runs whose name or folder matches")
    w.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: one run after another; ray: each run a Ray task (default: local)")
    w.add_argument("--address", default=None, help="with --executor ray: join this cluster (default: start one)")
    pack = w.add_mutually_exclusive_group()
    pack.add_argument("--gpus-per-run", type=float, default=None, help="with ray on CUDA: every run's GPU share")
    pack.add_argument("--pack", choices=("auto",), default=None,
                      help="with ray on CUDA: each run's GPU share from its measured footprint (the default there)")
    w.add_argument("--cpus-per-run", type=float, default=1, help="CPUs a Ray task requests (default 1)")
    w.add_argument("--margin", type=float, default=None, metavar="SECONDS",
                   help="training stops this long before the end (default: a tenth of the limit, at most 120 s)")
    w.add_argument("--device", default=None, help="cpu, cuda or auto (default: the profile's)")
    w.add_argument("--data-dir", default=None)
    w.add_argument("--threads", type=int, default=None, help="CPU threads per run")

    s = sub.add_parser("study", help="train a profile's runs, execute its notebooks, then build the book")
    s.add_argument("--profile", default="digits", choices=profiles)
    _executor_args(s)
    s.add_argument("--notebooks", nargs="+", choices=study.NOTEBOOKS, help="only these notebooks")
    s.add_argument("--device", default=None, help="cpu, cuda or auto (default: auto)")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--results-root", default=None, help="default: <repo>/results")
    s.add_argument("--no-book", action="store_true", help="do not build the book afterwards")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads per notebook kernel (default: 1 for smoke and digits, else torch's choice)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a notebook parameter (repeatable), e.g. --param epochs=7; VALUE is read as a Python "
                        "literal, else kept as a string")

    an = sub.add_parser("annotate", help="bring finished runs' labels, published anchors and protocol notes up to "
                                         "date with the profile (no number changes; not in the key)")
    an.add_argument("--profile", required=True, choices=profiles)
    an.add_argument("--runs", nargs="+", metavar="GLOB", help="only runs whose name or folder matches")
    an.add_argument("--results-root", default=None, help="default: <repo>/results")
    an.add_argument("--dry-run", action="store_true", help="only list what would change")

    b = sub.add_parser("book", help="build the book from a profile's executed notebooks (no execution)")
    b.add_argument("--profile", default="mnist", choices=profiles)
    b.add_argument("--results-root", default=None)

    d = sub.add_parser("data", help="fetch or verify datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    f = dsub.add_parser("fetch", help="download a dataset from its canonical URLs and verify it")
    f.add_argument("name", choices=data.names())
    f.add_argument("--data-dir", default=None)
    c = dsub.add_parser("check", help="verify every dataset present in the data directory")
    c.add_argument("--data-dir", default=None)

    e = sub.add_parser("evaluate", help="recompute the test numbers of finished runs from their checkpoints and "
                                        "compare them with their records")
    e.add_argument("run_dirs", nargs="*", help="run folders (or give --profile)")
    e.add_argument("--profile", default=None, choices=profiles,
                   help="every run of the profile's store, results/<profile>/runs/*")
    e.add_argument("--results-root", default=None, help="with --profile; default: <repo>/results")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--tolerance", type=float, default=0.01, help="nats (default 0.01)")

    bn = sub.add_parser("bench", help="measure training and evaluation throughput (images/s) of every distinct "
                                      "configuration of a profile on this device, or compare two such reports")
    from . import bench

    bench.add_arguments(bn)

    a = p.parse_args(argv)
    if a.cmd == "plan":
        rows = runs.plan(a.profile, a.results_root, a.runs)
        if a.json:
            print(json.dumps(rows, indent=2))
        else:
            print_plan(rows)
            if a.sources:
                print_sources(a.profile, a.runs)
        return 0
    if a.cmd == "train":
        study.train(a.profile, a.results_root, names=a.runs, executor=a.executor, address=a.address,
                    cpus_per_run=a.cpus_per_run, gpus_per_run=a.gpus_per_run, device=a.device, data_dir=a.data_dir,
                    threads=a.threads)
        return 0
    if a.cmd == "window":
        from . import window

        try:
            summary = window.run_window(a.profile, a.limit, a.out, names=a.runs, executor=a.executor,
                                        address=a.address, gpus_per_run=a.gpus_per_run, pack=a.pack,
                                        cpus_per_run=a.cpus_per_run, margin=a.margin, device=a.device,
                                        data_dir=a.data_dir, threads=a.threads)
        except ValueError as err:
            p.error(str(err))
        return 1 if summary["failed"] else 0
    if a.cmd == "study":
        params = {k: v for k, v in {"device": a.device, "data_dir": a.data_dir}.items() if v is not None}
        try:
            params.update(parse_params(a.param))
            study.check_parameters(params, a.notebooks or study.notebooks_of(a.profile))
        except ValueError as err:
            p.error(str(err))
        study.run(a.profile, a.notebooks, a.results_root, params, threads=a.threads, executor=a.executor,
                  address=a.address, cpus_per_run=a.cpus_per_run, gpus_per_run=a.gpus_per_run)
        if not a.no_book:
            study.build_book(a.profile, a.results_root)
        return 0
    if a.cmd == "book":
        study.build_book(a.profile, a.results_root)
        return 0
    if a.cmd == "annotate":
        root = runs.store_root(a.profile, a.results_root)
        n = 0
        for spec in runs.load_profile(a.profile).specs(names=a.runs):
            changed = runs.annotate(spec, root, dry_run=a.dry_run)
            if changed:
                n += 1
                print(f"{spec.folder}: {'would change' if a.dry_run else 'changed'} {', '.join(changed)}")
        print(f"{n} run(s) {'to annotate' if a.dry_run else 'annotated'}")
        return 0
    if a.cmd == "data":
        try:
            if a.data_cmd == "fetch":
                print(data.fetch(a.name, a.data_dir))
                return 0
            status = data.check(a.data_dir)
        except data.DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for name, st in status.items():
            print(f"{name:16s} {st}")
        return 1 if any(st.startswith("CORRUPT") for st in status.values()) else 0
    if a.cmd == "evaluate":
        if bool(a.run_dirs) == bool(a.profile):
            p.error("evaluate takes run folders or --profile, one of the two")
        if a.profile:
            root = runs.store_root(a.profile, a.results_root)
            if not root.is_dir():
                p.error(f"no run store at {root}")
            folders = sorted(f for f in root.iterdir() if f.is_dir())
        else:
            folders = [Path(r) for r in a.run_dirs]
            unfinished = [str(f) for f in folders if not (f / "metrics.json").is_file()]
            if unfinished:
                p.error(f"no metrics.json (not a finished run): {', '.join(unfinished)}")
        return print_reevaluation(folders, a.data_dir, a.tolerance)
    if a.cmd == "bench":
        try:
            return bench.main_from_args(a)
        except ValueError as err:
            p.error(str(err))
    return 2


if __name__ == "__main__":
    sys.exit(main())
