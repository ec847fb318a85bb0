"""Measure the throughput of a library source tree with this tree's benchmark.

    python scripts/bench.py --src /path/to/other/checkout/src --profile mnist --json before.json

puts ``--src`` first on ``sys.path`` (so ``import densitybench`` is that tree's library, with its
own models, data code and profiles) and loads ``src/densitybench/bench.py`` of THIS tree by its
file path, so that two commits are measured by the same benchmark. Without ``--src`` this tree's
library is measured. The other options are those of ``densitybench bench``; ``--compare BEFORE
AFTER`` compares two reports.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

BENCH_FILE = Path(__file__).resolve().parent.parent / "src" / "densitybench" / "bench.py"


def load_bench(src: Path):
    """Put ``src`` first on the path, check that ``densitybench`` comes from it, and load this
    tree's benchmark module against it."""
    src = src.resolve()
    if not (src / "densitybench" / "__init__.py").is_file():
        raise SystemExit(f"{src} holds no densitybench package (expected {src / 'densitybench' / '__init__.py'})")
    if "densitybench" in sys.modules:
        raise SystemExit("densitybench is already imported; run this script in a fresh interpreter")
    sys.path.insert(0, str(src))
    import densitybench

    where = Path(densitybench.__file__).resolve().parent
    if where != src / "densitybench":
        raise SystemExit(f"densitybench was imported from {where}, not from {src}: another installation shadows it")
    spec = importlib.util.spec_from_file_location("densitybench_bench", BENCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, default=BENCH_FILE.parent.parent,
                   help="the src folder of the checkout to measure (default: this tree's)")
    known, _ = p.parse_known_args(argv)
    bench = load_bench(known.src)
    bench.add_arguments(p)
    return bench.main_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
