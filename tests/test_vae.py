"""VAE: the ELBO and the importance-weighted bound against an exactly computed likelihood.

A VAE with one latent dimension over D = 4 binary pixels has a likelihood that numerical
integration gives exactly: log p(x) = log int p(x | z) N(z; 0, 1) dz on a fine grid. The
Monte Carlo bounds are averaged over many draws and compared with it within a few
standard errors; every comparison is also checked to be a gap the test can resolve.
"""

import copy
import math

import numpy as np
import pytest
import torch

from densitybench import models
from conftest import all_binary, perturb_

D = 4
#: z-score beyond which a Monte Carlo mean is declared different from its target
Z = 4.5


def tiny_vae(**kwargs) -> models.VAE:
    """One latent dimension, 4 pixels, random parameters. The encoder's variance is raised
    so that q(z | x) is wider than the posterior: the ELBO is then nats below log p(x) while
    the importance weights stay well behaved, so IWAE_k visibly climbs to log p(x)."""
    torch.manual_seed(0)
    model = models.create("vae", (D,), latent_dim=1, hidden_sizes=(6,), **kwargs)
    perturb_(model, seed=2, scale=0.5)
    with torch.no_grad():
        model.enc_log_var.bias += 1.0
    return model


def exact_log_px(model, x, lo=-12.0, hi=12.0, n=24001) -> torch.Tensor:
    """log p(x) = log int p(x | z) N(z; 0, 1) dz by the trapezoid rule in float64, (B,)."""
    m = copy.deepcopy(model).double()
    z = torch.linspace(lo, hi, n, dtype=torch.float64)[:, None]
    with torch.no_grad():
        logits = m.decode(z)[:, None, :]  # (n, 1, D)
        log_joint = m._log_bernoulli(logits, x.double()) - 0.5 * (z**2 + math.log(2 * math.pi))  # (n, B)
    w = torch.full((n,), (hi - lo) / (n - 1), dtype=torch.float64)
    w[[0, -1]] /= 2
    return torch.logsumexp(log_joint + w.log()[:, None], 0)


def exact_elbo(model, x, n_nodes=120) -> torch.Tensor:
    """E_q[log p(x | z)] by Gauss-Hermite quadrature minus the analytic KL, float64, (B,)."""
    m = copy.deepcopy(model).double()
    t, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    t, w = torch.tensor(t), torch.tensor(w) / math.sqrt(2 * math.pi)
    with torch.no_grad():
        mu, log_var = m.encode(x.double())
        z = mu + (0.5 * log_var).exp() * t[:, None, None]  # (n_nodes, B, 1)
        rec = (m._log_bernoulli(m.decode(z), x.double()) * w[:, None]).sum(0)
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
    return rec - kl


def monte_carlo(fn, x, n_draws):
    """Mean and standard error over ``n_draws`` independent evaluations of ``fn`` on each row."""
    with torch.no_grad():
        v = fn(x.repeat(n_draws, 1)).reshape(n_draws, x.shape[0]).double()
    return v.mean(0), v.std(0) / math.sqrt(n_draws)


@pytest.fixture(scope="module")
def bounds():
    """Exact log p(x), exact ELBO and Monte Carlo means of the ELBO and IWAE_k for all 16 x."""
    model = tiny_vae(k_chunk=256)
    x = all_binary(D)
    g = torch.Generator().manual_seed(1)
    out = {"model": model, "x": x, "log_px": exact_log_px(model, x), "exact_elbo": exact_elbo(model, x)}
    out["elbo"] = monte_carlo(lambda b: model.elbo(b, g), x, 4000)
    for k, n_draws in [(1, 4000), (10, 1000), (100, 1600), (1000, 200)]:
        out[k] = monte_carlo(lambda b: model.iwae(b, k, g), x, n_draws)
    return out


def test_registered():
    assert models.MODELS["vae"] is models.VAE
    model = models.create("vae", (1, 5, 5), latent_dim=3, hidden_sizes=(7, 5))
    assert model.likelihood == "bound" and model.support == "binary"
    # encoder D-7-5-(mu, log_var), decoder 3-5-7-D
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [7, 5]
    assert [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)] == [5, 7]
    assert model.dec_logits.out_features == 25 and model.enc_mu.out_features == 3


def test_integrator_is_exact():
    model = tiny_vae()
    x = all_binary(D)
    log_px = exact_log_px(model, x)
    # the 16 probabilities sum to 1 ...
    assert abs(torch.logsumexp(log_px, 0).item()) < 1e-10
    # ... and each one has converged in the grid's range and spacing
    assert torch.allclose(log_px, exact_log_px(model, x, lo=-16.0, hi=16.0, n=12001), atol=1e-9, rtol=0)
    # the distribution is far from uniform, so these are not 16 copies of log(1/16)
    assert log_px.max() - log_px.min() > 1.0


def test_elbo_matches_its_exact_value(bounds):
    """One-sample ELBO (analytic KL) and IWAE_1 (sampled log-ratio) are both unbiased for
    the ELBO computed by quadrature."""
    for key in ("elbo", 1):
        mean, se = bounds[key]
        assert torch.all((mean - bounds["exact_elbo"]).abs() < Z * se), key
    # the analytic KL makes the ELBO estimator the less noisy of the two
    assert torch.all(bounds["elbo"][1] < bounds[1][1])


def test_elbo_below_iwae_below_log_likelihood(bounds):
    log_px, exact = bounds["log_px"], bounds["exact_elbo"]
    elbo, se_elbo = bounds["elbo"]
    # the exact ELBO is a strict bound here, by nearly half a nat or more for every x
    assert torch.all(log_px - exact > 0.4)
    for k in (10, 100, 1000):
        mean, se = bounds[k]
        assert torch.all(mean <= log_px + Z * se), k
        assert torch.all(mean - elbo > -Z * torch.sqrt(se**2 + se_elbo**2)), k
    # IWAE_10 is already detectably above the ELBO for every x, and detectably below log p(x)
    mean, se = bounds[10]
    assert torch.all(mean - elbo > Z * torch.sqrt(se**2 + se_elbo**2))
    assert (log_px - mean).sum() > Z * torch.sqrt((se**2).sum())


def test_iwae_increases_with_k(bounds):
    ks = [1, 10, 100, 1000]
    for k, k_next in zip(ks[:-1], ks[1:]):
        (m, se), (m_next, se_next) = bounds[k], bounds[k_next]
        se_diff = torch.sqrt(se**2 + se_next**2)
        # never detectably lower for any x ...
        assert torch.all(m_next - m > -Z * se_diff), (k, k_next)
        # ... and higher in total over the 16 x, by more than the Monte Carlo error
        assert (m_next - m).sum() > Z * torch.sqrt((se_diff**2).sum()), (k, k_next)


def test_iwae_with_many_samples_reaches_log_likelihood(bounds):
    mean, se = bounds[1000]
    assert torch.all(se < 0.005)  # the tolerance below is not swamped by noise
    assert torch.all((mean - bounds["log_px"]).abs() < 0.02)
    # a tolerance that IWAE_10 would fail
    assert (bounds[10][0] - bounds["log_px"]).abs().max() > 0.05


def test_log_prob_is_the_iwae_bound_with_fixed_noise():
    model = tiny_vae(k_eval=2000, k_chunk=300)
    x = all_binary(D)
    with torch.no_grad():
        first = model.log_prob(x)
        torch.manual_seed(123)  # the global random state does not enter
        assert torch.equal(model.log_prob(x), first)
        assert torch.equal(model.log_prob(x), model.iwae(x, 2000, torch.Generator().manual_seed(model.eval_seed)))
        # the noise is real: another eval_seed gives other numbers, both close to log p(x)
        model.eval_seed = 1
        other = model.log_prob(x)
    assert not torch.equal(other, first)
    # one draw of IWAE_2000 has a standard deviation of about 0.03 nats here; the ELBO is
    # 0.4 nats or more below log p(x)
    log_px = exact_log_px(model, x).float()
    assert (first - log_px).abs().max() < 0.15 and (other - log_px).abs().max() < 0.15


@pytest.mark.parametrize("k", [1, 50, 333])
def test_chunking_does_not_change_the_bound(k):
    # 39 rows: a batch size that is no multiple of 16, where drawing each chunk's noise as
    # one block would give a different stream than drawing it all at once
    x = all_binary(D)[:13].repeat(3, 1)
    one_chunk = tiny_vae(k_chunk=1000)
    chunked = tiny_vae(k_chunk=7)
    with torch.no_grad():
        a = one_chunk.iwae(x, k, torch.Generator().manual_seed(5))
        b = chunked.iwae(x, k, torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    if k > 1:  # and the samples differ between examples' repeats, so this is not one draw
        assert a.reshape(3, -1).std(0).min() > 1e-4


def test_chunked_log_prob_equals_one_chunk():
    x = all_binary(D)
    with torch.no_grad():
        a = tiny_vae(k_eval=100, k_chunk=100).log_prob(x[:11])
        b = tiny_vae(k_eval=100, k_chunk=9).log_prob(x[:11])
    assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_loss_is_negative_one_sample_elbo_and_trains_both_networks():
    model = tiny_vae()
    x = all_binary(D)
    torch.manual_seed(3)
    loss = model.loss(x)
    torch.manual_seed(3)
    assert torch.allclose(loss, -model.elbo(x).mean())
    loss.backward()
    for name in ("enc_mu", "enc_log_var", "dec_logits"):
        assert getattr(model, name).weight.grad.abs().sum() > 0, name


def test_kl_warmup_weights_the_kl_linearly_then_trains_on_the_elbo():
    """With kl_warmup = 4 the training loss is -(E log p(x|z) - beta KL) with beta = steps / 4,
    counted by after_step, and the negative ELBO from step 4 on; the bounds never weight the KL."""
    model = tiny_vae(kl_warmup=4)
    x = all_binary(D)
    mu, log_var = model.encode(x)
    kl = 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
    for step in range(7):
        beta = min(1.0, step / 4)
        assert model.steps == step and model.kl_weight == beta
        torch.manual_seed(3)
        loss = model.loss(x)
        torch.manual_seed(3)
        elbo = model.elbo(x)
        torch.testing.assert_close(loss, -(elbo + (1 - beta) * kl).mean())
        model.after_step()
    assert (kl > 0.1).all()  # so the weighted and unweighted losses differ by a visible amount


def test_samples_follow_the_model():
    model = tiny_vae()
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    assert s.shape == (n, D) and set(s.unique().tolist()) <= {0.0, 1.0}
    probs = exact_log_px(model, all_binary(D)).exp().float()
    codes = (s * torch.tensor([8.0, 4, 2, 1])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).float() / n
    assert torch.all((freq - probs).abs() < Z * torch.sqrt(probs * (1 - probs) / n))
    # mean images average to the pixel marginals E[x_d] = sum_x p(x) x_d
    means = model.sample_mean(n, generator=torch.Generator().manual_seed(1))
    assert means.shape == (n, D) and means.min() >= 0 and means.max() <= 1
    marginals = probs @ all_binary(D)
    assert torch.all((means.mean(0) - marginals).abs() < Z * means.std(0) / math.sqrt(n))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_two_latent_plane_decodes_to_images(activation):
    model = models.create("vae", (1, 5, 5), latent_dim=2, hidden_sizes=(8,), activation=activation)
    perturb_(model)
    grid = torch.cartesian_prod(torch.linspace(-2, 2, 4), torch.linspace(-2, 2, 4))  # (16, 2)
    with torch.no_grad():
        images = model.decode_mean(grid)
        assert model.decode(grid).shape == (16, 25)
    assert images.shape == (16, 1, 5, 5) and images.min() >= 0 and images.max() <= 1
    assert images.std(0).max() > 0.01  # the image changes across the plane
    samples = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (6, 1, 5, 5) and set(samples.unique().tolist()) <= {0.0, 1.0}


def test_checkpoint_round_trip(tmp_path):
    model = tiny_vae(k_eval=200, k_chunk=64, eval_seed=4)
    x = all_binary(D)
    models.save(model, tmp_path / "vae.pt")
    again = models.load(tmp_path / "vae.pt")
    with torch.no_grad():
        assert torch.equal(again.log_prob(x), model.log_prob(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_log_prob_is_the_same_on_cuda():
    model = tiny_vae(k_eval=500, k_chunk=128)
    x = all_binary(D)
    with torch.no_grad():
        cpu = model.log_prob(x)
        model.to("cuda")
        gpu = model.log_prob(x.cuda()).cpu()
        s = model.sample(5, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.allclose(cpu, gpu, atol=1e-4, rtol=0)
    assert s.device.type == "cuda" and s.shape == (5, D)


@pytest.mark.parametrize("method", ["log_prob", "loss", "elbo", "iwae"])
@pytest.mark.parametrize(
    "x,message",
    [
        (torch.full((2, D), 0.5), "0 or 1"),
        (torch.zeros(2, D + 1), "shape"),
        (torch.zeros(2, D, dtype=torch.long), "floating-point"),
    ],
)
def test_invalid_inputs_raise_clear_errors(method, x, message):
    model = tiny_vae(k_eval=4)
    call = {"iwae": lambda b: model.iwae(b, 3)}.get(method, getattr(model, method))
    with pytest.raises(ValueError, match=message):
        call(x)


@pytest.mark.parametrize("k", [0, -3, 2.5])
def test_invalid_number_of_samples_raises(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        tiny_vae().iwae(all_binary(D), k)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"activation": "sigmoid"}, "activation"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"k_chunk": 0}, "k_chunk"),
        ({"k_eval": 0}, "k_eval"),
        ({"hidden_sizes": (8, 0)}, "hidden_sizes"),
        ({"kl_warmup": -1}, "kl_warmup"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.create("vae", (D,), **kwargs)


def test_training_on_the_iwae_bound_minimises_minus_l_k():
    """With ``k_train = k`` the loss is ``-L_k`` on the same noise, tighter than the ELBO's on
    average (Burda et al., Theorem 1), and its gradient reaches both networks."""
    from densitybench import models

    torch.manual_seed(0)
    x = (torch.rand(200, 1, 4, 4) < 0.4).float()
    iwae = models.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=[8], k_train=20, init_seed=1)
    vae = models.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=[8], init_seed=1)
    assert torch.equal(iwae.dec_logits.weight, vae.dec_logits.weight)
    torch.manual_seed(5)
    loss = iwae.loss(x)
    torch.manual_seed(5)
    assert torch.allclose(loss, -iwae.iwae(x, 20).mean())
    elbo_losses = torch.stack([vae.loss(x) for _ in range(20)])
    assert loss < elbo_losses.mean()
    loss.backward()
    assert iwae.enc_mu.weight.grad.abs().sum() > 0 and iwae.dec_logits.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="k_train"):
        models.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=[8], k_train=0)
    with pytest.raises(ValueError, match="kl_warmup"):
        models.create("vae", (1, 4, 4), latent_dim=2, hidden_sizes=[8], k_train=5, kl_warmup=10)
