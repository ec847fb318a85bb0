"""NADE, FVSBN, PixelCNN and the PixelRNNs: raster-order autoregressive structure, normalisation by
enumeration, sampling and completion."""

import pytest
import torch

from densitybench import models
from densitybench.models.autoregressive import dependency_map
from densitybench.models.pixelcnn import MaskedConv2d
from conftest import all_binary, all_levels, perturb_

#: small configurations of every raster model: name -> hyperparameters
SMALL = {
    "nade": dict(hidden_size=7),
    "fvsbn": dict(),
    "pixelcnn": dict(n_channels=6, n_blocks=2, output_channels=5),
    "pixel_lstm": dict(hidden_size=6, n_layers=2),
    "row_lstm": dict(hidden=5, n_layers=2, output_channels=5),
}


def make(name, shape, n_levels=2, seed=0):
    torch.manual_seed(seed)
    model = models.create(name, shape, n_levels=n_levels, **SMALL[name])
    perturb_(model, seed=seed, scale=0.3)
    return model.eval()


def full_jacobian(model, x):
    """d logits / d x for one image: (n_out, D, D) with [k, d, j] = d logit_{k,d} / d x_j."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    logits = logits.reshape(1, -1, model.n_dims)  # (1, n_out, D)
    rows = [torch.autograd.grad(logits[0, k, d], x, retain_graph=True)[0].reshape(-1)
            for k in range(logits.shape[1]) for d in range(model.n_dims)]
    return torch.stack(rows).reshape(logits.shape[1], model.n_dims, model.n_dims)


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("n_levels", [2, 4])
def test_conditional_d_ignores_inputs_at_and_after_d(name, n_levels):
    """On 4x4 images the gradient of output d with respect to every input j >= d is exactly 0."""
    model = make(name, (1, 4, 4), n_levels)
    x = torch.randint(0, n_levels, (1, 1, 4, 4)).float()
    J = full_jacobian(model, x)
    D = model.n_dims
    d, j = torch.meshgrid(torch.arange(D), torch.arange(D), indexing="ij")
    assert J[:, j >= d].abs().max() == 0
    # the structure is not empty: later pixels do depend on earlier ones
    assert J[:, j < d].abs().max() > 0
    # and the last pixel depends on its left neighbour and the pixel above it
    assert J[:, D - 1, D - 2].abs().max() > 0 and J[:, D - 1, D - 1 - 4].abs().max() > 0


@pytest.mark.parametrize("name", list(SMALL))
def test_binary_probabilities_sum_to_one(name):
    model = make(name, (1, 3, 4), seed=1)  # D = 12: all 4096 images
    x = all_binary(12).reshape(-1, 1, 3, 4)
    with torch.no_grad():
        lp = model.log_prob(x).double()
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-5


@pytest.mark.parametrize("name", list(SMALL))
def test_three_level_probabilities_sum_to_one(name):
    model = make(name, (1, 2, 4), n_levels=3, seed=2)  # D = 8: all 6561 images
    x = all_levels(8, 3).reshape(-1, 1, 2, 4)
    with torch.no_grad():
        lp = model.log_prob(x).double()
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-5


@pytest.mark.parametrize("name", list(SMALL))
def test_sampling_matches_the_model(name):
    """Samples of a 2x2 binary model follow its own probabilities (a chi-square-like check)."""
    model = make(name, (1, 2, 2), seed=3)
    x = all_binary(4).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        p = model.log_prob(x).exp()
    g = torch.Generator().manual_seed(0)
    s = model.sample(4000, generator=g).reshape(-1, 4)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    codes = (s * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / 4000
    se = (p * (1 - p) / 4000).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-3).all()


@pytest.mark.parametrize("name", list(SMALL))
def test_sampling_is_reproducible_and_in_support(name):
    model = make(name, (1, 3, 3), n_levels=5, seed=4)
    a = model.sample(6, generator=torch.Generator().manual_seed(7))
    b = model.sample(6, generator=torch.Generator().manual_seed(7))
    assert a.shape == (6, 1, 3, 3) and torch.equal(a, b)
    assert ((a == a.round()) & (a >= 0) & (a <= 4)).all()


@pytest.mark.parametrize("name", list(SMALL))
def test_completion_keeps_the_observed_pixels(name):
    model = make(name, (1, 4, 4), seed=5)
    x = torch.randint(0, 2, (8, 1, 4, 4)).float()
    out = model.complete(x, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :2], x[:, :, :2])
    assert not torch.equal(out[:, :, 2:], x[:, :, 2:])  # 64 random bits: equality is (almost) impossible
    with pytest.raises(ValueError, match="n_known"):
        model.complete(x, 17)


def test_completion_follows_the_conditional():
    """The last pixel given the other 15 is drawn with the model's conditional probability."""
    model = make("pixelcnn", (1, 4, 4), seed=6)
    x = torch.randint(0, 2, (1, 1, 4, 4)).float().repeat(3000, 1, 1, 1)
    with torch.no_grad():
        p1 = torch.sigmoid(model(x[:1])[0, -1]).item()
    out = model.complete(x, 15, generator=torch.Generator().manual_seed(1))
    freq = out[:, 0, 3, 3].mean().item()
    assert abs(freq - p1) < 5 * (p1 * (1 - p1) / 3000) ** 0.5 + 1e-3


def test_masked_convolution_masks():
    a = MaskedConv2d(1, 1, 3, "A").mask[0, 0]
    b = MaskedConv2d(1, 1, 3, "B").mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")


def test_pixelcnn_has_a_blind_spot_and_the_row_lstm_does_not():
    """Stacked masked 3x3 convolutions miss pixels up and to the right; the Row LSTM's state
    carries them (its receptive field is the whole triangle above)."""
    H = W = 10
    pos = 5 * W + 2  # pixel (5, 2)
    cnn = make("pixelcnn", (1, H, W), seed=7)
    cnn_map = dependency_map(cnn, pos)[0]
    rnn = make("row_lstm", (1, H, W), seed=7)
    rnn_map = dependency_map(rnn, pos)[0]
    # (0, 9): four rows up and seven to the right: beyond the 7x7 first layer and the 3x3 stack
    assert cnn_map[0, 9] == 0 and rnn_map[0, 9] > 0
    for m in (cnn_map, rnn_map):
        assert m.reshape(-1)[pos:].abs().max() == 0


def test_nade_forward_equals_the_definition():
    """The cumulative-sum pass equals the per-pixel definition a_{d+1} = a_d + W_{:,d} x_d."""
    model = make("nade", (6,), seed=8)
    x = torch.randint(0, 2, (3, 6)).float()
    logits = model(x)
    for d in range(6):
        a = model.c + x[:, :d] @ model.W[:d]
        expected = torch.sigmoid(a) @ model.V[d, 0] + model.b[d, 0]
        torch.testing.assert_close(logits[:, d], expected)


@pytest.mark.parametrize("D", [6, 37])
def test_nade_backward_pass_equals_autograd(D, monkeypatch):
    """The hand-written backward pass of NADE's conditionals against autograd's numerical check,
    for every input (pixels included), with Bernoulli and softmax outputs. D = 37 takes the
    blocked cumulative sum with a remainder (two blocks of 16, then 5 rows), and the tiny
    chunk size splits the batch of 5 into chunks of 2, 2 and 1."""
    from densitybench.models import nade

    monkeypatch.setattr(nade, "_CHUNK_ELEMENTS", 2 * D * 5)
    g = torch.Generator().manual_seed(0)
    for K in (1, 3):
        v = torch.rand(5, D, generator=g, dtype=torch.float64).requires_grad_(True)
        params = [torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(True)
                  for shape in ((D, 5), (5,), (D, K, 5), (D, K))]
        assert torch.autograd.gradcheck(nade._Conditionals.apply, (v, *params))


@pytest.mark.parametrize("rows", [1, 5, 16, 32, 37, 784])
def test_blocked_cumulative_sum_equals_torch(rows):
    from densitybench.models.nade import _cumsum_

    x = torch.randn(rows, 3, 4, generator=torch.Generator().manual_seed(rows), dtype=torch.float64)
    torch.testing.assert_close(_cumsum_(x.clone()), x.cumsum(0))


def test_input_validation():
    model = make("nade", (1, 2, 2))
    with pytest.raises(ValueError, match="binary"):
        model.log_prob(torch.full((1, 1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="single-channel"):
        models.create("pixelcnn", (3, 4, 4))


def test_fvsbn_is_a_logistic_regression_on_the_preceding_pixels():
    model = make("fvsbn", (1, 2, 3))
    x = torch.randint(0, 2, (5, 1, 2, 3)).float()
    flat = x.reshape(5, -1)
    W, b = model.W[0], model.b[0]
    for d in range(6):
        want = b[d] + flat[:, :d] @ W[d, :d]
        torch.testing.assert_close(model(x)[:, d], want)
    assert model.n_params() == 6 * 5 // 2 + 6
