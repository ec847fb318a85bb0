"""Every registered model wears the same interface: one suite, parametrised over the registry.

Each model class declares a tiny configuration (``conformance_hparams``); a model with
``n_levels`` is also tested with three levels. The data are random, in the model's support, on
4 x 4 single-channel images; models fitted by EM are fitted on them, and the ``finalize`` hook
(a GAN's choice of Parzen width) runs, as after training. A new model is covered by being
registered: nothing here names a model.
"""

from __future__ import annotations

import pytest
import torch

from densitybench import models
from densitybench.models.base import REGISTRY, DensityModel
from densitybench.models.hparams import accepted

SHAPE = (1, 4, 4)
LEVELS = 3


def configurations():
    out = []
    for name, cls in models.MODELS.items():
        hp = cls.conformance_hparams(SHAPE)
        out.append(pytest.param(name, hp, id=name))
        if "n_levels" in accepted(cls):
            out.append(pytest.param(name, {**hp, "n_levels": LEVELS}, id=f"{name}-levels"))
    return out


CONFIGS = configurations()


def data_for(model: DensityModel, n: int, seed: int) -> torch.Tensor:
    """``n`` random examples in ``model``'s support."""
    g = torch.Generator().manual_seed(seed)
    if model.support == "binary":
        return torch.randint(0, 2, (n, *SHAPE), generator=g).float()
    if model.support == "levels":
        return torch.randint(0, model.n_levels, (n, *SHAPE), generator=g).float()
    return torch.rand((n, *SHAPE), generator=g)


def build(name: str, hp: dict, init_seed: int = 0) -> DensityModel:
    """The model as after training: EM fitted, ``finalize`` run, in eval mode."""
    model = models.create(name, SHAPE, init_seed=init_seed, **hp)
    train, valid = data_for(model, 60, 1), data_for(model, 20, 2)
    if not model.trained_by_gradient:
        model.fit_closed_form(train, valid, progress=False)
    model.finalize(train, valid)
    return model.eval()


_CACHE: dict[str, DensityModel] = {}


@pytest.fixture
def model(request) -> DensityModel:
    name, hp = request.node.callspec.params["name"], request.node.callspec.params["hp"]
    key = f"{name}-{sorted(hp.items())}"
    if key not in _CACHE:
        _CACHE[key] = build(name, hp)
    return _CACHE[key]


def in_support(model: DensityModel, x: torch.Tensor) -> bool:
    if model.support == "binary":
        return bool(((x == 0) | (x == 1)).all())
    if model.support == "levels":
        return bool(((x == x.round()) & (x >= 0) & (x <= model.n_levels - 1)).all())
    return bool(torch.isfinite(x).all())


def outside_support(model: DensityModel) -> torch.Tensor:
    x = data_for(model, 3, 5)
    if model.support == "binary":
        x[1, 0, 1, 2] = 0.5
    elif model.support == "levels":
        x[1, 0, 1, 2] = model.n_levels
    else:
        x[1, 0, 1, 2] = float("nan")
    return x


# --------------------------------------------------------------------------- the registry


def test_every_model_module_class_is_registered_under_its_name():
    assert models.MODELS == {name: REGISTRY[name] for name in models.MODELS}
    assert set(REGISTRY) >= set(models.MODELS) and len(models.MODELS) >= 11
    for name, cls in models.MODELS.items():
        assert cls.name == name and issubclass(cls, DensityModel)
        assert getattr(models, cls.__name__) is cls


def test_a_new_subclass_registers_itself_and_a_taken_name_is_refused():
    class Coin(DensityModel):
        name = "conformance_coin"

        def __init__(self, data_shape):
            super().__init__(data_shape)
            self.logit = torch.nn.Parameter(torch.zeros(()))

    try:
        assert REGISTRY["conformance_coin"] is Coin
        with pytest.raises(ValueError, match="model name 'made' .* already taken"):
            type("AnotherMADE", (DensityModel,), {"name": "made", "__module__": __name__})
        assert REGISTRY["made"] is models.MADE
    finally:
        REGISTRY.pop("conformance_coin", None)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_width_hyperparameters_are_accepted_and_listed(name):
    cls = models.MODELS[name]
    assert set(cls.width_hparams) <= set(accepted(cls))
    row = next(line for line in models.width_table().splitlines() if line.startswith(f"``{name}``"))
    for h in cls.width_hparams:
        assert f"``{h}``" in row


# --------------------------------------------------------------------------- the interface


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_log_prob_is_one_finite_float_per_example(name, hp, model):
    x = data_for(model, 5, 3)
    lp = model.log_prob(x)
    assert lp.shape == (5,) and lp.dtype == model.float_dtype and lp.is_floating_point()
    assert torch.isfinite(lp).all()
    if model.likelihood == "bound":
        return  # a stochastic bound's noise is drawn per batch: another batch, other numbers
    # one example at a time gives the same numbers
    assert torch.allclose(torch.cat([model.log_prob(x[i : i + 1]) for i in range(5)]), lp, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_samples_are_shaped_like_the_data_and_in_its_support(name, hp, model):
    s = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, *SHAPE) and s.is_floating_point()
    assert in_support(model, s)
    assert torch.isfinite(model.log_prob(s)).all()


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_loss_is_a_finite_scalar(name, hp, model):
    loss = model.loss(data_for(model, 4, 3))
    assert loss.shape == () and torch.isfinite(loss)


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_checkpoint_round_trip_is_bitwise(name, hp, model, tmp_path):
    x = data_for(model, 5, 3)
    again = models.load(models.save(model, tmp_path / "model.pt"))
    assert type(again) is type(model)
    assert torch.equal(again.log_prob(x), model.log_prob(x))
    draw = lambda m: m.sample(4, generator=torch.Generator().manual_seed(9))  # noqa: E731
    assert torch.equal(draw(again), draw(model))


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_bad_inputs_are_refused_with_a_clear_error(name, hp, model):
    x = data_for(model, 3, 5)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(x.reshape(3, -1))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(x[0])
    with pytest.raises(ValueError, match="floating-point"):
        model.log_prob(x.long())
    with pytest.raises(ValueError, match="0 or 1|integer in|finite"):
        model.log_prob(outside_support(model))
    with pytest.raises(ValueError, match="expected a torch.Tensor"):
        model.log_prob(x.numpy())


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_other_float_precisions_are_cast_to_the_models(name, hp, model):
    x = data_for(model, 3, 5)
    lp = model.log_prob(x)
    for dtype in (torch.float64, torch.float16):
        y = x.to(dtype)
        out = model.log_prob(y)
        assert out.dtype == model.float_dtype
        assert torch.equal(out, model.log_prob(y.to(model.float_dtype)))
    assert torch.equal(model.log_prob(x.double()), lp)  # exactly representable: the same numbers
    if model.support == "continuous":
        with pytest.raises(ValueError, match="finite"):
            model.log_prob(torch.full((2, *SHAPE), 1e300, dtype=torch.float64))  # inf in float32


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_an_empty_batch_gives_an_empty_result(name, hp, model):
    lp = model.log_prob(torch.zeros(0, *SHAPE))
    assert lp.shape == (0,) and lp.dtype == model.float_dtype
    s = model.sample(0)
    assert s.shape == (0, *SHAPE) and s.is_floating_point()
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(0, 16))


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_a_sample_count_must_be_a_non_negative_integer(name, hp, model):
    for n in (2.7, "3", True, 2.0, None):
        with pytest.raises(TypeError, match="the number of samples n must be an integer"):
            model.sample(n)
    with pytest.raises(ValueError, match="non-negative"):
        model.sample(-1)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_the_same_seed_gives_the_same_samples(name, hp, model):
    draw = lambda seed: model.sample(8, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN equal to NaN (an unfitted Parzen width)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.isnan(), b.isnan()) and \
        torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_the_same_init_seed_gives_the_same_state(name, hp):
    a = models.create(name, SHAPE, init_seed=5, **hp).state_dict()
    b = models.create(name, SHAPE, init_seed=5, **hp).state_dict()
    assert a.keys() == b.keys()
    assert all(same_tensor(a[k], b[k]) for k in a)
    other = models.create(name, SHAPE, init_seed=6, **hp)
    # the parameters drawn at random (not those that start at a constant) change with the seed
    drawn = [k for k, p in other.named_parameters() if p.numel() > 1 and a[k].std() > 0]
    assert not drawn or any(not torch.equal(a[k], other.state_dict()[k]) for k in drawn)


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_completion_as_declared(name, hp, model):
    x = data_for(model, 4, 6)
    g = torch.Generator().manual_seed(0)
    if not model.can_complete:
        with pytest.raises((NotImplementedError, ValueError), match="complete|natural"):
            model.complete(x, 8, generator=g)
        return
    filled = model.complete(x, 8, generator=g)
    assert filled.shape == x.shape and in_support(model, filled)
    assert torch.equal(filled.reshape(4, -1)[:, :8], x.reshape(4, -1)[:, :8])
    assert torch.equal(model.complete(x, model.n_dims, generator=g), x)
    assert model.complete(x[:0], 8).shape == (0, *SHAPE)
    with pytest.raises(ValueError, match="n_known"):
        model.complete(x, model.n_dims + 1)
    with pytest.raises(TypeError, match="n_known"):
        model.complete(x, 2.5)


@pytest.mark.parametrize("name,hp", CONFIGS)
def test_latent_space_as_declared(name, hp, model):
    assert not model.can_encode or model.has_latent  # an encoder implies a latent space
    if not model.has_latent:
        with pytest.raises(NotImplementedError):
            model.sample_latent(2)
        return
    z = model.sample_latent(3, torch.Generator().manual_seed(0))
    assert z.ndim == 2 and z.shape[0] == 3 and torch.isfinite(z).all()
    with torch.no_grad():
        images = model.from_latent(z)
    assert images.shape == (3, *SHAPE) and torch.isfinite(images).all()
    x = data_for(model, 4, 6)
    if model.can_encode:
        with torch.no_grad():
            code = model.to_latent(x)
        assert code.shape == (4, z.shape[1]) and torch.isfinite(code).all()
        with pytest.raises(ValueError, match="shape"):
            model.to_latent(x.reshape(4, -1))
    else:
        with pytest.raises(NotImplementedError):
            model.to_latent(x)
