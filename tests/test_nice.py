"""NICE: invertibility, the log-determinant, normalisation, the partition, the priors, training."""

import doctest
import math

import pytest
import scipy.stats
import torch

from densitybench import data, models, train
from densitybench.models import nice
from conftest import perturb_

SHAPE = (1, 2, 3)  # D = 6


def small(shape=SHAPE, seed=0, **kw) -> nice.NICE:
    """A small NICE moved away from its identity initialisation (couplings and scaling)."""
    torch.manual_seed(seed)
    hp = {"n_couplings": 4, "hidden_size": 16, "n_hidden_layers": 2, **kw}
    model = models.create("nice", shape, **hp).double()
    perturb_(model, seed=seed)
    with torch.no_grad():  # and a scaling whose log-determinant is surely not 0
        model.scaling.s.add_(torch.linspace(0.2, 0.5, model.n_dims))
    return model


@pytest.mark.parametrize("partition", ["alternate", "half"])
@pytest.mark.parametrize("seed", [0, 1])
def test_inverse_round_trips(partition, seed):
    model = small(partition=partition, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((64, *SHAPE), generator=g, dtype=torch.float64)
    with torch.no_grad():
        h, _ = model(x)
        assert h.shape == (64, 6)
        # the flow is far from the identity, so the round trip is not trivially exact
        assert (h - x.reshape(64, 6)).abs().max() > 0.5
        assert torch.allclose(model.inverse(h), x, atol=1e-10)
        h2 = 3 * torch.randn((64, 6), generator=g, dtype=torch.float64)
        x2 = model.inverse(h2)
        assert x2.shape == (64, *SHAPE)
        assert torch.allclose(model(x2)[0], h2, atol=1e-10)


def test_coupling_layers_round_trip_in_nflows_style():
    model = small()
    y = torch.randn(10, 6, dtype=torch.float64)
    for layer in list(model.couplings) + [model.scaling]:
        with torch.no_grad():
            z, ld = layer(y)
            back, ld_inv = layer.inverse(z)
        assert ld.shape == (10,) and ld_inv.shape == (10,)
        assert torch.allclose(back, y, atol=1e-12)
        assert torch.allclose(ld + ld_inv, torch.zeros(10, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("partition", ["alternate", "half"])
@pytest.mark.parametrize("seed", [0, 3])
def test_logabsdet_equals_autograd(partition, seed):
    model = small(partition=partition, seed=seed)
    x = torch.rand((3, *SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    _, logabsdet = model(x)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda v: model(v.reshape(1, *SHAPE))[0][0], x[i].reshape(-1))
        assert J.shape == (6, 6)
        expected = torch.linalg.slogdet(J).logabsdet
        assert abs(logabsdet[i].item() - expected.item()) < 1e-10
    # non-trivial: the couplings mix dimensions and the scaling has a log-determinant
    assert (J - torch.diag(torch.diagonal(J))).abs().max() > 0.1
    assert abs(logabsdet[0].item()) > 0.1


@pytest.mark.parametrize("prior", ["logistic", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_density_integrates_to_one_in_2d(prior, seed):
    model = small(shape=(2,), prior=prior, seed=seed, hidden_size=8)
    # f is a homeomorphism, so the image under f^{-1} of a box in h-space is bounded by the
    # image of the box's edges; the box holds all but ~1e-10 of the prior's mass
    t = 25.0 if prior == "logistic" else 7.0
    s = torch.linspace(-t, t, 2001, dtype=torch.float64)
    c = torch.full_like(s, t)
    edges = torch.cat([torch.stack(p, 1) for p in [(s, c), (s, -c), (c, s), (-c, s)]])
    with torch.no_grad():
        x_edges = model.inverse(edges)
        lo, hi = x_edges.min(0).values, x_edges.max(0).values
        g0 = torch.linspace(lo[0], hi[0], 700, dtype=torch.float64)
        g1 = torch.linspace(lo[1], hi[1], 700, dtype=torch.float64)
        density = model.log_prob(torch.cartesian_prod(g0, g1)).exp()
    integral = density.sum() * (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert abs(integral.item() - 1) < 2e-3
    # the scaling's log-determinant matters: without it the integral would be off by this much
    assert abs(math.exp(-model.scaling.s.sum().item()) - 1) > 0.1


@pytest.mark.parametrize("partition", ["alternate", "half"])
@pytest.mark.parametrize("D", [6, 7])
def test_partition_alternates_and_every_dimension_is_changed(partition, D):
    model = small(shape=(D,), partition=partition)
    eye = torch.eye(D, dtype=torch.float64)
    y = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    changed_sets, kept_sets = [], []
    for layer in model.couplings:
        J = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], y)
        off = (J - eye).abs() > 0
        # additive coupling: only rows in I_2 differ from the identity, only through columns in I_1
        changed = set(off.any(1).nonzero().flatten().tolist())
        sources = set(off.any(0).nonzero().flatten().tolist())
        assert changed == set(layer.index_2.tolist())
        assert sources == set(layer.index_1.tolist())
        assert changed.isdisjoint(sources) and changed | sources == set(range(D))
        changed_sets.append(changed)
        kept_sets.append(sources)
    # the roles swap from one layer to the next, so every dimension is changed
    for k in range(len(model.couplings) - 1):
        assert changed_sets[k] == kept_sets[k + 1]
    assert set().union(*changed_sets) == set(range(D))
    first_changed = set(range(1, D, 2)) if partition == "alternate" else set(range((D + 1) // 2, D))
    assert changed_sets[0] == first_changed


@pytest.mark.parametrize("prior", ["logistic", "gaussian"])
def test_log_prior_matches_scipy(prior):
    model = models.create("nice", (3,), hidden_size=4, n_hidden_layers=1, prior=prior).double()
    h = torch.linspace(-30, 30, 60, dtype=torch.float64).reshape(-1, 3)
    dist = scipy.stats.logistic if prior == "logistic" else scipy.stats.norm
    expected = dist.logpdf(h.numpy()).sum(1)
    assert torch.allclose(model.log_prior(h), torch.from_numpy(expected), atol=1e-10)


@pytest.mark.parametrize("prior", ["logistic", "gaussian"])
def test_samples_are_the_inverse_of_prior_draws(prior):
    model = small(prior=prior)
    n = 4000
    x = model.sample(n, generator=torch.Generator().manual_seed(7))
    assert x.shape == (n, *SHAPE) and torch.isfinite(x).all()
    assert x.min() < 0 or x.max() > 1  # continuous values, not clamped to [0, 1]
    h = model.sample_prior(n, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.allclose(model(x)[0], h, atol=1e-8)
    # the draws follow the prior (Kolmogorov-Smirnov), and not the other prior
    cdfs = {"logistic": scipy.stats.logistic.cdf, "gaussian": scipy.stats.norm.cdf}
    pooled = h.flatten().numpy()  # the D components are independent
    critical = 1.95 / math.sqrt(pooled.size)  # alpha = 0.001
    assert scipy.stats.kstest(pooled, cdfs[prior]).statistic < critical
    other = "gaussian" if prior == "logistic" else "logistic"
    assert scipy.stats.kstest(pooled, cdfs[other]).statistic > critical


def test_fit_on_dequantized_levels_lowers_the_validation_nll():
    K, shape = 4, (1, 2, 3)
    g = torch.Generator().manual_seed(0)
    # structured levels: a shared level per example plus noise, so there is something to learn
    base = torch.randint(0, K, (400, 1, 1, 1), generator=g)
    noise = torch.randint(-1, 2, (400, *shape), generator=g) * (torch.rand((400, *shape), generator=g) < 0.3)
    levels = (base + noise).clamp(0, K - 1).float()
    tr, va = levels[:300], levels[300:]
    torch.manual_seed(0)
    model = models.create("nice", shape, n_couplings=4, hidden_size=16, n_hidden_layers=2)
    valid_y = data.dequantize(va, K, torch.Generator().manual_seed(data.DEQUANTIZATION_SEED))
    before = train.mean_nll(model, valid_y)
    hist = train.fit(model, tr, va, dequantize=K, epochs=2, batch_size=50, lr=1e-2, device="cpu",
                     progress=False, seed=0)
    after = train.mean_nll(model, valid_y)
    assert len(hist.epochs) == 2
    assert after == pytest.approx(hist.best_valid, abs=1e-4)
    assert after < before - 0.5


def test_default_hyperparameters_are_the_papers_mnist_setting():
    model = nice.NICE((1, 28, 28))
    assert model.likelihood == "exact" and model.support == "continuous"
    assert len(model.couplings) == 4 and model.prior == "logistic" and model.partition == "alternate"
    linears = [m for m in model.couplings[0].m if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(392, 1000)] + [(1000, 1000)] * 4 + [(1000, 392)]
    per_coupling = (392 * 1000 + 1000) + 4 * (1000 * 1000 + 1000) + (1000 * 392 + 392)
    assert model.n_params() == 4 * per_coupling + 784


def test_starts_as_the_identity_and_log_prob_is_the_prior():
    model = models.create("nice", SHAPE, hidden_size=8, n_hidden_layers=2)
    x = torch.rand(5, *SHAPE)
    h, logabsdet = model(x)
    assert torch.equal(h, x.reshape(5, 6)) and torch.equal(logabsdet, torch.zeros(5))
    assert torch.allclose(model.log_prob(x), model.log_prior(x.reshape(5, 6)))


def test_bits_per_dim_conversion_in_the_docstring():
    result = doctest.testmod(nice, verbose=False)
    assert result.attempted >= 1 and result.failed == 0


@pytest.mark.parametrize(
    "x,message",
    [
        (torch.zeros(2, 6), "shape"),
        (torch.zeros(2, *SHAPE, dtype=torch.long), "floating-point"),
        (torch.full((2, *SHAPE), float("nan")), "finite"),
    ],
)
def test_invalid_inputs_raise_clear_errors(x, message):
    model = models.create("nice", SHAPE, hidden_size=4, n_hidden_layers=1)
    with pytest.raises(ValueError, match=message):
        model.log_prob(x)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"prior": "laplace"}, "prior"),
        ({"partition": "checkerboard"}, "partition"),
        ({"n_couplings": 0}, "n_couplings"),
        ({"hidden_size": 0}, "hidden_size"),
    ],
)
def test_invalid_hyperparameters_raise_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        models.create("nice", SHAPE, **kw)


def test_one_dimension_cannot_be_partitioned():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        models.create("nice", (1,), hidden_size=4)


def test_inverse_rejects_the_wrong_shape():
    model = models.create("nice", SHAPE, hidden_size=4, n_hidden_layers=1)
    with pytest.raises(ValueError, match="shape"):
        model.inverse(torch.zeros(2, 5))


def test_checkpoint_round_trip(tmp_path):
    model = models.create("nice", SHAPE, hidden_size=8, n_hidden_layers=2, partition="half", prior="gaussian")
    perturb_(model)
    x = torch.rand(20, *SHAPE)
    models.save(model, tmp_path / "m.pt")
    again = models.load(tmp_path / "m.pt")
    assert again.partition == "half" and again.prior == "gaussian"
    assert torch.allclose(again.log_prob(x), model.log_prob(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    model = small().float()
    x = torch.rand(8, *SHAPE)
    on_gpu = model.to("cuda")
    cpu_lp = small().float().log_prob(x)
    assert torch.allclose(on_gpu.log_prob(x.cuda()).cpu(), cpu_lp, atol=1e-4)
    s = on_gpu.sample(16, generator=torch.Generator(device="cuda").manual_seed(0))
    assert s.device.type == "cuda" and s.shape == (16, *SHAPE)
    s_cpu_gen = on_gpu.sample(16, generator=torch.Generator().manual_seed(0))
    assert s_cpu_gen.device.type == "cuda"
