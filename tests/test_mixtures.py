"""Mixture of Bernoullis and PCA + GMM: normalisation, scipy agreement, EM behaviour."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from densitybench import models, train
from conftest import all_binary


def fitted_mob(D=10, K=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand(K, D, generator=g)
    x = torch.bernoulli(proto[torch.randint(0, K, (600,), generator=g)], generator=g)
    model = models.create("bernoulli_mixture", (D,), n_components=K, max_iter=30, seed=seed)
    hist = train.fit(model, x[:400], x[400:], progress=False, device="cpu")
    return model, hist, x


def test_bernoulli_mixture_sums_to_one():
    model, _, _ = fitted_mob()
    total = torch.logsumexp(model.log_prob(all_binary(10)), 0)
    assert abs(total.item()) < 1e-5


def test_bernoulli_mixture_matches_direct_formula():
    model, _, x = fitted_mob()
    pi, mu = model.log_weights.exp().double(), model.probs.double()
    xx = x[:20].double()
    direct = torch.log((pi * torch.prod(mu[None] ** xx[:, None] * (1 - mu[None]) ** (1 - xx[:, None]), 2)).sum(1))
    assert torch.allclose(model.log_prob(x[:20]).double(), direct, atol=1e-4)


def test_em_increases_training_likelihood_and_keeps_best_validation():
    model, hist, x = fitted_mob()
    train_nll = [e["train_loss"] for e in hist.epochs]
    # EM (MAP with a weak prior) is monotone up to the prior's small effect
    assert all(b <= a + 1e-3 for a, b in zip(train_nll, train_nll[1:]))
    best = min(e["valid_loss"] for e in hist.epochs)
    assert abs(-model.log_prob(x[400:]).mean().item() - best) < 1e-4


def fitted_pca_gmm(D=5, variance=0.9, K=3, n=1500, seed=0, n_principal=None):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D)) * np.linspace(2, 0.1, D)
    centres = rng.normal(scale=3, size=(K, D))
    x = centres[rng.integers(0, K, n)] + rng.normal(size=(n, D)) @ A.T
    x = torch.tensor(x, dtype=torch.float32)
    model = models.create("pca_gmm", (D,), variance=variance, n_components=K, seed=seed, n_principal=n_principal)
    train.fit(model, x[:1000], x[1000:], progress=False, device="cpu")
    return model, x


@pytest.mark.parametrize("n_principal", [None, 1, 3])
def test_pca_gmm_equals_scipy_pixel_space_mixture(n_principal):
    model, x = fitted_pca_gmm(n_principal=n_principal)
    D, d = model.n_dims, model.n_principal
    assert 0 < d < D  # the residual term is exercised
    assert n_principal is None or d == n_principal
    W, b, s2 = model.components.numpy(), model.pca_mean.numpy(), model.noise_variance.item()
    comps = []
    for k in range(model.n_components):
        P = model.prec_chol[k].numpy()
        S = np.linalg.inv(P @ P.T)
        cov = W @ S @ W.T + s2 * (np.eye(D) - W @ W.T)
        mean = b + W @ model.means[k].numpy()
        comps.append(model.log_weights[k].item() + multivariate_normal(mean, cov).logpdf(x[:50].double().numpy()))
    direct = logsumexp(np.stack(comps), 0)
    ours = model.log_prob(x[:50]).double().numpy()
    np.testing.assert_allclose(ours, direct, rtol=1e-7, atol=1e-6)


def test_pca_gmm_integrates_to_one_on_a_2d_grid():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 2)) @ np.array([[2.0, 0.0], [1.2, 0.4]])
    x = torch.tensor(x, dtype=torch.float32)
    model = models.create("pca_gmm", (2,), variance=0.9, n_components=2, seed=0)
    train.fit(model, x[:600], x[600:], progress=False, device="cpu")
    assert model.n_principal == 1
    g = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    dens = model.log_prob(grid).double().exp()
    integral = dens.sum().item() * (g[1] - g[0]).item() ** 2
    assert abs(integral - 1) < 1e-3


def test_pca_gmm_samples_have_the_model_moments():
    model, x = fitted_pca_gmm(D=4, variance=0.8, K=2)
    s = model.sample(20000, generator=torch.Generator().manual_seed(0)).double()
    W, b = model.components, model.pca_mean
    pi = model.log_weights.exp()
    mean = b + W @ (pi[:, None] * model.means).sum(0)
    assert torch.allclose(s.mean(0), mean, atol=0.1)


def test_pca_gmm_checkpoint_round_trip(tmp_path):
    model, x = fitted_pca_gmm()
    models.save(model, tmp_path / "p.pt")
    again = models.load(tmp_path / "p.pt")
    assert torch.allclose(again.log_prob(x[:20]), model.log_prob(x[:20]))


# --------------------------------------------------------------------------- EM under a time budget


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_pca_gmm_em_one_iteration_at_a_time_equals_one_long_fit(covariance_type):
    """The fit steps scikit-learn's EM one iteration per call (so that a budget can end it):
    the parameters, the iteration count and the convergence flag are those of one long fit."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    _, x = fitted_pca_gmm(D=5, K=3)
    for max_iter in (3, 100):  # stopped by the cap, and by convergence
        model = models.create("pca_gmm", (5,), n_principal=3, n_components=3, covariance_type=covariance_type,
                              max_iter=max_iter, seed=1)
        (row,) = model.fit_closed_form(x[:1000], x[1000:], progress=False)
        z = PCA(n_components=3, svd_solver="full").fit_transform(x[:1000].double().numpy())
        gmm = GaussianMixture(3, covariance_type=covariance_type, max_iter=max_iter, random_state=1).fit(z)
        assert row["epoch"] == gmm.n_iter_
        assert row["converged"] == gmm.converged_
        assert (max_iter == 100) == gmm.converged_  # both cases are exercised
        np.testing.assert_allclose(model.means.numpy(), gmm.means_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model.log_weights.exp().numpy(), gmm.weights_, rtol=1e-10, atol=1e-12)
        pc = gmm.precisions_cholesky_
        pc = np.stack([np.diag(p) for p in pc]) if covariance_type == "diag" else pc
        np.testing.assert_allclose(model.prec_chol.numpy(), pc, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,hp", [("bernoulli_mixture", {"n_components": 3, "max_iter": 50, "patience": 50}),
                                     ("pca_gmm", {"n_principal": 3, "n_components": 3, "max_iter": 50})])
def test_em_stops_after_the_iteration_that_spends_the_time_budget(name, hp):
    g = torch.Generator().manual_seed(0)
    if name == "bernoulli_mixture":
        x = torch.bernoulli(torch.rand(4, 10, generator=g)[torch.randint(0, 4, (600,), generator=g)], generator=g)
        shape = (10,)
    else:
        _, x = fitted_pca_gmm(D=5, K=3)
        shape = (5,)
    free = train.fit(models.create(name, shape, **hp), x[:400], x[400:], progress=False, device="cpu")
    assert free.epochs[-1]["epoch"] > 1 and free.stop_reason != "time_budget" and not free.stopped_by_budget
    spent = train.fit(models.create(name, shape, **hp), x[:400], x[400:], progress=False, device="cpu",
                      max_seconds=0.0)
    assert spent.epochs[-1]["epoch"] == 1  # one iteration, then the budget is found spent
    assert spent.stop_reason == "time_budget" and spent.stopped_by_budget
    assert math.isfinite(spent.best_valid)
