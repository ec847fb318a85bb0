"""What a generic trainer relies on: counters in the state dict (a checkpoint resumes training
bitwise), seeded initial weights, hyperparameters checked before a model is built, mixtures that
refuse to be used unfitted, and the hooks that replace per-chapter training code."""

import copy
import inspect
import math
import numpy as np
import pytest
import torch

from densitybench import metrics, models, paths
from conftest import perturb_

SHAPE = (1, 4, 4)


def binary(n, seed=0):
    return torch.bernoulli(torch.full((n, *SHAPE), 0.4), generator=torch.Generator().manual_seed(seed))


def unit(n, seed=0):
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- counters in the state dict

#: (model, hyperparameters, data, counters) of every model whose training changes Python attributes
COUNTED = {
    "made": ("made", dict(hidden_sizes=[12], n_masks=3, resample_every=2, ordering="random", seed=1), binary,
             ("_steps", "mask_index")),
    "vae": ("vae", dict(latent_dim=2, hidden_sizes=[8], k_eval=4, kl_warmup=10), binary, ("steps",)),
    "gan": ("gan", dict(noise_dim=4, g_hidden=[8], d_hidden=[8], parzen_n_samples=20), unit,
            ("_n_updates", "loss_trace", "last_losses")),
}


def steps(model, optimizers, batches):
    model.train()
    for x in batches:
        model.training_step(x, optimizers)
        model.after_step()


def counters(model, names):
    return {n: copy.deepcopy(getattr(model, n)) for n in names}


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN equal to NaN (a GAN's unfitted Parzen width)."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize("key", list(COUNTED))
def test_a_checkpoint_resumes_training_bitwise(key, tmp_path):
    name, hp, data, names = COUNTED[key]
    batches = data(56, seed=1).split(8)  # 7 steps: 3 before the checkpoint, 4 after
    model = models.create(name, SHAPE, init_seed=0, **hp)
    opts = model.configure_optimizers(lr=1e-2)
    steps(model, opts, batches[:3])
    models.save(model, tmp_path / "model.pt")
    saved_counters = counters(model, names)
    saved_opts = copy.deepcopy([o.state_dict() for o in opts])
    rng = torch.get_rng_state()
    masks = [m.clone() for m in model.buffers()]  # MADE's current masks among them

    steps(model, opts, batches[3:])

    again = models.load(tmp_path / "model.pt")  # a fresh model with the saved state
    assert counters(again, names) == saved_counters
    assert all(identical(a, b) for a, b in zip(again.buffers(), masks))
    again_opts = again.configure_optimizers(lr=1e-2)
    for o, s in zip(again_opts, saved_opts):
        o.load_state_dict(s)
    torch.set_rng_state(rng)
    steps(again, again_opts, batches[3:])
    assert counters(again, names) == counters(model, names)
    for (n, p), q in zip(model.state_dict().items(), again.state_dict().values()):
        assert identical(p, q), n


def test_made_restores_its_place_in_the_mask_cycle():
    model = models.create("made", SHAPE, **COUNTED["made"][1])
    for _ in range(5):
        model.after_step()  # steps 2 and 4 switched the mask set: now set 2, one step before the next switch
    assert (model._steps, model.mask_index) == (5, 2)
    again = models.create("made", SHAPE, **COUNTED["made"][1])
    again.load_state_dict(model.state_dict())
    assert (again._steps, again.mask_index) == (5, 2)
    assert torch.equal(again.output.mask, model.output.mask) and not torch.equal(again.output.mask, fresh_mask())
    again.after_step()
    assert again.mask_index == 0


def fresh_mask():
    return models.create("made", SHAPE, **COUNTED["made"][1]).output.mask


def test_vae_restores_its_kl_warmup():
    model = models.create("vae", SHAPE, **COUNTED["vae"][1])
    for _ in range(4):
        model.after_step()
    again = models.create("vae", SHAPE, **COUNTED["vae"][1])
    again.load_state_dict(model.state_dict())
    assert again.steps == 4 and again.kl_weight == pytest.approx(0.4)


def test_state_dicts_hold_only_tensors_readable_with_weights_only(tmp_path):
    for name, hp, data, _ in COUNTED.values():
        model = models.create(name, SHAPE, **hp)
        steps(model, model.configure_optimizers(lr=1e-3), data(16).split(8))
        torch.save(model.state_dict(), tmp_path / "state.pt")
        state = torch.load(tmp_path / "state.pt", weights_only=True)
        assert "_extra_state" in state and all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.parametrize("key", list(COUNTED))
def test_a_state_dict_without_counters_still_loads_strictly(key):
    """Checkpoints written before the counters were kept lack them: they load, counters untouched."""
    name, hp, data, names = COUNTED[key]
    model = models.create(name, SHAPE, **hp)
    steps(model, model.configure_optimizers(lr=1e-3), data(16).split(8))
    old = {k: v for k, v in model.state_dict().items() if k != "_extra_state"}
    again = models.create(name, SHAPE, **hp)
    before = counters(again, names)
    again.load_state_dict(old)  # strict
    assert counters(again, names) == before
    for k, v in old.items():
        assert identical(again.state_dict()[k], v), k


@pytest.mark.parametrize("run", ["made-1mask-s0", "gan-s0"])  # checkpoints written before the counters
def test_committed_checkpoints_still_load(run):
    path = paths.REPO_ROOT / "results" / "mnist" / "runs" / run / "model.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    ckpt = torch.load(path, weights_only=True)
    assert "_extra_state" not in ckpt["state_dict"]  # written before the counters were kept
    model = models.load(path)
    for k, v in ckpt["state_dict"].items():
        assert identical(model.state_dict()[k], v), k


def test_gan_keeps_the_whole_loss_trace_when_going_back_to_earlier_weights():
    """A trainer restores its best epoch's weights at the end: the record still shows every step."""
    name, hp, data, _ = COUNTED["gan"]
    model = models.create(name, SHAPE, **hp)
    opts = model.configure_optimizers(lr=1e-2)
    batches = data(32).split(8)
    steps(model, opts, batches[:2])
    best = copy.deepcopy(model.state_dict())
    steps(model, opts, batches[2:])
    trace = list(model.loss_trace)
    model.load_state_dict(best)
    assert torch.equal(model.G[0].weight, best["G.0.weight"])
    assert model._n_updates == 2 and model.loss_trace == trace and len(trace) == 4
    # a state that is not an earlier point of this run replaces the trace
    other = models.create(name, SHAPE, **hp)
    steps(other, other.configure_optimizers(lr=1e-2), data(8, seed=5).split(8))
    model.load_state_dict(other.state_dict())
    assert model.loss_trace == other.loss_trace and model._n_updates == 1


def test_gan_cached_centres_follow_a_load():
    name, hp, data, _ = COUNTED["gan"]
    model = models.create(name, SHAPE, init_seed=1, **hp)
    other = models.create(name, SHAPE, init_seed=2, **hp)
    valid, x = data(20, seed=2), data(5, seed=3)
    model.fit_parzen(valid)
    before = model.log_prob(x)
    state = other.state_dict()
    state["parzen_sigma"] = model.parzen_sigma.clone()
    model.load_state_dict(state)
    other.parzen_sigma.copy_(model.parzen_sigma)
    assert not torch.equal(before, model.log_prob(x))
    assert torch.equal(model.log_prob(x), other.log_prob(x))


# --------------------------------------------------------------------------- seeded initial weights

SEEDED = {
    "made": dict(hidden_sizes=[8]),
    "nade": dict(hidden_size=4),
    "pixelcnn": dict(n_channels=4, n_blocks=1, output_channels=4),
    "row_lstm": dict(hidden=2, n_layers=1, output_channels=4),
    "pixel_lstm": dict(hidden_size=4),
    "nice": dict(hidden_size=4, n_hidden_layers=1),
    "vae": dict(latent_dim=2, hidden_sizes=[4]),
    "gan": dict(noise_dim=2, g_hidden=[4], d_hidden=[4]),
}


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(identical(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", list(SEEDED))
def test_init_seed_fixes_the_initial_weights_whatever_the_global_state(name):
    torch.manual_seed(1)
    a = models.create(name, SHAPE, init_seed=7, **SEEDED[name])
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = models.create(name, SHAPE, init_seed=7, **SEEDED[name])
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left untouched
    assert same_weights(a, b)
    assert not same_weights(a, models.create(name, SHAPE, init_seed=8, **SEEDED[name]))
    assert b.hparams == {"name": name, "data_shape": list(SHAPE), **SEEDED[name]}


@pytest.mark.parametrize("seed", [True, 2.5, "3"])
def test_init_seed_must_be_an_integer(seed):
    with pytest.raises(ValueError, match="init_seed"):
        models.create("nade", SHAPE, init_seed=seed, hidden_size=4)


# --------------------------------------------------------------------------- hyperparameters


def test_unknown_model_lists_the_known_ones():
    known = ("bernoulli_mixture, diagonal_bilstm, fvsbn, gan, gated_pixelcnn, made, nade, nice, pca_gmm, pixel_lstm, "
             "pixelcnn, row_lstm, vae")
    with pytest.raises(ValueError, match=rf"unknown model 'mad'; known: {known}$"):
        models.validate_hparams("mad", SHAPE, {})


def test_unknown_hyperparameter_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"made: unknown hyperparameter 'hidden_size'; made takes: hidden_sizes, n_masks"):
        models.validate_hparams("made", None, {"hidden_size": 8})
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'init_seed'"):
        models.validate_hparams("vae", None, {"init_seed": 0})  # create's argument, not the model's


def test_create_checks_the_configuration_first():
    """``create`` refuses what ``validate_hparams`` refuses, with the same message (not a TypeError)."""
    with pytest.raises(ValueError, match=r"made: unknown hyperparameter 'hidden_size'; made takes: hidden_sizes"):
        models.create("made", SHAPE, hidden_size=8)
    with pytest.raises(ValueError, match=r"unknown model 'mad'; known: bernoulli_mixture, .*made"):
        models.create("mad", SHAPE)


BAD = [
    ("made", {"hidden_sizes": [0]}, r"made: hidden_sizes\[0\] must be a positive integer, got 0"),
    ("made", {"hidden_sizes": [8, True]}, r"made: hidden_sizes\[1\] must be a positive integer, got True"),
    ("made", {"hidden_sizes": []}, r"made: hidden_sizes must hold at least one layer"),
    ("made", {"hidden_sizes": 8}, r"made: hidden_sizes must be a list of positive integers"),
    ("made", {"n_masks": 2.5}, r"made: n_masks must be a positive integer, got 2.5"),
    ("made", {"n_masks": True}, r"made: n_masks must be a positive integer, got True"),
    ("made", {"n_masks": 0}, r"made: n_masks must be a positive integer, got 0"),
    ("made", {"resample_every": 0}, r"made: resample_every must be a positive integer"),
    ("made", {"n_levels": 1}, r"made: n_levels must be an integer >= 2, got 1"),
    ("made", {"n_levels": 2.0}, r"made: n_levels must be an integer >= 2, got 2.0"),
    ("made", {"ordering": "randm"}, r"made: ordering must be one of 'natural', 'random', got 'randm'"),
    ("made", {"direct": 1}, r"made: direct must be true or false, got 1"),
    ("made", {"seed": 0.5}, r"made: seed must be an integer"),
    ("nade", {"hidden_size": 0}, r"nade: hidden_size must be a positive integer"),
    ("nade", {"n_levels": True}, r"nade: n_levels must be an integer >= 2, got True"),
    ("fvsbn", {"n_levels": 0}, r"fvsbn: n_levels must be an integer >= 2"),
    ("pixelcnn", {"n_channels": 0}, r"pixelcnn: n_channels must be a positive integer"),
    ("pixelcnn", {"output_channels": -1}, r"pixelcnn: output_channels must be a positive integer"),
    ("pixelcnn", {"n_blocks": 0}, r"pixelcnn: n_blocks must be a positive integer"),
    ("pixel_lstm", {"n_layers": 0}, r"pixel_lstm: n_layers must be a positive integer"),
    ("row_lstm", {"hidden": 0}, r"row_lstm: hidden must be a positive integer"),
    ("row_lstm", {"kernel_size": 4}, r"row_lstm: kernel_size must be a positive odd integer, got 4"),
    ("nice", {"n_couplings": 0}, r"nice: n_couplings must be a positive integer"),
    ("nice", {"n_hidden_layers": 0}, r"nice: n_hidden_layers must be a positive integer"),
    ("nice", {"prior": "laplace"}, r"nice: prior must be one of 'logistic', 'gaussian', got 'laplace'"),
    ("vae", {"latent_dim": 0}, r"vae: latent_dim must be a positive integer"),
    ("vae", {"hidden_sizes": [8, 0]}, r"vae: hidden_sizes\[1\] must be a positive integer, got 0"),
    ("vae", {"k_eval": 0}, r"vae: k_eval must be a positive integer"),
    ("vae", {"kl_warmup": -1}, r"vae: kl_warmup must be a non-negative integer"),
    ("gan", {"noise_dim": 0}, r"gan: noise_dim must be a positive integer"),
    ("gan", {"g_hidden": [16, 0]}, r"gan: g_hidden\[1\] must be a positive integer, got 0"),
    ("gan", {"d_hidden": [0]}, r"gan: d_hidden\[0\] must be a positive integer, got 0"),
    ("gan", {"parzen_n_samples": 0}, r"gan: parzen_n_samples must be a positive integer"),
    ("gan", {"betas": [0.5, 1.0]}, r"gan: betas must be two numbers in \[0, 1\)"),
    ("bernoulli_mixture", {"n_components": 0}, r"bernoulli_mixture: n_components must be a positive integer"),
    ("bernoulli_mixture", {"alpha": -0.1}, r"bernoulli_mixture: alpha must be a non-negative number"),
    ("pca_gmm", {"n_components": 0}, r"pca_gmm: n_components must be a positive integer"),
    ("pca_gmm", {"variance": 0.0}, r"pca_gmm: variance must be a number in \(0, 1\]"),
    ("pca_gmm", {"n_principal": 0}, r"pca_gmm: n_principal must be a positive integer or null, got 0"),
    ("pca_gmm", {"covariance_type": "tied"}, r"pca_gmm: covariance_type must be one of 'full', 'diag'"),
]


@pytest.mark.parametrize("name,hp,message", BAD, ids=[f"{n}-{next(iter(h))}-{h[next(iter(h))]!r}" for n, h, _ in BAD])
def test_degenerate_hyperparameters_are_refused_before_and_at_construction(name, hp, message):
    with pytest.raises(ValueError, match=message):
        models.validate_hparams(name, None, hp)
    with pytest.raises(ValueError, match=message):
        models.validate_hparams(name, SHAPE, hp)
    with pytest.raises(ValueError, match=message):
        models.create(name, SHAPE, **hp)
    with pytest.raises(ValueError, match=message):
        models.MODELS[name](SHAPE, **hp)


def test_checks_that_need_the_data_shape():
    models.validate_hparams("pca_gmm", None, {"n_principal": 17})  # not known to be too many yet
    with pytest.raises(ValueError, match=r"pca_gmm: n_principal must be at most the data's 16 dimensions, got 17"):
        models.validate_hparams("pca_gmm", SHAPE, {"n_principal": 17})
    with pytest.raises(ValueError, match=r"made: data_shape must be a non-empty list of positive integers"):
        models.validate_hparams("made", (1, 0, 4), {})


@pytest.mark.parametrize("name", list(models.MODELS))
def test_the_constructors_defaults_pass(name):
    signature = inspect.signature(models.MODELS[name].__init__).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not inspect.Parameter.empty}
    assert defaults
    models.validate_hparams(name, SHAPE, defaults)
    models.validate_hparams(name, None, defaults)


def test_the_settings_of_committed_runs_pass():
    found = sorted((paths.REPO_ROOT / "results").glob("**/model.pt"))
    if not found:
        pytest.skip("no committed checkpoints in this checkout")
    for path in found:
        hp = dict(torch.load(path, weights_only=True)["hparams"])
        name, shape = hp.pop("name"), hp.pop("data_shape")
        models.validate_hparams(name, shape, hp)


# --------------------------------------------------------------------------- unfitted mixtures


@pytest.mark.parametrize("name,hp,data", [
    ("pca_gmm", dict(n_components=2, n_principal=3, max_iter=20), unit),
    ("bernoulli_mixture", dict(n_components=2, max_iter=5), binary),
])
def test_an_unfitted_mixture_refuses_log_prob_and_sample_even_after_a_round_trip(name, hp, data, tmp_path):
    model = models.create(name, SHAPE, **hp)
    models.save(model, tmp_path / "unfitted.pt")
    for m in (model, models.load(tmp_path / "unfitted.pt")):
        assert not m.is_fitted
        with pytest.raises(RuntimeError, match="not fitted"):
            m.log_prob(data(3))
        with pytest.raises(RuntimeError, match="not fitted"):
            m.sample(3)
    model.fit_closed_form(data(60, seed=1), data(20, seed=2), progress=False)
    models.save(model, tmp_path / "fitted.pt")
    again = models.load(tmp_path / "fitted.pt")
    assert model.is_fitted and again.is_fitted
    assert torch.equal(again.log_prob(data(5)), model.log_prob(data(5)))
    assert again.sample(4).shape == (4, *SHAPE)


# --------------------------------------------------------------------------- hooks of a generic trainer


def test_default_hooks_ask_for_nothing():
    model = models.create("nade", SHAPE, hidden_size=4)
    x = binary(6)
    assert model.validation_criterion(x) is None
    assert model.finalize(x, x) == {}
    assert model.evaluation_extras(x) == {}
    assert model.artifacts() == {}


def chapter_neg_elbo(model, x, seed, batch_size=1000):
    """The VAE chapter's criterion before the hooks, as it was written there."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([-model.elbo(b.to(model.device), generator=g).double().cpu()
                          for b in x.split(batch_size)]).numpy()


def tiny_vae(**kw):
    model = models.create("vae", SHAPE, latent_dim=2, hidden_sizes=[6], k_eval=4, **kw)
    perturb_(model, seed=1, scale=0.3)
    return model


def test_vae_criterion_and_extras_are_the_chapters_negative_elbo():
    model = tiny_vae()
    valid, test = binary(2300, seed=4), binary(1500, seed=5)  # more than one batch of 1000
    expected = chapter_neg_elbo(model, valid, seed=0)
    assert model.validation_criterion(valid) == float(expected.mean())
    mean, se = metrics.mean_se(chapter_neg_elbo(model, test, seed=0))
    assert model.evaluation_extras(test) == {"test_neg_elbo_nats": mean, "test_neg_elbo_se": se}
    # the noise follows eval_seed, and is drawn once across the batches
    other = tiny_vae(eval_seed=3)
    assert other.validation_criterion(valid) == float(chapter_neg_elbo(other, valid, seed=3).mean())
    assert other.validation_criterion(valid) != model.validation_criterion(valid)
    per_batch = np.concatenate([chapter_neg_elbo(model, b, seed=0) for b in valid.split(1000)])
    assert not np.array_equal(model.neg_elbo(valid), per_batch)


def test_gan_finalize_records_the_chapters_parzen_fields():
    name, hp, data, _ = COUNTED["gan"]
    model = models.create(name, SHAPE, init_seed=3, **hp)
    twin = copy.deepcopy(model)
    valid = data(40, seed=6)
    fields = model.finalize(data(50, seed=7), valid)
    sigma_table = twin.fit_parzen(valid)  # what the chapter did after training
    assert fields == {"parzen_sigma": float(twin.parzen_sigma), "parzen_n_samples": twin.parzen_n_samples,
                      "parzen_valid_ll": {f"{s:.6g}": v for s, v in sigma_table.items()}}
    assert fields["parzen_sigma"] == pytest.approx(max(sigma_table, key=sigma_table.get), rel=1e-6)
    assert list(fields["parzen_valid_ll"])[:2] == ["0.1", "0.129155"]
    assert math.isfinite(model.log_prob(valid[:3]).sum().item())  # fitted: log_prob works


def test_gan_artifacts_hold_the_loss_trace():
    name, hp, data, _ = COUNTED["gan"]
    model = models.create(name, SHAPE, **hp)
    assert model.artifacts()["loss_trace"].shape == (0, 2)
    steps(model, model.configure_optimizers(lr=1e-3), data(24).split(8))
    trace = model.artifacts()["loss_trace"]
    assert trace.dtype == np.float64 and trace.shape == (3, 2)
    assert trace.tolist() == [list(t) for t in model.loss_trace]
    assert tuple(trace[-1]) == (model.last_losses["discriminator"], model.last_losses["generator"])
