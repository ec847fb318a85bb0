import itertools
import os
from pathlib import Path

import pytest
import torch

from densitybench.models.base import DensityModel

from densitybench import paths

os.environ.setdefault("MPLBACKEND", "Agg")


def all_binary(D: int) -> torch.Tensor:
    """Every binary vector of length D, shape (2**D, D)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))


def all_levels(D: int, K: int) -> torch.Tensor:
    """Every vector of D values in 0..K-1, shape (K**D, D)."""
    return torch.tensor(list(itertools.product(range(K), repeat=D)), dtype=torch.float32)


def perturb_(module: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Move parameters away from their initialisation (property tests use random parameters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="session")
def data_root() -> Path:
    return paths.data_dir()


def require_dataset(name: str):
    """Skip (with the reason) when a dataset's files are absent from the data directory."""
    from densitybench.datasets import registry

    why = registry.missing(name, paths.data_dir())  # asks the dataset's source (derived names too)
    if why:
        pytest.skip(f"{name} is not in the data directory {paths.data_dir()} (set DENSITYBENCH_DATA): {why}")


class LossTurnsBad(DensityModel):
    """A one-parameter Bernoulli model whose training loss is multiplied by ``factor`` (NaN by
    default, or an infinity) from optimiser step ``bad_step`` on (counted over the run)."""

    def __init__(self, data_shape, bad_step=3, factor=float("nan")):
        super().__init__(data_shape)
        self.logit = torch.nn.Parameter(torch.zeros(()))
        self.bad_step, self.factor, self.steps = bad_step, factor, 0

    def _log_prob(self, x):
        lp = torch.nn.functional.logsigmoid(self.logit) * x + torch.nn.functional.logsigmoid(-self.logit) * (1 - x)
        return lp.flatten(1).sum(1)

    def loss(self, x):
        loss = super().loss(x)
        return loss * self.factor if self.steps + 1 >= self.bad_step else loss

    def after_step(self):
        self.steps += 1
