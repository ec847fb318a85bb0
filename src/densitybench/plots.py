"""Figures: image grids, nearest-neighbour pairs, distance histograms, training curves.

Every function takes tensors or records and returns a matplotlib ``Figure``; saving and
display are the caller's business.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def tile(images: torch.Tensor | np.ndarray, n_cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``(N, 1, H, W)`` (or ``(N, H, W)``) images in [0, 1] into one 2-D array."""
    x = torch.as_tensor(np.asarray(images)).float()
    if x.ndim == 4:
        x = x[:, 0]
    n, h, w = x.shape
    n_cols = n_cols or int(math.ceil(math.sqrt(n)))
    n_rows = int(math.ceil(n / n_cols))
    out = np.ones((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, n_cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[i].numpy()
    return out


def image_grid(images, title: str = "", n_cols: int | None = None, ax=None):
    """A grid of greyscale images in [0, 1] (white background, black strokes inverted)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(tile(np.clip(np.asarray(images), 0, 1), n_cols), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return fig or ax.figure


def neighbour_pairs(samples, neighbours, distances, metric: str, n: int = 16, title: str = ""):
    """Each sample (top row) above its nearest training image (bottom row), with the distance."""
    n = min(n, len(samples))
    fig, axes = plt.subplots(2, n, figsize=(1.0 * n, 2.4))
    axes = np.atleast_2d(axes)
    for i in range(n):
        for row, imgs in enumerate((samples, neighbours)):
            ax = axes[row, i]
            img = np.asarray(imgs[i]).reshape(np.asarray(imgs[i]).shape[-2:])
            ax.imshow(np.clip(img, 0, 1), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, i].set_xlabel(f"{float(distances[i]):.3g}", fontsize=7)
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntrain", fontsize=8)
    fig.suptitle(title or f"samples and their nearest training images ({metric} distance below)", fontsize=9)
    fig.tight_layout()
    return fig


def distance_histogram(sample_d, test_d, metric: str, title: str = ""):
    """Distances to the nearest training image: model samples against held-out test images."""
    fig, ax = plt.subplots(figsize=(5, 3))
    s, t = np.asarray(sample_d, float), np.asarray(test_d, float)
    bins = np.histogram_bin_edges(np.concatenate([s, t]), bins=30)
    ax.hist(t, bins=bins, density=True, alpha=0.5, label=f"held-out test images (n={len(t)})")
    ax.hist(s, bins=bins, density=True, alpha=0.5, label=f"model samples (n={len(s)})")
    ax.set_xlabel(f"{metric} distance to the nearest training image")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, list[dict]], ylabel: str = "NLL (nats)"):
    """Train (dashed) and validation (solid) loss per epoch of several runs."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, (name, epochs) in enumerate(histories.items()):
        e = [r["epoch"] for r in epochs]
        color = f"C{i}"
        ax.plot(e, [r["train_loss"] for r in epochs], "--", color=color, label=f"{name} train")
        ax.plot(e, [r["valid_loss"] for r in epochs], "-", color=color, label=f"{name} valid")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def labelled_rows(panels: dict[str, torch.Tensor | np.ndarray], n: int | None = None, title: str = ""):
    """One row of images per entry of ``panels`` (name -> ``(N, 1, H, W)`` in [0, 1]), the
    name written at the row's left; the first ``n`` images of each (all when None)."""
    panels = {k: np.asarray(v) for k, v in panels.items()}
    n = n or max(len(v) for v in panels.values())
    fig, axes = plt.subplots(len(panels), n, figsize=(0.9 * n, 0.95 * len(panels)), squeeze=False)
    for r, (name, imgs) in enumerate(panels.items()):
        for i in range(n):
            ax = axes[r, i]
            if i < len(imgs):
                ax.imshow(np.clip(imgs[i].reshape(imgs[i].shape[-2:]), 0, 1), cmap="gray_r", vmin=0, vmax=1,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= len(imgs):
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def completions(truth, observed_rows: int, rows: dict[str, torch.Tensor | np.ndarray], n: int = 8, title: str = ""):
    """Completions of images whose rows from ``observed_rows`` on were hidden.

    Args:
        truth: ``(N, 1, H, W)`` test images in [0, 1].
        observed_rows: rows kept from the top; the rest were hidden and completed.
        rows: name -> ``(N, 1, H, W)`` completions in [0, 1], one figure row each.
        n: images (columns) shown.
    """
    truth = np.asarray(truth)[:n]
    shown = truth.copy()
    shown[:, :, observed_rows:] = 0.5  # the hidden part, drawn grey
    panels = {"truth": truth, "observed": shown, **{k: np.asarray(v)[:n] for k, v in rows.items()}}
    return labelled_rows(panels, n, title or f"completions: the rows from {observed_rows} down were hidden")


def dependency_maps(maps: dict[str, torch.Tensor], position: tuple[int, int], title: str = ""):
    """Which inputs each model's conditional at ``position`` depends on (non-zero gradient),
    with the pixel itself marked: the receptive field, and any blind spot in it."""
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], maps.items()):
        m = np.asarray(m).reshape(np.asarray(m).shape[-2:])
        ax.imshow(m > 0, cmap="Blues", vmin=0, vmax=1.4, interpolation="nearest")
        ax.plot(position[1], position[0], "s", color="crimson", markersize=5)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "inputs the conditional of the red pixel depends on (blue)", fontsize=9)
    fig.tight_layout()
    return fig


def run_figures(samples, nn: dict, title: str = "") -> dict:
    """The three figures of a run, keyed by file name: ``samples.png`` (the grid of samples),
    ``neighbours.png`` (samples above their nearest training images) and ``nn_distances.png``
    (those distances against held-out test images').

    Args:
        samples: ``(S, *image_shape)`` samples in ``[0, 1]``.
        nn: the result of :func:`densitybench.neighbours.neighbour_check` for these samples.
        title: the run's label.
    """
    return {
        "samples.png": image_grid(samples, title=f"{title}: samples"),
        "neighbours.png": neighbour_pairs(samples, nn["train"][nn["sample_index"]], nn["sample_distances"],
                                          nn["metric"]),
        "nn_distances.png": distance_histogram(nn["sample_distances"], nn["test_distances"], nn["metric"],
                                               title=title),
    }
