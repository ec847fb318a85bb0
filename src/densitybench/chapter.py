"""The skeleton the model chapters of the book share.

Every model chapter opens the same way: the profile and seed its ``parameters`` cell names
fix its settings, its run store, its device, its runs and its dataset (:meth:`Chapter.open`).
It then trains or reads its runs (:meth:`Chapter.ensure_runs`), tabulates them, shows their
samples and, for the autoregressive models, completes test images. The functions here
compute what a page shows (tensors, records, figures) and glue its numbers; drawing a figure
on the page (``plt.show()``) is left to the page.

A page never shows the first images of a split: a split may be sorted (the binarized MNIST
test file is sorted by digit), so every subset shown is a seeded random sample
(:func:`subset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import data, paths, plots, report, runs, study, train

#: what a chapter calls its runs in the error raised when a profile has none for the page's seed
RUN_NOUN = {"made": "MADE run", "nade": "NADE run", "pixelcnn": "PixelCNN run", "pixelrnn": "PixelRNN run",
            "levels": "softmax run on grey levels"}

#: where a page's dataset is not named by its chapter's ``dataset`` setting or is not that of every
#: run: ``chapter -> (setting, runs trained on it)`` (None: every run of the chapter)
PAGE_DATA = {"levels": ("levels_dataset", None), "nice": ("continuous_dataset", None),
             "gan": ("continuous_dataset", None), "vae": ("dataset", ("vae",)), "pca_gmm": ("dataset", ("pca_gmm",))}

#: the figures every run writes for its samples, in the order a page shows them
SAMPLE_FIGURES = ("samples.png", "neighbours.png", "nn_distances.png")


def subset(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` images of a split drawn without replacement, the same ones for the same seed.

    Args:
        images: ``(N, ...)`` a split (or any batch).
        n: how many; all ``N`` (shuffled) when ``n >= N``.
        seed: seed of the draw.
    Returns:
        ``(min(n, N), ...)`` the drawn images, in the order drawn.
    """
    return images[subset_indices(len(images), n, seed)]


def subset_indices(n_total: int, n: int, seed: int) -> torch.Tensor:
    """The indices :func:`subset` draws from a split of ``n_total`` examples: ``min(n, n_total)``
    distinct indices in the order drawn (a seeded random permutation's first ``n``)."""
    if n < 0:
        raise ValueError(f"n must be at least 0, not {n}")
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


@dataclass
class Chapter:
    """What a chapter's ``parameters`` cell fixes.

    Attributes:
        name: the chapter (``notebooks/<name>.py``), also the prefix of its glue names.
        profile: the profile, which defines the runs.
        config: the chapter's settings under the profile (:func:`densitybench.study.config`).
        results: the profile's results folder; ``store`` its run store (``results/runs``).
        device: where the page computes (``device_setting`` resolved).
        device_setting: ``"cpu"``, ``"cuda"`` or ``"auto"``: where a missing run is trained.
        data_dir: the data directory (None: the default, see :func:`densitybench.paths.data_dir`).
        seed: the seed of the runs shown, and of every random subset the page shows.
        specs: the chapter's runs of that seed, in plan order.
        data: the page's dataset (``config[dataset]``).
    """

    name: str
    profile: runs.Profile
    config: dict
    results: Path
    store: Path
    device: torch.device
    device_setting: str
    data_dir: str | None
    seed: int
    specs: list
    data: data.ImageData | None = None

    @classmethod
    def open(cls, name: str, profile: str, seed: int = 0, results_dir=None, data_dir=None, device: str = "auto", *,
             dataset: str | None = None, on_dataset=None) -> "Chapter":
        """The chapter ``name`` under ``profile``, with its runs of ``seed`` and its dataset loaded.

        Args:
            dataset: the setting of the chapter that names its dataset, and
            on_dataset: the names of the runs trained on it (None: every run); both default to
                the chapter's entry of :data:`PAGE_DATA`, else ``"dataset"`` and every run.
        Raises:
            ValueError: the profile has no run of this chapter with ``seed``, or a run named
                by ``on_dataset`` is trained on another dataset.
        """
        prof = runs.load_profile(profile)
        specs = [s for s in prof.specs(chapter=name) if s.seed == seed]
        if not specs:
            raise ValueError(f"profile {profile!r} has no {RUN_NOUN.get(name, f'{name} run')} with seed {seed}")
        out = paths.resolve(results_dir, profile)
        ch = cls(name=name, profile=prof, config=study.config(name, profile), results=out, store=out / "runs",
                 device=train.resolve_device(device), device_setting=device, data_dir=data_dir, seed=seed,
                 specs=specs)
        setting, trained_on = PAGE_DATA.get(name, ("dataset", None))
        ch.data = ch.load(dataset or setting, on_dataset if on_dataset is not None else trained_on)
        return ch

    @property
    def folders(self) -> list[str]:
        """The run folders of the chapter's runs (``<run>-s<seed>``)."""
        return [s.folder for s in self.specs]

    def settings(self, spec: runs.RunSpec):
        """A ``pandas.Series`` of the run ``spec``: its folder, key, dataset, hyperparameters and
        training settings."""
        import pandas as pd

        return pd.Series({"run": spec.folder, "key": spec.key, "dataset": spec.dataset, **spec.hparams, **spec.train})

    def spec(self, name: str) -> runs.RunSpec:
        """The chapter's run ``name``."""
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(f"chapter {self.name!r} has no run {name!r}; its runs: {', '.join(s.name for s in self.specs)}")

    def load(self, setting: str, on_dataset=None) -> data.ImageData:
        """The dataset that the chapter's setting ``setting`` names, checked to be the one the
        runs ``on_dataset`` (names; None: all) are trained on.

        Raises:
            ValueError: naming the first run trained on another dataset.
        """
        ds = data.load(self.config[setting], self.data_dir)
        for s in self.specs if on_dataset is None else [self.spec(n) for n in on_dataset]:
            if s.dataset != ds.name:
                raise ValueError(f"run {s.folder} is trained on {s.dataset}, not on the page's dataset {ds.name}")
        return ds

    def describe(self, ds: data.ImageData | None = None) -> str:
        """Two lines on ``ds`` (default: the page's dataset): its description, then its split
        sizes, image shape and, for integer levels, their number."""
        ds = ds or self.data
        levels = f" with {ds.n_levels} levels" if ds.kind == "levels" else ""
        return f"{ds.description}\n{ds.sizes()} images of shape {ds.image_shape}{levels}"

    def images(self, split: str, n: int, ds: data.ImageData | None = None) -> torch.Tensor:
        """``(n, C, H, W)`` float levels: a random sample of ``split`` drawn with the page's seed."""
        return subset((ds or self.data).split(split), n, self.seed)

    def training_grid(self, n: int = 64, ds: data.ImageData | None = None):
        """A figure of ``n`` random training images of ``ds`` (default: the page's), levels scaled to [0, 1]."""
        ds = ds or self.data
        return plots.image_grid(self.images("train", n, ds) / (ds.n_levels - 1), title=f"{ds.name}: training images")

    def ensure_runs(self, specs=None, **kwargs) -> dict[str, runs.Run]:
        """The finished runs ``specs`` (default: the chapter's), by run name; a missing one is
        trained first on the page's device (see :func:`densitybench.runs.ensure`)."""
        return runs.ensure_all(self.specs if specs is None else specs, self.store, device=self.device_setting,
                               data_dir=self.data_dir, **kwargs)

    def glue_training(self, finished: dict[str, runs.Run]) -> dict[str, dict]:
        """Glue the training settings the chapter's runs share and why each stopped
        (:func:`densitybench.report.glue_training`, prefixed with the chapter's name) and what
        the seeds of its entries give (``<chapter>_seeds``: :func:`densitybench.report.seeds_phrase`);
        return the runs' records (:func:`records`)."""
        recs = records(finished)
        report.glue_training(self.name, self.specs, recs)
        glue_values(self.name, {"seeds": report.seeds_phrase(self.profile, self.store, self.name)})
        return recs

    def show_training(self, number: str = "test NLL") -> tuple[dict[str, runs.Run], dict[str, dict]]:
        """Train or read the chapter's runs (:meth:`ensure_runs`), glue their training
        (:meth:`glue_training`), print one line per run (:func:`densitybench.report.print_runs`
        with ``number``) and display their training curves; return the runs and their records."""
        finished = self.ensure_runs()
        recs = self.glue_training(finished)
        report.print_runs(recs, number)
        _display_figure(training_curves(finished))
        return finished, recs

    def show_results(self, records: dict[str, dict]) -> str:
        """Display the runs' table (:func:`densitybench.report.run_table`) and glue the first
        run's numbers (:meth:`glue_headline`); return that run's name."""
        from IPython.display import display

        display(report.run_table(records))
        return self.glue_headline(records)

    def show_samples(self, finished: dict[str, runs.Run], spec: str = ".3g") -> dict:
        """Display every run's sample figures (:func:`show_samples`) and glue the nearest-neighbour
        medians of the first run (:func:`glue_nearest_neighbour`, ``spec``); return its entry."""
        show_samples(finished)
        return glue_nearest_neighbour(self.name, next(iter(finished.values())).record, spec)

    def completion_figure(self, finished: list[runs.Run], n_draws: int = 1, n_images: int = 8, title: str = ""):
        """A figure of random test images (:meth:`images`) with the bottom half completed by
        each run's model (:func:`complete_bottom_half`), ``n_draws`` rows per run: labelled
        ``sample i`` for one run drawn several times, else by the run's label."""
        test = self.images("test", n_images)
        rows = {}
        for run in finished:
            draws = complete_bottom_half(run.model().to(self.device), test, self.seed, n_draws)
            label = run.record["label"]
            for i, x in enumerate(draws):
                key = label if n_draws == 1 else f"sample {i + 1}" if len(finished) == 1 else f"{label}, sample {i + 1}"
                rows[key] = x
        return completion_figure(test, rows, title=title)

    def glue_headline(self, records: dict[str, dict]) -> str:
        """Glue the first run's name, dataset, test NLL and its standard error
        (``<chapter>_run``, ``_dataset``, ``_nll``, ``_se``); return that run's name."""
        first = next(iter(records))
        r = records[first]
        glue_values(self.name, {"run": first, "dataset": r["dataset"], "nll": f"{r['test_nll_nats']:.2f}",
                                "se": f"{r['test_nll_se']:.2f}"})
        return first


def records(finished: dict[str, runs.Run]) -> dict[str, dict]:
    """The record (``metrics.json``) of each run, by the same keys."""
    return {name: run.record for name, run in finished.items()}


def training_curves(finished: dict[str, runs.Run], **kwargs):
    """The training and validation curves of the runs (:func:`densitybench.plots.training_curves`)."""
    return plots.training_curves({name: run.history for name, run in finished.items()}, **kwargs)


def glue_values(prefix: str, values: dict) -> None:
    """Glue each value as ``<prefix>_<key>`` for the page's text."""
    from myst_nb import glue

    for key, value in values.items():
        glue(f"{prefix}_{key}", value, display=False)


def glue_nearest_neighbour(prefix: str, record: dict, spec: str = ".3g") -> dict:
    """Glue the median distance from a sample, and from a test image, to its nearest training
    image (``<prefix>_nn_sample_median``, ``<prefix>_nn_test_median``), formatted with ``spec``;
    return the record's ``nearest_neighbour`` entry."""
    nn = record["nearest_neighbour"]
    glue_values(prefix, {"nn_sample_median": format(nn["samples"]["q50"], spec),
                         "nn_test_median": format(nn["test"]["q50"], spec)})
    return nn


def show_samples(finished: dict[str, runs.Run], named: bool = True) -> None:
    """Display each run's sample figures (:data:`SAMPLE_FIGURES`), after its key when ``named``."""
    from IPython.display import Image, display

    for name, run in finished.items():
        if named:
            print(name)
        for figure in SAMPLE_FIGURES:
            display(Image(filename=run.path(figure)))


def _display_figure(fig) -> None:
    """Display ``fig`` in the notebook and close it (so that it is not drawn twice)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def observed_rows(images: torch.Tensor) -> int:
    """The rows kept from the top of ``(B, C, H, W)`` images whose bottom half is completed."""
    return images.shape[-2] // 2


def complete_bottom_half(model, images: torch.Tensor, seed: int, n_draws: int = 1) -> list[torch.Tensor]:
    """Completions of the bottom half of ``images`` by an autoregressive model in raster order.

    Args:
        model: a model with ``complete(x, n_known, generator)``.
        images: ``(B, C, H, W)`` images in the model's support.
        seed: seed of the one generator (on the model's device) the draws take in turn.
        n_draws: completions drawn.
    Returns:
        ``n_draws`` tensors ``(B, C, H, W)`` on the CPU: the top :func:`observed_rows` rows of
        ``images`` kept, the rest sampled from ``p(x_{>=n} | x_{<n})``.
    """
    n_known = observed_rows(images) * images.shape[-1]
    g = torch.Generator(device=model.device).manual_seed(seed)
    x = images.to(model.device)
    return [model.complete(x, n_known, generator=g).cpu() for _ in range(n_draws)]


def completion_figure(images: torch.Tensor, rows: dict[str, torch.Tensor], title: str = ""):
    """The images, their observed top half and each row of completions (``name -> (B, C, H, W)``)."""
    return plots.completions(images.cpu(), observed_rows(images), rows, n=len(images), title=title)


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter of ``model`` (in place) by ``scale`` times standard normal noise
    drawn from a generator seeded with ``seed``, so that a check does not pass only because of
    the initial weights; return the model."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def dependency_maps(model, x: torch.Tensor) -> list[torch.Tensor]:
    """For each pixel ``d`` in raster order, ``|d logits_d / d x|`` at the image ``x[:1]``
    (``data_shape`` each, see :func:`densitybench.models.autoregressive.dependency_map`)."""
    from .models.autoregressive import dependency_map

    return [dependency_map(model, d, x) for d in range(model.n_dims)]


def future_leak(maps: list[torch.Tensor]) -> float:
    """The largest dependence of a pixel's conditional on itself or a later pixel: exactly 0
    for an autoregressive model."""
    return max(m.reshape(-1)[d:].abs().max().item() for d, m in enumerate(maps))
