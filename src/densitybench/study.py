"""The study runner: profiles, notebook execution with papermill, and the book.

A *profile* fixes every hyperparameter of every notebook for one scale of the study:

- ``smoke``: the smallest, for the test suite (seconds per notebook);
- ``digits``: the embedded default, scikit-learn's 8x8 digits on a CPU in minutes;
- ``mnist``: binarized MNIST (MADE, mixture of Bernoullis) and 8-bit MNIST (PCA+GMM),
  whose results are committed under ``results/mnist``.

The notebooks read their configuration from :func:`config`; their ``parameters`` cell
may override single entries. ``run`` executes ``notebooks/<name>.py`` (jupytext percent
format) with papermill into ``results/<profile>/<name>.ipynb``; ``build_book`` copies the
executed notebooks of one profile into ``book/executed/`` and builds the Jupyter Book
without executing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import paths

#: notebooks in execution order (results aggregates what the others wrote)
NOTEBOOKS = ("made", "nade", "pixelcnn", "pixelrnn", "nice", "vae", "gan", "pca_gmm", "levels", "samples", "beyond",
             "results", "findings")

class _Profiles:
    """``PROFILES[profile][notebook]``: each chapter's own settings, read from the profile files
    (``src/densitybench/profiles/<profile>.yaml``, see :mod:`densitybench.runs`)."""

    def __getitem__(self, profile: str) -> dict:
        from . import runs

        return runs.load_profile(profile).chapters

    def __contains__(self, profile) -> bool:
        from . import runs

        return profile in runs.profile_names()

    def __iter__(self):
        from . import runs

        return iter(runs.profile_names())

    def keys(self):
        return list(self)


PROFILES = _Profiles()

#: the group profiles whose "Beyond MNIST" runs the published chapter gathers
_BEYOND_GROUPS = ("uci", "atari", "caltech", "fashion")


def beyond_profile(dataset: str) -> str | None:
    """The profile whose "Beyond MNIST" page trains the runs of ``dataset`` (None: no such profile)."""
    from . import runs

    for p in _BEYOND_GROUPS:
        if any(spec.dataset == dataset for spec in runs.load_profile(p).specs(chapter="beyond")):
            return p
    return None


def notebook_parameters(name: str) -> list[str]:
    """The names a notebook's ``parameters`` cell assigns (what papermill may set)."""
    import ast

    import jupytext

    nb = jupytext.read(paths.notebooks_dir() / f"{name}.py")
    out = []
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    out += [t.id for t in targets if isinstance(t, ast.Name)]
    return out


def check_parameters(parameters: dict, notebooks) -> None:
    """Refuse a parameter that no notebook to be executed declares.

    Raises:
        ValueError: naming the parameter and the names the notebooks accept.
    """
    known = {p for n in notebooks for p in notebook_parameters(n)}
    for k in parameters:
        if k not in known:
            raise ValueError(f"unknown parameter {k!r}: the notebooks {', '.join(notebooks)} accept "
                             f"{', '.join(sorted(known))}")


def notebooks_of(profile: str) -> list[str]:
    """The notebooks ``profile`` configures, in execution order."""
    chapters = PROFILES[profile]
    return [n for n in NOTEBOOKS if n in chapters]


def config(notebook: str, profile: str, **overrides) -> dict:
    """The settings of chapter ``notebook`` under ``profile``; ``None`` overrides are ignored.

    Raises:
        ValueError: an unknown profile, a profile without this chapter, or an override that
            names no setting of the chapter.
    """
    from . import runs

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    prof = runs.load_profile(profile)
    if notebook not in prof.chapters:
        raise ValueError(f"profile {profile!r} has no notebook {notebook!r}")
    cfg = prof.chapter(notebook)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg["profile"] = profile
    return cfg


# --------------------------------------------------------------------------- execution


def _kernel_env() -> None:
    """Make the kernel papermill starts use this interpreter (and its packages)."""
    bindir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


#: the kernel draws figures into the notebook (a non-interactive backend would leave them out)
_KERNEL_MPLBACKEND = "module://matplotlib_inline.backend_inline"


#: CPU threads of the notebook kernels per profile (None: torch's default). The small
#: networks of the CPU profiles run several times faster on one thread than on two.
THREADS = {"smoke": 1, "digits": 1}


def execute(
    name: str,
    profile: str,
    results_root: str | os.PathLike | None = None,
    parameters: dict | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> Path:
    """Execute ``notebooks/<name>.py`` with papermill; return the executed ``.ipynb``.

    ``threads``: CPU threads of the kernel (``OMP_NUM_THREADS``); default
    :data:`THREADS` of the profile, else torch's own choice.
    """
    import jupytext
    import papermill

    _kernel_env()
    out_dir = paths.results_dir(profile, results_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = paths.notebooks_dir() / f"{name}.py"
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = {"profile": profile, "results_dir": paths.relative_to_repo(out_dir), **(parameters or {})}
    out = out_dir / f"{name}.ipynb"
    # papermill writes its output cell by cell: into a temporary file, which replaces the last
    # good notebook only when the execution succeeded (a failed one is kept as <name>.failed.ipynb)
    partial = out_dir / f".{name}.{os.getpid()}.tmp.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / f"{name}.ipynb"
        jupytext.write(nb, inp)
        threads = threads or THREADS.get(profile)
        kernel_env = {"MPLBACKEND": _KERNEL_MPLBACKEND, "OMP_NUM_THREADS": str(threads) if threads else None}
        saved = {k: os.environ.get(k) for k in kernel_env}
        for k, v in kernel_env.items():  # inherited by the kernel only
            if v is not None:
                os.environ[k] = v
        try:
            papermill.execute_notebook(
                str(inp), str(partial), parameters=params, kernel_name="python3", progress_bar=progress,
                cwd=str(out_dir), log_output=False,
            )
        except BaseException:
            if partial.exists():
                os.replace(partial, out_dir / f"{name}.failed.ipynb")
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    scrub_paths(partial, name)
    os.replace(partial, out)
    failed = out_dir / f"{name}.failed.ipynb"
    if failed.exists():
        failed.unlink()
    return out


def scrub_paths(notebook: str | os.PathLike, name: str | None = None) -> None:
    """Replace the repository's absolute location by ``<repo>`` in an executed notebook (its
    outputs and papermill's metadata), and papermill's input path (a temporary copy) by the
    notebook's source ``notebooks/<name>.py``, so committed notebooks carry no machine-specific path."""
    p = Path(notebook)
    text = p.read_text()
    new = text.replace(str(paths.REPO_ROOT), "<repo>")
    new = re.sub(r'"input_path": "[^"]*"', f'"input_path": "notebooks/{name or p.stem}.py"', new)
    if new != text:
        p.write_text(new)


def train(
    profile: str,
    results_root=None,
    names=None,
    chapters=None,
    executor: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0.0,
    device: str = "auto",
    data_dir=None,
    threads: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train the missing and partial runs of ``profile``'s plan (finished runs are skipped).

    ``names``: glob patterns of run names or folders; ``chapters``: only these chapters' runs;
    ``executor``: ``"local"`` (one run after another) or ``"ray"`` (see :mod:`densitybench.executors`).
    """
    from . import executors, runs

    prof = runs.load_profile(profile)
    specs = [s for s in prof.specs(names=names) if chapters is None or s.chapter in chapters]
    root = runs.store_root(profile, results_root)
    todo = [s for s in specs if runs.status(s, root)["status"] != "done"]
    absent = {}
    for s in todo:
        if s.dataset not in absent:
            absent[s.dataset] = missing_data(s.dataset, data_dir)
    skipped = [s for s in todo if absent[s.dataset]]
    todo = [s for s in todo if not absent[s.dataset]]
    print(f"[densitybench] profile {profile}: {len(specs)} runs in the plan, {len(specs) - len(todo) - len(skipped)} "
          f"done, {len(todo)} to train ({executor})" + (f", {len(skipped)} without their data" if skipped else ""),
          flush=True)
    for name in sorted({s.dataset for s in skipped}):
        print(f"[densitybench] not trained, data absent: {name} ({absent[name]})", flush=True)
    if not todo:
        return []
    return executors.run_all(todo, root, executor=executor, address=address, cpus_per_run=cpus_per_run,
                             gpus_per_run=gpus_per_run, device=device, data_dir=data_dir, threads=threads,
                             progress=progress)


def missing_data(dataset: str, data_dir=None) -> str | None:
    """Why the files of ``dataset`` are absent from the data directory (None: present, embedded or
    generated); the dataset's source answers (a derived name asks the dataset it is made from)."""
    from . import data

    return data.missing(dataset, data_dir)


def run(
    profile: str = "digits",
    notebooks=None,
    results_root=None,
    parameters: dict | None = None,
    progress: bool = True,
    threads: int | None = None,
    executor: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0.0,
) -> list[Path]:
    """The study under ``profile``: train the plan's runs of the chosen chapters (with ``executor``),
    then execute the notebooks in order (they only read those runs).

    Raises:
        ValueError: a parameter that none of the notebooks declares.
    """
    notebooks = list(notebooks or notebooks_of(profile))
    parameters = dict(parameters or {})
    check_parameters(parameters, notebooks)
    train(profile, results_root, chapters=set(notebooks), executor=executor, address=address,
          cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, device=parameters.get("device") or "auto",
          data_dir=parameters.get("data_dir"), threads=threads or THREADS.get(profile), progress=progress)
    done = []
    for name in notebooks:
        t0 = time.perf_counter()
        print(f"[densitybench] executing notebooks/{name}.py (profile {profile})", flush=True)
        done.append(execute(name, profile, results_root, parameters, progress, threads))
        print(f"[densitybench] {name} done in {time.perf_counter() - t0:.0f} s -> {done[-1]}", flush=True)
    return done


# --------------------------------------------------------------------------- book


def stage_book(profile: str, results_root=None, source_root=None) -> Path:
    """Copy the executed notebooks of ``profile`` to ``<source>/book/executed/`` (where the ToC
    points), with the tables the pages wrote (``*.csv``), which the pages offer for download.

    A notebook not yet executed under ``profile`` gets a one-cell page saying so and how to
    execute it (with a warning here), so the rest of the book still builds; a profile with no
    executed notebook at all is an error.
    """
    import nbformat

    src = paths.results_dir(profile, results_root)
    dst = Path(source_root or paths.REPO_ROOT) / "book" / "executed"
    missing = [n for n in NOTEBOOKS if not (src / f"{n}.ipynb").is_file()]
    if len(missing) == len(NOTEBOOKS):
        raise FileNotFoundError(
            f"profile {profile!r} has no executed notebook in {src}; run `densitybench study --profile {profile}` first"
        )
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for n in NOTEBOOKS:
        if n in missing:
            print(f"[densitybench] warning: notebooks/{n}.py was not executed under profile {profile!r}; "
                  f"its page says so", flush=True)
            title = jupytext_title(paths.notebooks_dir() / f"{n}.py")
            if n in PROFILES[profile]:
                how = (f"execute it with `densitybench study --profile {profile} --notebooks {n}` (after the model "
                       f"chapters of that profile), then rebuild the book.")
            else:
                others = ", ".join(f"`{p}`" for p in PROFILES if n in PROFILES[p] and p != "smoke")
                how = (f"the `{profile}` profile does not configure this chapter; it runs under the profiles "
                       f"{others}, e.g. `densitybench study --profile {next(p for p in PROFILES if n in PROFILES[p] and p != 'smoke')} "
                       f"--notebooks {n}`.")
            page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
                f"# {title}\n\n**Not executed for the `{profile}` profile yet.** This page has no results: {how}"
            )])
            nbformat.write(page, dst / f"{n}.ipynb")
        else:
            # a fresh file (new modification time), so the builder never serves a stale page
            page = publishable(nbformat.read(src / f"{n}.ipynb", as_version=4))
            nbformat.write(page, dst / f"{n}.ipynb")
    for table in sorted(src.glob("*.csv")):  # the full tables, offered for download beside the pages
        shutil.copyfile(table, dst / table.name)
    # every run's record and spec, published with the book at <profile>/runs/<run>/ (its path in
    # the repository under results/; ``html_extra_path``, whose copy skips the ``exclude_patterns``
    # of the book, "results" among them), where the results page links each number
    records = dst / RECORDS_DIR / profile / "runs"
    records.mkdir(parents=True)
    for metrics in sorted((src / "runs").glob("*/metrics.json")):
        (records / metrics.parent.name).mkdir()
        for name in ("metrics.json", "spec.json"):
            if (metrics.parent / name).is_file():
                shutil.copyfile(metrics.parent / name, records / metrics.parent.name / name)
    return dst


#: the folder of ``book/executed`` whose content the book publishes as is, at the site's root
RECORDS_DIR = "records"


#: the cell tags of the parameters cell and of the cell papermill injects after it
PARAMETER_TAGS = ("parameters", "injected-parameters")


def publishable(nb):
    """The executed notebook ``nb`` as the book shows it: the parameters cells removed from the
    page (tag ``remove-cell``; the first code cell prints the profile) and every stderr stream
    (progress bars, warnings, logs) left out. The executed notebook in the results keeps both.
    Returns a new notebook; ``nb`` is unchanged."""
    import copy as _copy

    nb = _copy.deepcopy(nb)
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in PARAMETER_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    return nb


def jupytext_title(notebook: Path) -> str:
    """The first Markdown heading of a percent-format notebook."""
    for line in notebook.read_text().splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return notebook.stem


def build_book(profile: str, results_root=None, source_root=None, builder: str = "html") -> Path:
    """Stage ``profile``'s executed notebooks and build the book, warnings as errors.

    ``source_root`` is the folder holding ``_config.yml``, ``_toc.yml`` and ``book/`` (the
    repository by default); the HTML goes to ``<source_root>/_build/html``.
    """
    root = Path(source_root or paths.REPO_ROOT)
    stage_book(profile, results_root, root)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--builder", builder,
           "--warningiserror", "--nitpick", "--keep-going"]
    print("[densitybench] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=root, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the book did not build (exit {proc.returncode}); see the messages above")
    index = root / "_build" / "html" / "index.html"
    print(f"[densitybench] book: {index}", flush=True)
    return index
