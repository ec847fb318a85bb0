"""MADE: autoregressive structure, normalisation by enumeration, the mask ensemble."""

import math

import pytest
import torch

from densitybench import models, paths
from densitybench.models.autoregressive import Autoregressive, conditional_log_prob
from conftest import all_binary, all_levels, perturb_, require_dataset


def jacobian(model, x):
    """d output_d / d x_j for one input, shape (D_out_units, D)."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    out = out.reshape(out.shape[0], -1)
    return torch.stack([torch.autograd.grad(out[0, i], x, retain_graph=True)[0][0].reshape(-1)
                        for i in range(out.shape[1])])


@pytest.mark.parametrize("hidden", [[16], [16, 12]])
@pytest.mark.parametrize("ordering", ["natural", "random"])
@pytest.mark.parametrize("direct", [False, True])
def test_autoregressive_jacobian(hidden, ordering, direct):
    D = 9
    model = models.create("made", (1, 3, 3), hidden_sizes=hidden, n_masks=3, ordering=ordering, direct=direct, seed=1)
    perturb_(model)
    x = torch.bernoulli(torch.full((2, 1, 3, 3), 0.5))
    for k in range(model.n_masks):
        model.set_mask(k)
        J = jacobian(model, x)
        order = model.orders[k]
        forbidden = order[None, :] >= order[:, None]  # input j not before output d
        assert J[forbidden].abs().max() == 0
        # and the structure is not trivially empty: some allowed entry is non-zero
        assert J[~forbidden].abs().max() > 0


def test_random_orderings_differ_between_mask_sets():
    model = models.create("made", (10,), hidden_sizes=[8], n_masks=4, ordering="random", seed=0)
    assert len({tuple(o.tolist()) for o in model.orders}) > 1
    for o in model.orders:
        assert sorted(o.tolist()) == list(range(10))


def test_categorical_outputs_are_autoregressive():
    model = models.create("made", (6,), hidden_sizes=[10], n_levels=4, ordering="random", seed=3)
    perturb_(model)
    x = torch.randint(0, 4, (2, 6)).float()
    J = jacobian(model, x)  # rows: unit k*D + d
    order = model.orders[0]
    for unit in range(J.shape[0]):
        d = unit % 6
        assert J[unit][order >= order[d]].abs().max() == 0


@pytest.mark.parametrize("n_masks,hidden", [(1, [20]), (1, [20, 20]), (5, [20]), (5, [20, 15])])
def test_sums_to_one_over_all_binary_vectors(n_masks, hidden):
    D = 10
    model = models.create("made", (D,), hidden_sizes=hidden, n_masks=n_masks, ordering="random", direct=True, seed=2)
    perturb_(model, seed=5)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(all_binary(D)), 0)
    assert abs(total.item()) < 1e-5


def test_three_level_outputs_sum_to_one():
    D, K = 7, 3
    model = models.create("made", (D,), hidden_sizes=[12], n_levels=K, n_masks=2, seed=4)
    perturb_(model)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(all_levels(D, K)), 0)
    assert abs(total.item()) < 1e-5


def test_ensemble_is_the_mixture_not_averaged_logits():
    D = 8
    model = models.create("made", (D,), hidden_sizes=[12], n_masks=4, seed=0)
    perturb_(model)
    x = all_binary(D)[::7]
    with torch.no_grad():
        per = torch.stack([model.log_prob_mask(x, k) for k in range(4)])
        expected = torch.logsumexp(per, 0) - math.log(4)
        assert torch.allclose(model.log_prob(x), expected, atol=1e-6)
        # averaging logits would give a different (unnormalised) number
        logits = []
        for k in range(4):
            model.set_mask(k)
            logits.append(model(x))
        model.set_mask(0)
        avg = -torch.nn.functional.binary_cross_entropy_with_logits(torch.stack(logits).mean(0), x, reduction="none").sum(1)
        assert not torch.allclose(avg, expected, atol=1e-3)


def test_masks_are_not_written_into_weights():
    model = models.create("made", (10,), hidden_sizes=[12], n_masks=3, resample_every=1, seed=0)
    w = model.hidden[0].weight.detach().clone()
    for _ in range(5):
        model.after_step()
    assert torch.equal(model.hidden[0].weight, w)
    assert model.mask_index == 5 % 3


def test_samples_follow_the_model():
    """A MADE whose first pixel has logit +3 and the rest follow: the sample mean of the first
    pixel is sigmoid(3) within a few standard errors."""
    D = 4
    model = models.create("made", (D,), hidden_sizes=[8], seed=0)
    perturb_(model, seed=1)
    with torch.no_grad():
        model.output.bias[0] = 3.0
    s = model.sample(4000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4000, D) and set(s.unique().tolist()) <= {0.0, 1.0}
    # marginal of the first pixel in the ordering is exact from the model
    with torch.no_grad():
        p_first = torch.sigmoid(model(torch.zeros(1, D))[0, 0]).item()
    se = math.sqrt(p_first * (1 - p_first) / 4000)
    assert abs(s[:, 0].mean().item() - p_first) < 4 * se
    # and the joint: empirical frequencies of the 16 vectors match exp(log_prob)
    probs = model.log_prob(all_binary(D)).exp()
    codes = (s * torch.tensor([8.0, 4, 2, 1])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).float() / 4000
    assert (freq - probs).abs().max() < 0.03


@pytest.mark.parametrize(
    "x,message",
    [
        (torch.zeros(2, 9), "shape"),
        (torch.zeros(2, 1, 3, 3, dtype=torch.long), "floating-point"),
        (torch.full((2, 1, 3, 3), 0.5), "0 or 1"),
    ],
)
def test_invalid_inputs_raise_clear_errors(x, message):
    model = models.create("made", (1, 3, 3), hidden_sizes=[8])
    with pytest.raises(ValueError, match=message):
        model.log_prob(x)


@pytest.mark.parametrize("n_levels", [2, 3])
def test_random_order_ensemble_samples_follow_the_mixture(n_levels):
    """Samples of 3 mask sets with random orderings (each drawn in its own ordering by the
    shared autoregressive sampler): the frequencies of all K^3 vectors match exp(log_prob)."""
    D, n = 3, 12000
    model = models.create("made", (D,), hidden_sizes=[10], n_masks=3, ordering="random", n_levels=n_levels, seed=2)
    perturb_(model, seed=4, scale=1.5)
    assert isinstance(model, Autoregressive)
    assert len({tuple(model.sampling_order(k).tolist()) for k in range(3)}) > 1  # the orderings differ
    grid = all_binary(D) if n_levels == 2 else all_levels(D, n_levels)
    with torch.no_grad():
        probs = model.log_prob(grid).exp()
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    codes = (s * n_levels ** torch.arange(D - 1, -1, -1)).sum(1).long()
    grid_codes = (grid * n_levels ** torch.arange(D - 1, -1, -1)).sum(1).long()
    freq = torch.bincount(codes, minlength=n_levels**D).float()[grid_codes] / n
    assert (freq - probs).abs().max() < 4 * (0.25 / n) ** 0.5


def test_checkpoint_round_trip(tmp_path):
    model = models.create("made", (10,), hidden_sizes=[12], n_masks=3, seed=7)
    perturb_(model)
    x = all_binary(10)[:50]
    models.save(model, tmp_path / "m.pt")
    again = models.load(tmp_path / "m.pt")
    assert torch.allclose(again.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize("n_masks", [1, 3])
def test_completion_draws_from_the_exact_conditional(n_masks):
    """Completing the last 2 of 4 pixels: the frequencies of the 4 completions match
    p(x_3, x_4 | x_1, x_2) of the (ensemble) model, computed by enumeration."""
    torch.manual_seed(0)
    model = models.create("made", (1, 2, 2), hidden_sizes=[12], n_masks=n_masks)
    perturb_(model, seed=3, scale=1.5)
    model.eval()
    prefix = torch.tensor([1.0, 0.0])
    tails = all_binary(2)
    full = torch.cat([prefix.expand(4, 2), tails], 1).reshape(4, 1, 2, 2)
    with torch.no_grad():
        p = torch.softmax(model.log_prob(full), 0)  # conditional over the 4 tails
    n = 20000
    x = full[:1].repeat(n, 1, 1, 1)
    out = model.complete(x, 2, generator=torch.Generator().manual_seed(1)).reshape(n, 4)
    assert torch.equal(out[:, :2], prefix.expand(n, 2))
    code = (out[:, 2] * 2 + out[:, 3]).long()
    freq = torch.bincount(code, minlength=4).float() / n
    assert torch.allclose(freq, p, atol=5 * (0.25 / n) ** 0.5)


def test_completion_needs_the_natural_ordering():
    model = models.create("made", (1, 2, 2), hidden_sizes=[8], n_masks=2, ordering="random")
    with pytest.raises(ValueError, match="natural"):
        model.complete(torch.zeros(1, 1, 2, 2), 2)


# --------------------------------------------------------------------------- the ensemble's masks


def switched_log_prob(model, x):
    """The ensemble's log-likelihood the plain way: switch the layers to each mask set in turn."""
    current = model.mask_index
    per_mask = []
    for k in range(model.n_masks):
        model.set_mask(k)
        per_mask.append(conditional_log_prob(model(x), x))
    model.set_mask(current)
    return torch.logsumexp(torch.stack(per_mask), 0) - math.log(model.n_masks), per_mask


def layer_masks(model):
    return [m.clone() for n, m in model.named_buffers() if n.endswith("mask")]


@pytest.mark.parametrize("hidden", [[24], [24, 16]])
@pytest.mark.parametrize("ordering", ["natural", "random"])
@pytest.mark.parametrize("n_levels", [2, 3])
@pytest.mark.parametrize("direct", [False, True])
def test_kept_masks_give_the_switched_ensemble_bitwise(hidden, ordering, n_levels, direct):
    D, K = 12, 5
    for seed in range(3):
        model = models.create("made", (D,), hidden_sizes=hidden, n_masks=K, ordering=ordering, n_levels=n_levels,
                              direct=direct, seed=seed)
        perturb_(model, seed=seed)
        model.set_mask(seed % K)
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, n_levels, (64, D), generator=g).float()
        expected, per_mask = switched_log_prob(model, x)
        before = layer_masks(model)

        kept = model.log_prob(x)
        assert model.mask_tensors(0)[0] is model.mask_tensors(0)[0]  # the masks were kept
        model.mask_cache_bytes = 0
        rebuilt = model.log_prob(x)
        assert model.mask_tensors(0)[0] is not model.mask_tensors(0)[0]  # built at each call
        assert torch.equal(kept, expected) and torch.equal(rebuilt, expected)
        for k in range(K):
            assert torch.equal(model.log_prob_mask(x, k), per_mask[k])
        # the layers still hold the current mask set
        assert model.mask_index == seed % K
        assert all(torch.equal(a, b) for a, b in zip(layer_masks(model), before))


def test_kept_masks_are_those_of_the_layers():
    model = models.create("made", (10,), hidden_sizes=[12, 8], n_masks=4, ordering="random", direct=True,
                          n_levels=3, seed=1)
    layers = [model.hidden[0], model.hidden[1], model.output, model.direct]
    for k in range(4):
        model.set_mask(k)
        kept = model.mask_tensors(k)
        assert len(kept) == len(layers)
        for layer, m in zip(layers, kept):
            assert m.dtype == layer.mask.dtype and m.is_contiguous() and torch.equal(m, layer.mask)


def test_kept_masks_follow_a_loaded_state_dict():
    hp = dict(hidden_sizes=[16], n_masks=3, ordering="random", direct=True)
    source = models.create("made", (10,), seed=1, **hp)
    target = models.create("made", (10,), seed=2, **hp)  # other orderings and degrees
    perturb_(source, seed=1)
    x = all_binary(10)[::9]
    target.log_prob(x)  # keeps the masks of its own orderings
    assert set(target.state_dict()) == set(source.state_dict())  # the kept masks are no state
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.log_prob(x), source.log_prob(x))
    for k in range(3):
        assert all(torch.equal(a.bool(), b) for a, b in zip(target.mask_tensors(k), source.connectivity(k)))


def test_kept_masks_follow_the_dtype():
    model = models.create("made", (10,), hidden_sizes=[16], n_masks=3, ordering="random", direct=True, seed=0)
    perturb_(model)
    x = all_binary(10)[::9]
    expected = model.log_prob(x)
    model.to(torch.float64)
    assert all(m.dtype == torch.float64 for m in model.mask_tensors(0))
    model.to(torch.float32)  # and back: the float64 masks are not used
    assert all(m.dtype == torch.float32 for m in model.mask_tensors(0))
    assert torch.equal(model.log_prob(x), expected)
    assert torch.equal(model.log_prob(x), switched_log_prob(model, x)[0])


def test_masks_above_the_memory_limit_are_not_kept():
    model = models.create("made", (10,), hidden_sizes=[16], n_masks=3, direct=True, seed=0)
    # 3 sets of 16 x 10 and 10 x 16 float32 masks, and one direct 10 x 10 mask (one ordering)
    size = (3 * (16 * 10 + 10 * 16) + 10 * 10) * 4
    model.mask_cache_bytes = size
    assert model.mask_tensors(1)[0] is model.mask_tensors(1)[0]
    assert model.mask_tensors(0)[-1] is model.mask_tensors(2)[-1]  # the shared direct mask
    model.mask_cache_bytes = size - 1
    assert model.mask_tensors(1)[0] is not model.mask_tensors(1)[0]
    with pytest.raises(ValueError, match="mask index"):
        model.mask_tensors(3)


def test_committed_ensemble_checkpoint_matches_switching():
    """The committed 32-mask MADE on 100 binarized MNIST test images: the kept masks give the
    numbers of switching the layers to each mask set in turn, bit for bit."""
    require_dataset("binarized_mnist")
    path = paths.results_dir("mnist") / "runs" / "made-32masks-s0" / "model.pt"
    if not path.exists():
        pytest.skip(f"{path} is not there")
    from densitybench import data

    model = models.load(path).eval()
    x = data.load("binarized_mnist").split("test")[:100]
    with torch.no_grad():
        assert torch.equal(model.log_prob(x), switched_log_prob(model, x)[0])
