"""Samples of a model, and images in ``[0, 1]`` for display and for pixel distances."""

from __future__ import annotations

import time

import torch

from . import data as data_mod


def to_image(x: torch.Tensor, data: data_mod.ImageData, continuous: bool) -> torch.Tensor:
    """Images in ``[0, 1]``, same shape as ``x``: levels ``/ (K - 1)``, or the clipped ``y`` of a
    continuous model (which already lives on ``[0, 1]``)."""
    if continuous:
        return x.float().clamp(0, 1)
    return x.float() / (data.n_levels - 1)


@torch.no_grad()
def draw_samples(model, n: int, generator: torch.Generator | None = None, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples of ``model`` on the CPU, ``(n, *image_shape)``, drawn ``batch_size`` at a time
    from one generator."""
    return torch.cat([model.sample(len(b), generator=generator).cpu() for b in torch.arange(n).split(batch_size)])


@torch.no_grad()
def timed_samples(model, n: int, seed: int) -> tuple[torch.Tensor, float]:
    """The run's ``n`` samples, ``(n, *image_shape)`` on the CPU, drawn in one call from a generator
    on the model's device seeded with ``seed``, and the seconds that call took."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    t0 = time.perf_counter()
    samples = model.sample(n, generator=g).cpu()
    return samples, time.perf_counter() - t0
