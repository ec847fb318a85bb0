"""The training loop written for a GPU, checked on a CPU.

Properties: within an epoch nothing reads a tensor back to the host (the losses are summed on
the device and read once an epoch), yet a non-finite training loss is still reported with its
step; the splits are checked once, whole, so that a bad value anywhere in them is refused
before training, while the minibatches skip the per-batch pass over the values; the fused
Adam is used exactly where a model declares it measured faster and leaves training
deterministic; the float32 precision settings are untouched on a CPU; the mean NLL read once
equals the mean of the per-example values.
"""

from __future__ import annotations

import pytest
import torch

from densitybench import data, models, train
from conftest import LossTurnsBad


@pytest.fixture(scope="module")
def digits():
    return data.load("digits_binary")


class HostReads:
    """Counts the reads of a tensor's value to the host (``item``, ``float``, ``int``, ``bool``,
    ``tolist``) while installed."""

    NAMES = ("item", "__float__", "__int__", "__bool__", "tolist")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counting(t, *a, _original=original, **k):
                self.count += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counting)


def test_an_epoch_reads_nothing_back_per_step(digits, monkeypatch):
    """1,197 training images in batches of 25: 48 steps an epoch, and a handful of reads per
    epoch (the running loss, its divergence flag, the validation value), not one a step."""
    model = models.create("made", digits.image_shape, hidden_sizes=[16], init_seed=0)
    train_x, valid_x = digits.split("train"), digits.split("valid")
    steps_per_epoch = -(-train_x.shape[0] // 25)
    reads = HostReads(monkeypatch)
    history = train.fit(model, train_x, valid_x, epochs=2, batch_size=25, device="cpu", progress=False)
    assert len(history.epochs) == 2
    assert reads.count <= 2 * 8, f"{reads.count} reads in 2 epochs of {steps_per_epoch} steps"


def test_the_first_non_finite_step_is_named_though_read_at_the_end_of_the_epoch(digits):
    """The loss turns infinite at step 30 of the second epoch (step 78 of the run, 48 steps an
    epoch) and stays non-finite; the error names the first: epoch 2, step 30, ``inf``."""
    model = LossTurnsBad(digits.image_shape, bad_step=48 + 30, factor=float("inf"))
    with pytest.raises(train.TrainingDiverged, match=r"run r: the training loss is inf at epoch 2, step 30;"):
        train.fit(model, digits.split("train"), digits.split("valid"), epochs=3, batch_size=25, device="cpu",
                  progress=False, name="r")


@pytest.mark.parametrize("split", ["train", "valid"])
def test_a_bad_value_anywhere_in_a_split_is_refused_before_training(digits, split):
    """The per-batch value check is skipped only because the whole split was checked first."""
    model = models.create("made", digits.image_shape, hidden_sizes=[8], init_seed=0)
    x = {"train": digits.split("train").clone(), "valid": digits.split("valid").clone()}
    x[split][-1, 0, -1, -1] = 0.5  # the last pixel of the last image: in no early batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="binary"):
        train.fit(model, x["train"], x["valid"], epochs=1, batch_size=50, device="cpu", progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "trained before refusing"


def test_trusted_inputs_skip_only_the_value_pass_and_nest():
    model = models.create("made", (1, 3, 3), hidden_sizes=[8], init_seed=0)
    half = torch.full((2, 1, 3, 3), 0.5)
    with pytest.raises(ValueError, match="binary"):
        model.log_prob(half)
    with model.trusted_inputs():
        with model.trusted_inputs():
            model.log_prob(half)  # no pass over the values
        model.log_prob(half)  # the outer block still holds
        with pytest.raises(ValueError, match="shape"):
            model.log_prob(torch.zeros(2, 1, 3, 4))  # shapes are still checked
        with pytest.raises(ValueError, match="floating-point"):
            model.log_prob(torch.zeros(2, 1, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="binary"):
        model.log_prob(half)


def test_fused_adam_where_declared_and_training_stays_deterministic(digits):
    declared = {name: cls.fused_adam_on_cpu for name, cls in models.base.REGISTRY.items()}
    assert any(declared.values()) and not all(declared.values())
    for name, cls in models.base.REGISTRY.items():
        model = models.create(name, (1, 4, 4), **cls.conformance_hparams((1, 4, 4)))
        for opt in model.configure_optimizers(1e-3) if model.trained_by_gradient else []:
            assert bool(opt.defaults.get("fused")) == cls.fused_adam_on_cpu, name

    def run():
        model = models.create("made", digits.image_shape, hidden_sizes=[16], init_seed=0)
        h = train.fit(model, digits.split("train"), digits.split("valid"), epochs=2, batch_size=50, device="cpu",
                      progress=False, seed=3)
        return [e["train_loss"] for e in h.epochs], model.state_dict()

    (loss_a, state_a), (loss_b, state_b) = run(), run()
    assert loss_a == loss_b and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_float32_precision_is_left_alone_on_a_cpu():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    with train.float32_matmul("high", "cpu"):
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf32_only_within_training_on_cuda():
    before = torch.get_float32_matmul_precision()
    with train.float32_matmul("high", "cuda"):
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        with train.float32_matmul("highest", "cuda"):
            assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == before


def test_the_mean_nll_read_once_is_the_mean_of_the_per_example_values(digits):
    model = models.create("made", digits.image_shape, hidden_sizes=[16], init_seed=0).eval()
    x = digits.split("test")
    with torch.no_grad():
        per_example = -model.log_prob(x).double()
    for batch_size in (None, 7, 10_000):
        assert train.mean_nll(model, x, batch_size=batch_size) == pytest.approx(per_example.mean().item(), rel=1e-12)
    assert train.eval_batch_size("cpu") < train.eval_batch_size("cuda")
