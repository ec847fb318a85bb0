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
