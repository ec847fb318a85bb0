"""The modules of ``densitybench`` import one another without a cycle, not even inside functions.

The graph is built from the source with ``ast``, not by importing anything: every ``import``
and ``from ... import`` statement of a module counts, wherever it stands (module level, inside a
function, under ``if TYPE_CHECKING``), with relative imports resolved against the module's package.
``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one, else to ``pkg``.
A package's ``__init__`` importing its own submodules is the usual layout and not a cycle; a
submodule importing its package back (``from . import something_defined_in_init``) is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import densitybench

PACKAGE = "densitybench"
ROOT = Path(densitybench.__file__).resolve().parent


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package (``__init__`` is the package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that the module ``name`` (file ``path``) imports anywhere."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # ``import a.b.c`` binds ``a`` but runs ``a/__init__``, ``a.b``, ``a.b.c``: the deepest is what it uses
                target = alias.name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base not in modules:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root, package)
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.data" in graph and len(graph) > 10, "the graph sees the package's modules"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: a cycle closed only by an import inside a function is found and named."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("import pkg.sub.b\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.sub.b"}
    assert find_cycle(graph) == ["pkg.sub.b", "pkg.c", "pkg.sub.b"]
    (pkg / "c.py").write_text("import numpy\n")
    assert find_cycle(import_graph(pkg, "pkg")) is None
    # a submodule importing its package back closes a cycle with the package's __init__
    (pkg / "c.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from . import VERSION\n")
    assert find_cycle(import_graph(pkg, "pkg")) == ["pkg", "pkg.a", "pkg"]
