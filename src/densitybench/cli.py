"""Command line: ``densitybench {study,book,data,evaluate}``."""

from __future__ import annotations

import argparse
import ast
import json
import sys

from . import data, evaluate, study


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="densitybench", description="Density estimators on images, by a stated protocol.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("study", help="execute the notebooks of a profile, then build the book")
    s.add_argument("--profile", default="digits", choices=sorted(study.PROFILES))
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

    b = sub.add_parser("book", help="build the book from a profile's executed notebooks (no execution)")
    b.add_argument("--profile", default="mnist", choices=sorted(study.PROFILES))
    b.add_argument("--results-root", default=None)

    d = sub.add_parser("data", help="fetch or verify datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    f = dsub.add_parser("fetch", help="download a dataset from its canonical URLs and verify it")
    f.add_argument("name", choices=data.names())
    f.add_argument("--data-dir", default=None)
    c = dsub.add_parser("check", help="verify every dataset present in the data directory")
    c.add_argument("--data-dir", default=None)

    e = sub.add_parser("evaluate", help="re-evaluate committed runs from their checkpoints")
    e.add_argument("run_dirs", nargs="+")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--tolerance", type=float, default=0.01, help="nats (default 0.01)")

    a = p.parse_args(argv)
    if a.cmd == "study":
        params = {k: v for k, v in {"device": a.device, "data_dir": a.data_dir}.items() if v is not None}
        try:
            params.update(parse_params(a.param))
        except ValueError as err:
            p.error(str(err))
        study.run(a.profile, a.notebooks, a.results_root, params, threads=a.threads)
        if not a.no_book:
            study.build_book(a.profile, a.results_root)
        return 0
    if a.cmd == "book":
        study.build_book(a.profile, a.results_root)
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
        bad = 0
        for r in a.run_dirs:
            res = evaluate.reevaluate(r, a.data_dir)
            ok = abs(res["difference"]) <= a.tolerance
            bad += not ok
            print(json.dumps({**res, "within_tolerance": ok}))
        return 1 if bad else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
