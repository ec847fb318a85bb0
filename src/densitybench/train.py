"""One training loop for every model.

Gradient-trained models: Adam, minibatches, early stopping on the validation NLL with
patience, the best weights restored. Models fitted in closed form or by EM
(``trained_by_gradient = False``) are delegated to their own ``fit_closed_form`` with the
same arguments, and return the same per-epoch history.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import DEQUANTIZATION_SEED, dequantize as dequantize_levels
from .models.base import DensityModel


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) means CUDA when available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class History:
    """Per-epoch record: ``epoch``, ``train_loss``, ``valid_loss``, ``seconds`` (and more)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: float = float("inf")
    train_seconds: float = 0.0
    stopped_early: bool = False
    stopped_by_budget: bool = False

    def as_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "train_seconds": self.train_seconds,
            "stopped_early": self.stopped_early,
            "stopped_by_budget": self.stopped_by_budget,
        }


@torch.no_grad()
def mean_nll(model: DensityModel, x: torch.Tensor, batch_size: int = 1000, device=None) -> float:
    """Mean of ``-log_prob`` over ``x`` in batches (eval mode)."""
    device = device or model.device
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for b in x.split(batch_size):
            total += -model.log_prob(b.to(device)).double().sum().item()
    finally:
        model.train(was_training)
    return total / x.shape[0]


def fit(
    model: DensityModel,
    train: torch.Tensor,
    valid: torch.Tensor,
    *,
    epochs: int = 100,
    batch_size: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    lr_step: int | None = None,
    lr_gamma: float = 0.1,
    patience: int = 10,
    clip_grad_norm: float | None = None,
    dequantize: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    valid_fn=None,
) -> History:
    """Train ``model`` on ``train`` with early stopping on ``valid``.

    Args:
        model: a :class:`DensityModel`; trained in place (moved to ``device``).
        train, valid: tensors ``(N, *data_shape)`` in the model's support.
        epochs: most passes over ``train``.
        batch_size, lr, weight_decay: Adam's settings.
        lr_step, lr_gamma: multiply the learning rate by ``lr_gamma`` every ``lr_step``
            epochs (no schedule when None).
        patience: epochs without a better validation NLL before stopping.
        clip_grad_norm: clip the gradient's norm to this value (none when None).
        dequantize: for a continuous model of ``K``-level data, ``K``: ``train`` and
            ``valid`` hold the levels; every training minibatch is dequantized afresh as
            ``(x + u) / K`` and ``valid`` once with the fixed seed
            :data:`densitybench.data.DEQUANTIZATION_SEED`. A model fitted in closed form
            gets one draw of ``train`` seeded by ``seed`` and the same ``valid`` draw.
        max_seconds: a wall-clock budget: no epoch starts once this many seconds of
            training have passed (the history says so with ``stopped_by_budget``).
        seed: seeds the shuffling and the model's own randomness.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: show a tqdm bar over epochs.
        valid_fn: ``valid_fn(model, valid) -> float``, the validation criterion
            (default: the mean NLL of ``valid``; a model without a likelihood passes its own).

    Returns:
        The :class:`History`; the model holds the weights of the best validation epoch.
    """
    from tqdm import tqdm

    dev = resolve_device(device)
    model.to(dev)
    history = History()
    if not model.trained_by_gradient:
        t0 = time.perf_counter()
        if dequantize:  # one draw for fitting (seeded by `seed`), the fixed draw for validation
            train = dequantize_levels(train, dequantize, torch.Generator().manual_seed(seed))
            valid = dequantize_levels(valid, dequantize, torch.Generator().manual_seed(DEQUANTIZATION_SEED))
        history.epochs = model.fit_closed_form(train, valid, progress=progress)
        history.train_seconds = time.perf_counter() - t0
        best = min(history.epochs, key=lambda e: e["valid_loss"])
        history.best_epoch, history.best_valid = best["epoch"], best["valid_loss"]
        return history

    valid_fn = valid_fn or (lambda m, v: mean_nll(m, v, device=dev))
    g = seed_everything(seed)
    if dequantize:
        valid = dequantize_levels(valid, dequantize, torch.Generator().manual_seed(DEQUANTIZATION_SEED))
    optimizers = model.configure_optimizers(lr, weight_decay)
    scheds = [torch.optim.lr_scheduler.StepLR(o, lr_step, lr_gamma) for o in optimizers] if lr_step else []
    best_state, bad = None, 0
    t_start = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=type(model).__name__, disable=not progress, mininterval=2)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(train.shape[0], generator=g).split(batch_size):
            x = train[idx]
            if dequantize:
                x = dequantize_levels(x, dequantize, g)
            loss = model.training_step(x.to(dev), optimizers, clip_grad_norm)
            model.after_step()
            total += loss * len(idx)
            count += len(idx)
        for sched in scheds:
            sched.step()
        v = valid_fn(model, valid)
        history.epochs.append(
            {"epoch": epoch, "train_loss": total / count, "valid_loss": v, "seconds": time.perf_counter() - t0}
        )
        bar.set_postfix(train=f"{total / count:.2f}", valid=f"{v:.2f}")
        if v < history.best_valid:
            history.best_valid, history.best_epoch, bad = v, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= patience:
                history.stopped_early = True
                break
        if max_seconds is not None and time.perf_counter() - t_start >= max_seconds and epoch < epochs:
            history.stopped_by_budget = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.train_seconds = time.perf_counter() - t_start
    return history
