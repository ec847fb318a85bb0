"""The nearest-neighbour check: is a model copying its training images?

Each sample's distance to its nearest training image is set beside the same distance of
held-out test images: samples much closer to the training set than test images are copies.
Binary data uses the Hamming distance (samples rounded first), other data L2 on ``[0, 1]``
pixels.
"""

from __future__ import annotations

import torch

from . import data as data_mod, metrics
from .sampling import to_image


def neighbour_check(samples_img: torch.Tensor, data: data_mod.ImageData, n_test: int = 1000, seed: int = 0) -> dict:
    """Nearest training image of each sample, and of ``n_test`` held-out test images.

    Args:
        samples_img: ``(S, *image_shape)`` samples in ``[0, 1]`` (see :func:`~densitybench.sampling.to_image`).
        data: the dataset the model was trained on.
        n_test: test images to compare with (a random subset, all of them if fewer).
        seed: seeds the choice of test images.

    Returns:
        ``metric`` (``"hamming"`` or ``"l2"``), ``sample_distances`` ``(S,)``, ``sample_index``
        ``(S,)`` (into the training split), ``test_distances`` ``(min(n_test, N_test),)``, and
        ``train``: the training images in ``[0, 1]``.
    """
    metric = "hamming" if data.kind == "binary" else "l2"
    train = to_image(data.train, data, False)
    g = torch.Generator().manual_seed(seed)
    test_idx = torch.randperm(data.test.shape[0], generator=g)[: min(n_test, data.test.shape[0])]
    test = to_image(data.test[test_idx], data, False)
    sample_q = samples_img.round() if metric == "hamming" else samples_img
    d_s, i_s = metrics.nearest_neighbours(sample_q, train, metric)
    d_t, _ = metrics.nearest_neighbours(test, train, metric)
    return {"metric": metric, "sample_distances": d_s, "sample_index": i_s, "test_distances": d_t, "train": train}


def summary(nn: dict) -> dict:
    """The record's ``nearest_neighbour`` field: the metric, quantiles of the samples' and the
    test images' distances, and the number of test images."""
    return {
        "metric": nn["metric"],
        "samples": metrics.quantiles(nn["sample_distances"].numpy()),
        "test": metrics.quantiles(nn["test_distances"].numpy()),
        "n_test": int(len(nn["test_distances"])),
    }
