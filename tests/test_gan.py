"""GAN and Parzen windows: the estimate equals scipy's, integrates to 1, the width is the
validation argmax; the GAN's two players, its non-saturating loss, sampling and checkpoints."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import special, stats

from densitybench import metrics, models, train
from conftest import perturb_

SHAPE = (1, 4, 4)
SMALL = dict(noise_dim=8, g_hidden=(16, 16), d_hidden=(16, 16), parzen_n_samples=300, parzen_seed=3)


def small_gan(seed=0, **kw):
    model = models.create("gan", SHAPE, **{**SMALL, **kw})
    perturb_(model, seed=seed, scale=0.3)
    return model


def images(n, seed=0):
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- Parzen windows


@pytest.mark.parametrize("sigma", [0.3, 1.7])
def test_parzen_log_prob_equals_scipy(sigma):
    rng = np.random.default_rng(0)
    D, N = 5, 7
    centres, x = rng.normal(size=(N, D)), rng.normal(size=(4, D))
    per_centre = np.stack([stats.multivariate_normal(mean=mu, cov=sigma**2 * np.eye(D)).logpdf(x) for mu in centres])
    expected = special.logsumexp(per_centre, axis=0) - math.log(N)
    # arrays in, array out; small blocks exercise the running logsumexp over centre blocks
    got = metrics.parzen_log_prob(x, centres, sigma, batch_size=3, centre_batch_size=2)
    assert isinstance(got, np.ndarray) and got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    # tensors in (any trailing shape), float64 tensor out, same numbers
    got_t = metrics.parzen_log_prob(torch.tensor(x).reshape(4, 1, 5), torch.tensor(centres).float(), sigma)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float64
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-6)


def test_parzen_is_accurate_far_from_the_centres_and_in_high_dimension():
    """The logsumexp keeps far points finite; float64 keeps 784-D distances exact."""
    rng = np.random.default_rng(1)
    centres = rng.uniform(size=(20, 784))
    x = rng.uniform(size=(3, 784)) + 5.0
    sigma = 0.1
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    expected = special.logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(20) - 392 * math.log(2 * math.pi * sigma**2)
    got = metrics.parzen_log_prob(x, centres, sigma)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_parzen_density_integrates_to_one():
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.7, 1.2], [0.3, -0.9], [0.3, -0.8]])
    h = 0.02
    ticks = torch.arange(-3.0, 4.0, h, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    for sigma in (0.2, 0.6):
        p = metrics.parzen_log_prob(grid, centres, sigma, batch_size=20000).exp()
        assert abs(p.sum().item() * h * h - 1.0) < 1e-3
    # 1-D as well
    ticks1 = torch.arange(-4.0, 5.0, 0.005, dtype=torch.float64)[:, None]
    p1 = metrics.parzen_log_prob(ticks1, centres[:, :1], 0.3).exp()
    assert abs(p1.sum().item() * 0.005 - 1.0) < 1e-4


def test_select_parzen_sigma_is_the_validation_argmax():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(200, 2, generator=g)
    valid = torch.randn(100, 2, generator=g)
    sigmas = np.logspace(-2, 1, 10)
    best, table = metrics.select_parzen_sigma(valid, centres, sigmas, batch_size=7, centre_batch_size=30)
    assert list(table) == [float(s) for s in sigmas]
    for s, mean in table.items():
        assert mean == pytest.approx(metrics.parzen_log_prob(valid, centres, s).mean().item(), rel=1e-12)
    assert best == max(table, key=table.get)
    # on data from the centres' own distribution the best width is neither extreme
    assert sigmas[0] < best < sigmas[-1]
    # Goodfellow et al.'s grid is the default
    _, default = metrics.select_parzen_sigma(valid, centres)
    assert np.allclose(list(default), np.logspace(-1, 0, 10))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: metrics.parzen_log_prob(np.zeros((2, 3)), np.zeros((4, 2)), 0.5), "dimensions"),
        (lambda: metrics.parzen_log_prob(np.zeros((2, 3)), np.zeros((4, 3)), 0.0), "positive"),
        (lambda: metrics.parzen_log_prob(np.zeros((2, 3)), np.zeros((0, 3)), 0.5), "at least one centre"),
        (lambda: metrics.parzen_log_prob(np.zeros((2, 3)), np.zeros((4, 3)), [0.1, 0.2]), "single number"),
        (lambda: metrics.select_parzen_sigma(np.zeros((2, 3)), np.zeros((4, 3)), [0.1, -1.0]), "positive"),
        (lambda: metrics.select_parzen_sigma(np.zeros((2, 3)), np.zeros((4, 3)), []), "non-empty"),
    ],
)
def test_parzen_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- the GAN


def test_architecture_follows_the_thesis():
    model = models.create("gan", (1, 28, 28))
    linear_g = [m for m in model.G if isinstance(m, torch.nn.Linear)]
    linear_d = [m for m in model.D if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear_g] == [(64, 256), (256, 256), (256, 784)]
    assert [(m.in_features, m.out_features) for m in linear_d] == [(784, 256), (256, 256), (256, 1)]
    acts = [m for m in list(model.G) + list(model.D) if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 4 and all(a.negative_slope == 0.2 for a in acts)
    assert model.likelihood == "estimate" and model.support == "continuous"
    assert model.n_params() == sum(p.numel() for p in model.parameters())


def test_samples_are_images_in_the_unit_interval():
    model = small_gan()
    s = model.sample(500, generator=torch.Generator().manual_seed(0))
    assert s.shape == (500, *SHAPE)
    assert s.min() >= 0 and s.max() <= 1
    # the random parameters push G's tanh to both ends: the whole interval is used
    assert s.min() < 0.1 and s.max() > 0.9
    again = model.sample(500, generator=torch.Generator().manual_seed(0))
    other = model.sample(500, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s, again) and not torch.equal(s, other)
    # the sample is G's tanh output mapped by (t + 1) / 2
    z = model.noise(3, torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(model.generate(z).reshape(3, -1), (torch.tanh(model.G(z)) + 1) / 2)


def test_discriminator_sees_data_rescaled_to_minus_one_one():
    model = small_gan()
    x = images(4)
    with torch.no_grad():
        assert torch.allclose(model.discriminate(x), model.D(2 * x.reshape(4, -1) - 1)[:, 0])


def test_log_prob_needs_fit_parzen_then_is_deterministic_and_finite():
    model = small_gan()
    x = images(6, seed=1)
    with pytest.raises(RuntimeError, match="fit_parzen"):
        model.log_prob(x)
    valid = images(40, seed=2)
    sigmas = np.logspace(-1.5, 0.5, 6)
    table = model.fit_parzen(valid, sigmas=sigmas, n_valid=30)
    assert list(table) == [float(s) for s in sigmas]
    assert model.parzen_sigma.item() == pytest.approx(max(table, key=table.get))
    # the table is the validation mean under the seeded samples, on the first n_valid images
    centres = model.sample(model.parzen_n_samples, generator=torch.Generator().manual_seed(3))
    _, expected = metrics.select_parzen_sigma(valid[:30], centres, sigmas)
    assert table == pytest.approx(expected)
    lp = model.log_prob(x)
    assert lp.shape == (6,) and torch.isfinite(lp).all()
    assert torch.equal(lp, model.log_prob(x))
    direct = metrics.parzen_log_prob(x, centres, model.parzen_sigma.item())
    assert torch.allclose(lp.double(), direct, rtol=1e-6)


def test_parzen_centres_follow_the_generator():
    """The cached centres are regenerated when G changes (a training step, a manual change)."""
    model = small_gan()
    model.fit_parzen(images(20), sigmas=[0.3])
    x = images(5, seed=4)
    before = model.log_prob(x)
    opts = model.configure_optimizers(lr=1e-2)
    model.training_step(images(8, seed=5), opts)
    after = model.log_prob(x)
    assert not torch.allclose(before, after)
    fresh = metrics.parzen_log_prob(x, model.sample(300, torch.Generator().manual_seed(3)), 0.3)
    assert torch.allclose(after.double(), fresh, rtol=1e-6)
    with torch.no_grad():
        model.G[0].bias.add_(1.0)
    fresh = metrics.parzen_log_prob(x, model.sample(300, torch.Generator().manual_seed(3)), 0.3)
    assert torch.allclose(model.log_prob(x).double(), fresh, rtol=1e-6)


def test_training_step_moves_both_players_with_the_non_saturating_loss():
    torch.manual_seed(0)
    model = small_gan(seed=1)
    before = copy.deepcopy(model)
    opt_d, opt_g = model.configure_optimizers(lr=1e-3)
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in model.D.parameters()}
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in model.G.parameters()}
    assert opt_d.defaults["betas"] == (0.5, 0.999)
    x = images(16, seed=6)
    g_loss = model.training_step(x, [opt_d, opt_g], generator=torch.Generator().manual_seed(7))
    for new, old in ((model.D, before.D), (model.G, before.G)):
        for p, q in zip(new.parameters(), old.parameters()):
            assert not torch.equal(p, q)

    # replay with the same noise: D's step used (x, G_old(z1)); G's step used the updated D
    rng = torch.Generator().manual_seed(7)
    z1, z2 = before.noise(16, rng), before.noise(16, rng)
    with torch.no_grad():
        d_loss = before.discriminator_loss(x, before.generate(z1))
    assert model.last_losses["discriminator"] == pytest.approx(d_loss.item(), rel=1e-5)
    replay = copy.deepcopy(before)
    replay.D.load_state_dict(model.D.state_dict())
    logits = replay.discriminate(replay.generate(z2))
    non_saturating = -F.logsigmoid(logits).mean()
    assert g_loss == pytest.approx(non_saturating.item(), rel=1e-5)
    assert model.last_losses["generator"] == g_loss
    assert model.loss_trace == [(model.last_losses["discriminator"], g_loss)]
    # the saturating objective log(1 - D(G(z))) is a different number
    assert abs(torch.log1p(-torch.sigmoid(logits)).mean().item() - g_loss) > 1e-3

    # Adam's first step moves each weight by about lr * sign(gradient): G descended the
    # gradient of -log D(G(z)) under the updated D
    grads = torch.autograd.grad(non_saturating, list(replay.G.parameters()))
    for p_new, p_old, grad in zip(model.G.parameters(), before.G.parameters(), grads):
        big = grad.abs() > 1e-5
        assert big.any()
        assert torch.equal(torch.sign(p_new - p_old)[big], -torch.sign(grad)[big])


def test_generator_loss_is_minus_log_d_of_g():
    model = small_gan(seed=2)
    z = model.noise(10, torch.Generator().manual_seed(0))
    logits = model.discriminate(model.generate(z))
    expected = -torch.log(torch.sigmoid(logits)).mean()
    assert model.generator_loss(z).item() == pytest.approx(expected.item(), rel=1e-6)


def test_loss_is_the_discriminator_loss_on_real_and_fresh_fakes():
    model = small_gan(seed=3)
    x = images(12, seed=8)
    loss = model.loss(x, generator=torch.Generator().manual_seed(9))
    z = model.noise(12, torch.Generator().manual_seed(9))
    d_real = torch.sigmoid(model.discriminate(x))
    d_fake = torch.sigmoid(model.discriminate(model.generate(z)))
    expected = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="shape"):
        model.loss(torch.zeros(3, 16))


def test_clip_grad_norm_bounds_each_players_step():
    model = small_gan(seed=4)
    before = copy.deepcopy(model)
    opts = [torch.optim.SGD(model.D.parameters(), lr=1.0), torch.optim.SGD(model.G.parameters(), lr=1.0)]
    model.training_step(images(8), opts, clip_grad_norm=0.01, generator=torch.Generator().manual_seed(0))
    for new, old in ((model.D, before.D), (model.G, before.G)):
        step = torch.cat([(p - q).reshape(-1) for p, q in zip(new.parameters(), old.parameters())])
        assert 0 < step.norm() <= 0.01 + 1e-6


def test_validation_criterion_and_fit():
    model = small_gan(seed=5)
    valid = images(30, seed=10)
    v = model.validation_criterion(valid)
    assert math.isfinite(v) and v == model.validation_criterion(valid)
    centres = model.sample(2000, generator=torch.Generator().manual_seed(3))
    _, table = metrics.select_parzen_sigma(valid, centres, np.logspace(-1, 0, 10))
    assert v == pytest.approx(-max(table.values()), rel=1e-9)
    assert math.isnan(model.parzen_sigma.item())  # the criterion does not fit the estimate
    hist = train.fit(model, images(40, seed=11), valid, epochs=2, batch_size=10, lr=1e-3, device="cpu",
                     progress=False, valid_fn=lambda m, v: m.validation_criterion(v))
    assert len(hist.epochs) == 2 and all(math.isfinite(e["valid_loss"]) for e in hist.epochs)
    assert len(model.loss_trace) == 8


def test_checkpoint_round_trip(tmp_path):
    model = small_gan(seed=6)
    model.fit_parzen(images(25, seed=12), n_valid=20)
    x = images(7, seed=13)
    models.save(model, tmp_path / "gan.pt")
    state = torch.load(tmp_path / "gan.pt", weights_only=True)["state_dict"]
    assert all(v.numel() < 10_000 for v in state.values())  # no Parzen centres in the checkpoint
    again = models.load(tmp_path / "gan.pt")
    assert isinstance(again, models.GAN)
    assert again.parzen_sigma.item() == model.parzen_sigma.item()
    assert torch.allclose(again.log_prob(x), model.log_prob(x))
    # loading new weights into a model refreshes its cached centres
    other = small_gan(seed=7)
    other.fit_parzen(images(25, seed=12), n_valid=20)
    stale = other.log_prob(x)
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(stale, model.log_prob(x))
    assert torch.allclose(other.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(noise_dim=0), "noise_dim"),
        (dict(g_hidden=(16, 0)), "hidden"),
        (dict(betas=(0.5, 1.0)), "betas"),
        (dict(parzen_n_samples=0), "parzen_n_samples"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.create("gan", SHAPE, **kwargs)


def test_bad_inputs_raise_clear_errors():
    model = small_gan()
    with pytest.raises(ValueError, match="shape"):
        model.fit_parzen(torch.zeros(5, 16))
    with pytest.raises(ValueError, match="n_valid"):
        model.fit_parzen(images(5), n_valid=0)
    with pytest.raises(ValueError, match="positive"):
        model.fit_parzen(images(5), sigmas=[0.1, 0.0])
    with pytest.raises(ValueError, match="finite"):
        model.fit_parzen(images(5).fill_(float("nan")))
    assert math.isnan(model.parzen_sigma.item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = small_gan().cuda()
    s = model.sample(20, generator=torch.Generator(device="cuda").manual_seed(0))
    assert s.device.type == "cuda" and s.shape == (20, *SHAPE)
    opts = model.configure_optimizers(lr=1e-3)
    model.training_step(images(8).cuda(), opts)
    model.fit_parzen(images(20).cuda())
    lp_cuda = model.log_prob(images(5).cuda())
    assert lp_cuda.device.type == "cuda" and torch.isfinite(lp_cuda).all()
    # the centres come from the same CPU-seeded noise on either device
    lp_cpu = model.cpu().log_prob(images(5))
    assert torch.allclose(lp_cuda.cpu(), lp_cpu, rtol=1e-4)


def test_the_record_calls_a_parzen_estimate_an_estimate_not_a_bound():
    from densitybench import data, record

    ds = data.load("digits")
    model = models.create("gan", ds.image_shape, **models.base.REGISTRY["gan"].conformance_hparams(ds.image_shape))
    text = record.protocol(model, ds)
    assert "Parzen-window estimate" in text and "no bound" in text and "bounded by" not in text
