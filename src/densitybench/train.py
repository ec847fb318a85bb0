"""One training loop for every model, resumable after a kill.

Gradient-trained models: Adam, minibatches, early stopping on the validation criterion with
patience, the best weights restored. Models fitted in closed form or by EM
(``trained_by_gradient = False``) are delegated to their own ``fit_closed_form`` with the
same data and the same time budget (``max_seconds``, which their EM loop checks after every
iteration), and return the same per-epoch history.

Resuming. Given a ``checkpoint`` path, :func:`fit` writes its whole state there atomically at
the end of every epoch and every ``checkpoint_seconds`` within an epoch: the model (its
counters included, see the models' state dicts), the optimisers and schedulers, the epoch and
the step within it with that epoch's shuffling, the running loss, the best weights and best
validation value, the patience counter, the training time spent, the history (with the
monitored numbers, see below) and the names of the monitored sets, and every random state
(Python, NumPy, torch and the shuffling generator). Started again with the same
arguments, it resumes from that state, so a run killed at any point ends, on the same CPU,
with weights and numbers bitwise identical to an uninterrupted run.

A ``deadline`` (an absolute time, e.g. the end of a window of machine time) is not a setting of
the run: reaching it writes the resumable state and returns a history marked ``interrupted``,
with no stop reason, so that the next call resumes the run; the run's own budget
(``max_seconds``, counted over every call) and its stop reasons are unchanged by it.

Monitoring. ``monitor`` names further held-out sets (``{"test": x}``) whose value of the
validation criterion is written into each epoch's entry (``test_loss`` beside ``train_loss``
and ``valid_loss``) and never read: it selects nothing (neither the stopping epoch nor the
best one), its evaluation leaves every random state as it found it and its time is not
counted as training time, so the weights and the other numbers are those of a run without it.

Devices. The same loop runs on a CPU and on a GPU, written for the GPU: the splits are checked
once, whole, and moved to the device once (a continuous model's minibatches are dequantized on
the host, from the run's generator, then moved); the minibatches are drawn there and the model
checks only their shape (:meth:`~densitybench.models.base.DensityModel.trusted_inputs`); the
training losses are summed on the device and a non-finite one is noted there, both read when
the epoch ends or its state is written, so nothing waits for the device within an epoch (but a
GAN, which keeps a trace of its losses). On CUDA, training's float32 matrix products may use
TF32 and Adam is fused; every evaluation (validation, monitored sets, :func:`mean_nll`) runs in
full float32 and in large batches (:func:`eval_batch_size`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import atomic
from .data import DEQUANTIZATION_SEED, dequantize as dequantize_levels
from .models.base import DensityModel

#: why training stopped, as records state it
STOP_REASONS = ("patience", "epoch_cap", "time_budget", "converged", "iteration_cap")


class TrainingDiverged(FloatingPointError):
    """A training loss or a validation value was not finite."""


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
    """Per-epoch record: ``epoch``, ``train_loss``, ``valid_loss``, ``seconds`` (and more).

    ``stop_reason`` is one of :data:`STOP_REASONS`; ``improving`` says whether the
    validation value was still falling over the last epochs (see :func:`still_improving`).
    ``interrupted`` says that training stopped at a ``deadline`` before it ended (then
    ``stop_reason`` is None and the checkpoint holds the state to resume from); ``resumed_from``
    is ``{"epoch", "step"}`` of the checkpoint this call started from (None for a fresh start).
    Neither is part of a record (:meth:`as_dict`).
    """

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: float = float("inf")
    train_seconds: float = 0.0
    stopped_early: bool = False
    stopped_by_budget: bool = False
    stop_reason: str | None = None
    interrupted: bool = False
    resumed_from: dict | None = None

    @property
    def improving(self) -> bool:
        return still_improving(self.epochs)

    def as_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_valid": self.best_valid,
            "train_seconds": self.train_seconds,
            "stopped_early": self.stopped_early,
            "stopped_by_budget": self.stopped_by_budget,
            "stop_reason": self.stop_reason,
            "improving": self.improving,
        }


def still_improving(epochs: list[dict], window: int = 5) -> bool:
    """Whether the best validation value of the last ``window`` epochs beats every earlier one."""
    values = [e["valid_loss"] for e in epochs]
    if len(values) <= window:
        return len(values) > 0
    return min(values[-window:]) < min(values[:-window])


def eval_batch_size(device: str | torch.device) -> int:
    """Examples per ``log_prob`` call when evaluating a split: 1,000 on a CPU (where larger
    batches gain nothing), 10,000 on a GPU (fewer, fuller kernels)."""
    return 10_000 if torch.device(device).type == "cuda" else 1_000


@contextlib.contextmanager
def float32_matmul(precision: str, device: str | torch.device):
    """Within the block, float32 matrix products and convolutions on CUDA use ``precision``
    (``"highest"``: full float32; ``"high"``: TF32 allowed); the previous settings are restored
    on exit. Nothing changes on another device."""
    if torch.device(device).type != "cuda":
        yield
        return
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.allow_tf32 = precision != "highest"
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


@torch.no_grad()
def mean_nll(model: DensityModel, x: torch.Tensor, batch_size: int | None = None, device=None) -> float:
    """Mean of ``-log_prob`` over ``x`` in batches (eval mode, full float32), summed in float64
    on the device and read once. ``batch_size`` defaults to :func:`eval_batch_size`."""
    device = device or model.device
    batch_size = batch_size or eval_batch_size(device)
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=device)
        with float32_matmul("highest", device):
            for b in x.split(batch_size):
                total -= model.log_prob(b.to(device)).double().sum()
    finally:
        model.train(was_training)
    return float(total) / x.shape[0]


# --------------------------------------------------------------------------- checkpoints


def _rng_states(g: torch.Generator) -> dict:
    out = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
           "shuffle": g.get_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_states(states: dict, g: torch.Generator) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    g.set_state(states["shuffle"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def write_progress(path: Path, state: dict) -> None:
    """A small JSON beside the checkpoint, for listing a partial run without loading it."""
    atomic.write_json(path, {"epoch": state["epoch"], "step": state["step"], "elapsed_seconds": state["elapsed"],
                             "best_epoch": state["best_epoch"],
                             "best_valid": state["best_valid"] if math.isfinite(state["best_valid"]) else None})


def progress_path(checkpoint: str | os.PathLike) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".progress.json")


# --------------------------------------------------------------------------- training


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
    checkpoint: str | os.PathLike | None = None,
    checkpoint_seconds: float = 300.0,
    name: str | None = None,
    deadline: float | None = None,
    monitor: dict[str, torch.Tensor] | None = None,
) -> History:
    """Train ``model`` on ``train`` with early stopping on ``valid``.

    Args:
        model: a :class:`DensityModel`; trained in place (moved to ``device``).
        train, valid: tensors ``(N, *data_shape)`` in the model's support.
        epochs: most passes over ``train`` (at least 1).
        batch_size, lr, weight_decay: Adam's settings.
        lr_step, lr_gamma: multiply the learning rate by ``lr_gamma`` every ``lr_step``
            epochs (no schedule when None).
        patience: epochs without a better validation value before stopping.
        clip_grad_norm: clip the gradient's norm to this value (none when None).
        dequantize: for a continuous model of ``K``-level data, ``K``: ``train`` and
            ``valid`` hold the levels; every training minibatch is dequantized afresh as
            ``(x + u) / K`` and ``valid`` once with the fixed seed
            :data:`densitybench.data.DEQUANTIZATION_SEED`. A model fitted in closed form
            gets one draw of ``train`` seeded by ``seed`` and the same ``valid`` draw.
        max_seconds: a wall-clock budget of training time, checked after every optimiser
            step: once spent, the epoch in progress ends there, is validated, and training
            stops (``stop_reason == "time_budget"``). A model fitted by EM checks it after
            every EM iteration and stops there with the same stop reason.
        seed: seeds the shuffling and the model's own randomness.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: show a tqdm bar over epochs.
        valid_fn: ``valid_fn(model, valid) -> float``, the validation criterion (default:
            the model's own :meth:`~DensityModel.validation_criterion` when it has one, else
            the mean NLL of ``valid``).
        checkpoint: where the resumable state is written (and resumed from when present).
        checkpoint_seconds: also write it within an epoch after this many seconds.
        name: the run's name, for error messages.
        deadline: an absolute time (``time.time()``) when this call must stop, checked before
            every epoch and after every optimiser step: once reached, the state is written to
            ``checkpoint`` (within the epoch if need be) and the history is returned with
            ``interrupted`` set and no stop reason; called again, training resumes there. Unlike
            ``max_seconds`` it is no property of the run. A model fitted in closed form cannot
            stop midway: its fit gets the time left as its budget and, when cut short by the
            deadline rather than by its own budget, is returned ``interrupted`` (to be fitted
            again from the start).
        monitor: ``{name: tensor (N, *data_shape)}``, held-out sets prepared like ``valid``
            (dequantized once with the same fixed seed): after every epoch, ``valid_fn`` of
            each is written into the epoch's entry as ``<name>_loss`` (None where not finite).
            A reported number only: it never decides when to stop or which epoch is kept, its
            evaluation restores every random state and its seconds are not training time (each
            entry's ``monitor_seconds``). Only for a model trained by gradient.

    Returns:
        The :class:`History`; the model holds the weights of the best validation epoch (when
        ``interrupted``, the weights at the deadline).

    Raises:
        ValueError: ``epochs < 1``; a ``monitor`` name that is not an identifier or is
            ``train``/``valid``, a ``monitor`` for a model fitted in closed form, or a
            ``checkpoint`` written with other monitored sets than ``monitor``.
        TrainingDiverged: a training loss or validation value is not finite; the message
            names the run, the epoch and the last finite values.
    """
    from tqdm import tqdm

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    label = name or type(model).__name__
    monitor = dict(monitor or {})
    for key in monitor:
        if not (isinstance(key, str) and key.isidentifier()) or key in ("train", "valid"):
            raise ValueError(f"run {label}: monitor names must be identifiers other than 'train' and 'valid', "
                             f"got {key!r}")
    if monitor and not model.trained_by_gradient:
        raise ValueError(f"run {label}: {type(model).__name__} is fitted in closed form, without epochs to "
                         f"monitor; {', '.join(monitor)} cannot be evaluated after each epoch")
    dev = resolve_device(device)
    model.to(dev)
    history = History()
    if not model.trained_by_gradient:
        t0 = time.perf_counter()
        if deadline is not None and time.time() >= deadline:
            history.interrupted = True
            return history
        if dequantize:  # one draw for fitting (seeded by `seed`), the fixed draw for validation
            train = dequantize_levels(train, dequantize, torch.Generator().manual_seed(seed))
            valid = dequantize_levels(valid, dequantize, torch.Generator().manual_seed(DEQUANTIZATION_SEED))
        budget = None if max_seconds is None else max(0.0, max_seconds - (time.perf_counter() - t0))
        # the deadline binds when it leaves less time than the run's own budget
        left = None if deadline is None else max(0.0, deadline - time.time())
        cut_by_deadline = left is not None and (budget is None or left < budget)
        history.epochs = model.fit_closed_form(train, valid, progress=progress,
                                               max_seconds=left if cut_by_deadline else budget)
        history.train_seconds = time.perf_counter() - t0
        best = min(history.epochs, key=lambda e: e["valid_loss"])
        history.best_epoch, history.best_valid = best["epoch"], best["valid_loss"]
        history.stop_reason = closed_form_stop_reason(model, history.epochs)
        if cut_by_deadline and history.stop_reason == "time_budget":  # the deadline's, not the run's
            history.stop_reason, history.interrupted = None, True
            return history
        history.stopped_by_budget = history.stop_reason == "time_budget"
        _check_finite(label, history.epochs)
        return history

    if valid_fn is None:
        def valid_fn(m, v):  # the model's own criterion where it declares one, else the mean NLL
            own = getattr(m, "validation_criterion", None)
            value = own(v) if own is not None else None
            return mean_nll(m, v, device=dev) if value is None else value
    g = seed_everything(seed)
    if dequantize:
        valid = dequantize_levels(valid, dequantize, torch.Generator().manual_seed(DEQUANTIZATION_SEED))
        monitor = {k: dequantize_levels(x, dequantize, torch.Generator().manual_seed(DEQUANTIZATION_SEED))
                   for k, x in monitor.items()}
    # every split checked once, whole, then moved to the device once (a dequantized model's
    # training batches are drawn on the host, where the run's generator lives)
    if not dequantize:
        train = model.check_input(train).to(dev)
    valid = model.check_input(valid).to(dev)
    monitor = {k: model.check_input(x).to(dev) for k, x in monitor.items()}
    optimizers = model.configure_optimizers(lr, weight_decay)
    scheds = [torch.optim.lr_scheduler.StepLR(o, lr_step, lr_gamma) for o in optimizers] if lr_step else []
    state = {"epoch": 0, "step": 0, "perm": None, "total": 0.0, "count": 0, "best_state": None,
             "best_valid": float("inf"), "best_epoch": 0, "bad": 0, "elapsed": 0.0, "history": [],
             "epoch_seconds": 0.0, "stop_reason": None, "monitor": sorted(monitor)}
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=dev, weights_only=False)
        model.load_state_dict(saved["model"])
        for o, s in zip(optimizers, saved["optimizers"]):
            o.load_state_dict(s)
        for sc, s in zip(scheds, saved["schedulers"]):
            sc.load_state_dict(s)
        _set_rng_states(saved["rng"], g)
        saved.setdefault("monitor", [])  # written before monitoring existed: nothing monitored
        if saved["monitor"] != state["monitor"]:
            raise ValueError(f"run {label}: the checkpoint {ckpt} monitors {saved['monitor'] or 'nothing'}, this "
                             f"call {state['monitor'] or 'nothing'}: resuming would mix the two in one history")
        state.update({k: saved[k] for k in state})
        history.resumed_from = {"epoch": state["epoch"], "step": state["step"]}

    def save() -> None:
        if ckpt is None:
            return
        atomic.save_torch(ckpt, {"model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                     "schedulers": [s.state_dict() for s in scheds], "rng": _rng_states(g), **state})
        write_progress(progress_path(ckpt), state)

    n_train = train.shape[0]
    t_mark = time.perf_counter()  # elapsed training time = state["elapsed"] + (now - t_mark)

    def elapsed() -> float:
        return state["elapsed"] + time.perf_counter() - t_mark

    last_save = time.perf_counter()
    bar = tqdm(total=epochs, initial=state["epoch"], desc=label, disable=not progress, mininterval=2)
    last_finite = {"train": None, "valid": None}
    for e in state["history"]:
        last_finite = {"train": e["train_loss"], "valid": e["valid_loss"]}

    def past_deadline() -> bool:
        return deadline is not None and time.time() >= deadline

    # the epoch's running loss and its first non-finite step, kept on the device
    total = torch.zeros((), dtype=torch.float64, device=dev)
    bad_step = torch.zeros((), dtype=torch.int64, device=dev)
    bad_value = torch.zeros((), dtype=torch.float64, device=dev)

    def read_losses(epoch: int) -> None:
        """Bring the device's running loss into ``state`` (one wait for the device); raise
        at the first non-finite training loss of the epoch."""
        step = int(bad_step)
        if step:
            raise TrainingDiverged(
                f"run {label}: the training loss is {float(bad_value)} at epoch {epoch}, "
                f"step {step}; last finite values: training loss {last_finite['train']}, validation "
                f"{last_finite['valid']}")
        state["total"] = float(total)

    while state["stop_reason"] is None and state["epoch"] < epochs:
        if past_deadline():  # the state of the last epoch's end is already written
            history.interrupted = True
            break
        epoch = state["epoch"] + 1
        if state["perm"] is None:  # a new epoch: its shuffling, drawn from the run's generator
            state["perm"] = torch.randperm(n_train, generator=g)
            state["step"], state["total"], state["count"], state["epoch_seconds"] = 0, 0.0, 0, 0.0
        t_epoch = time.perf_counter() - state["epoch_seconds"]
        model.train()
        batches = state["perm"].to(train.device).split(batch_size)
        out_of_time = False
        total.fill_(state["total"])
        bad_step.zero_()
        bad_value.zero_()
        for i in range(state["step"], len(batches)):
            idx = batches[i]
            x = train[idx]
            if dequantize:
                x = dequantize_levels(x, dequantize, g).to(dev)
            with model.trusted_inputs(), float32_matmul("high", dev):
                loss = model.training_step(x, optimizers, clip_grad_norm)
            loss = torch.as_tensor(loss).detach().to(dev, torch.float64)
            # the first non-finite step and its loss, noted without waiting for the device
            first_bad = (bad_step == 0) & ~torch.isfinite(loss)
            bad_step.copy_(torch.where(first_bad, i + 1, bad_step))
            bad_value.copy_(torch.where(first_bad, loss, bad_value))
            model.after_step()
            total.add_(loss * len(idx))
            state["count"] += len(idx)
            state["step"] = i + 1
            if max_seconds is not None and elapsed() >= max_seconds:
                out_of_time = True
                break
            if past_deadline():
                break
            if ckpt is not None and time.perf_counter() - last_save >= checkpoint_seconds and i + 1 < len(batches):
                read_losses(epoch)
                state["epoch_seconds"] = time.perf_counter() - t_epoch
                state["elapsed"], t_mark = elapsed(), time.perf_counter()
                save()
                last_save = time.perf_counter()
        read_losses(epoch)
        if not out_of_time and past_deadline():
            # stop within the epoch: its state (shuffling, step, running loss) resumes next time
            state["epoch_seconds"] = time.perf_counter() - t_epoch
            state["elapsed"], t_mark = elapsed(), time.perf_counter()
            save()
            history.interrupted = True
            break
        for sched in scheds:
            sched.step()
        with model.trusted_inputs(), float32_matmul("highest", dev):
            v = float(valid_fn(model, valid))
        train_loss = state["total"] / state["count"]
        if not math.isfinite(v):
            raise TrainingDiverged(
                f"run {label}: the validation value is {v} after epoch {epoch}; last finite values: "
                f"training loss {train_loss}, validation {last_finite['valid']}")
        last_finite = {"train": train_loss, "valid": v}
        row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": v}
        if monitor:
            t_monitor, rng = time.perf_counter(), _rng_states(g)
            for key, x in monitor.items():
                with model.trusted_inputs(), float32_matmul("highest", dev):
                    value = float(valid_fn(model, x))
                row[f"{key}_loss"] = value if math.isfinite(value) else None
            _set_rng_states(rng, g)
            row["monitor_seconds"] = time.perf_counter() - t_monitor
            t_mark += row["monitor_seconds"]  # no training time: the time budget is spent as without it
            t_epoch += row["monitor_seconds"]
        row.update({"seconds": time.perf_counter() - t_epoch, "elapsed_seconds": elapsed()})
        if state["step"] < len(batches):
            row["steps"], row["partial"] = state["step"], True
        state["history"].append(row)
        state["epoch"], state["perm"], state["step"] = epoch, None, 0
        bar.update(1)
        bar.set_postfix(train=f"{train_loss:.2f}", valid=f"{v:.2f}")
        if v < state["best_valid"]:
            state["best_valid"], state["best_epoch"], state["bad"] = v, epoch, 0
            state["best_state"] = copy.deepcopy(model.state_dict())
        else:
            state["bad"] += 1
            if state["bad"] >= patience:
                state["stop_reason"] = "patience"
        if state["stop_reason"] is None:
            if out_of_time or (max_seconds is not None and elapsed() >= max_seconds and epoch < epochs):
                state["stop_reason"] = "time_budget"
            elif epoch >= epochs:
                state["stop_reason"] = "epoch_cap"
        state["elapsed"], t_mark = elapsed(), time.perf_counter()
        save()
        last_save = time.perf_counter()
    bar.close()
    if state["best_state"] is not None and not history.interrupted:
        model.load_state_dict(state["best_state"])
    model.eval()
    history.epochs = state["history"]
    history.best_epoch, history.best_valid = state["best_epoch"], state["best_valid"]
    history.train_seconds = state["elapsed"]
    history.stop_reason = state["stop_reason"]
    history.stopped_early = state["stop_reason"] == "patience"
    history.stopped_by_budget = state["stop_reason"] == "time_budget"
    return history


def closed_form_stop_reason(model, epochs: list[dict]) -> str:
    """Why an EM fit stopped: the time budget (its last row says ``stopped_by_budget``), its
    own convergence test (``converged``), its iteration cap, or (a fit with ``patience``) a
    validation NLL that stopped improving."""
    last = epochs[-1]
    if last.get("stopped_by_budget"):
        return "time_budget"
    if "converged" in last:
        return "converged" if last["converged"] else "iteration_cap"
    if hasattr(model, "patience") and last["epoch"] < getattr(model, "max_iter", float("inf")):
        return "patience"
    return "iteration_cap" if hasattr(model, "max_iter") else "converged"


def _check_finite(label: str, epochs: list[dict]) -> None:
    last = None
    for e in epochs:
        for k in ("train_loss", "valid_loss"):
            if not math.isfinite(e[k]):
                raise TrainingDiverged(f"run {label}: {k} is {e[k]} at epoch {e['epoch']}; last finite values: {last}")
        last = {k: e[k] for k in ("train_loss", "valid_loss")}
