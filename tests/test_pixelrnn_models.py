"""Diagonal BiLSTM and Gated PixelCNN: raster-order structure, receptive fields (the whole raster
past, no blind spot; the one-pixel gap of the Diagonal BiLSTM as the paper states it), the
Diagonal BiLSTM recurrence against its pixel-by-pixel definition, normalisation by enumeration
and sampling."""

import pytest
import torch

from densitybench import models
from densitybench.models.autoregressive import blind_spot, dependency_map
from densitybench.models.diagonal_bilstm import DiagonalBiLSTMLayer, skew, unskew
from conftest import all_binary, all_levels, perturb_

#: small configurations, several layers each: id -> (model, hyperparameters); "diagonal_bilstm-paper"
#: is the Diagonal BiLSTM exactly as the paper states it, with its one-pixel gap
SMALL = {
    "diagonal_bilstm": ("diagonal_bilstm", dict(hidden=8, n_layers=3, output_channels=8)),
    "diagonal_bilstm-paper": ("diagonal_bilstm", dict(hidden=8, n_layers=3, output_channels=8, full_context=False)),
    "gated_pixelcnn": ("gated_pixelcnn", dict(n_channels=8, n_blocks=3, output_channels=8)),
}


def make(key, shape, n_levels=2, seed=0, **hparams):
    name, small = SMALL[key]
    torch.manual_seed(seed)
    model = models.create(name, shape, n_levels=n_levels, **{**small, **hparams})
    perturb_(model, seed=seed, scale=0.3)  # away from the initialisation
    return model.eval()


def random_images(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.n_levels, (n, *model.data_shape), generator=g).float()


def jacobian(model, x):
    """``(n, n_out, D, D)`` with ``[b, k, d, j] = d logit_{k,d} / d x_j`` at image ``x[b]``: one
    backward pass through ``n_out * D`` copies of each image, copy ``k * D + d`` giving row
    ``(k, d)`` (the examples of a batch do not interact)."""
    n, K, D = x.shape[0], model.n_out, model.n_dims
    xs = x[:, None].expand(n, K * D, *x.shape[1:]).reshape(n * K * D, *x.shape[1:]).clone().requires_grad_(True)
    logits = model(xs).reshape(n, K * D, K, D)
    r = torch.arange(K * D)
    logits[:, r, r // D, r % D].sum().backward()
    return xs.grad.reshape(n, K, D, D)


def dependence(model, n_images=16, seed=1):
    """``(D, D)``: ``[d, j]`` is the largest ``|d logit_d / d x_j|`` over the outputs of pixel ``d``
    and ``n_images`` random images. At one image a ReLU of the head can switch every unit off at
    a pixel and make its conditional locally constant; a dependence shows at some image."""
    return jacobian(model, random_images(model, n_images, seed)).abs().amax((0, 1))


def dependence_map(model, position, n_images=16, seed=1):
    """:func:`dependency_map` of ``position``, the largest over ``n_images`` random images."""
    x = random_images(model, n_images, seed)
    return torch.stack([dependency_map(model, position, x[b : b + 1]) for b in range(n_images)]).amax(0)


def raster_past(D):
    """``(D, D)`` boolean: ``[d, j]`` is True when ``j`` comes before ``d`` in raster order."""
    d, j = torch.meshgrid(torch.arange(D), torch.arange(D), indexing="ij")
    return j < d


def paper_gap(H, W):
    """``(D, D)`` boolean: the pairs the Diagonal BiLSTM as stated in the paper misses, pixel
    ``(i, j)`` and the last pixel of the row above, ``(i - 1, W - 1)``, when ``j + 3 < W - 1`` (out
    of reach of the 7x7 first layer)."""
    gap = torch.zeros(H * W, H * W, dtype=torch.bool)
    for i in range(1, H):
        for j in range(W):
            if j + 3 < W - 1:
                gap[i * W + j, (i - 1) * W + W - 1] = True
    return gap


def expected_dependence(key, H, W):
    """The pairs ``[d, j]`` where conditional ``d`` depends on pixel ``j``: the raster past (for
    the paper's Diagonal BiLSTM, less its gap)."""
    past = raster_past(H * W)
    return past & ~paper_gap(H, W) if key == "diagonal_bilstm-paper" else past


# --------------------------------------------------------------------------- autoregressive structure


@pytest.mark.parametrize("key", list(SMALL))
@pytest.mark.parametrize("shape", [(1, 5, 5), (1, 4, 6), (1, 6, 3)])
@pytest.mark.parametrize("n_levels", [2, 3])
def test_conditional_d_depends_on_exactly_the_pixels_before_d(key, shape, n_levels):
    """The gradient of output d with respect to every input at or after d is exactly 0, and with
    respect to every input before d it is not (these images lie inside the receptive fields);
    the paper's Diagonal BiLSTM misses exactly its gap."""
    model = make(key, shape, n_levels)
    J = dependence(model)
    assert J[~raster_past(model.n_dims)].max() == 0
    expected = expected_dependence(key, *shape[1:])
    assert torch.equal(J > 0, expected)
    if key == "diagonal_bilstm-paper" and shape[2] > 4:
        assert not torch.equal(expected, raster_past(model.n_dims))  # the gap is there to miss


@pytest.mark.parametrize("key,hparams", [
    ("diagonal_bilstm", dict(n_layers=1)),
    ("diagonal_bilstm", dict(n_layers=2)),
    ("gated_pixelcnn", dict(n_blocks=4)),
])
def test_the_dependency_map_of_every_pixel_is_the_whole_raster_past(key, hparams):
    """On a 7x7 image, every pixel's conditional depends on every pixel before it and on no other:
    no blind spot. The Diagonal BiLSTM's receptive field is the whole past from its first layer on."""
    model = make(key, (1, 7, 7), seed=2, **hparams)
    J = dependence(model)
    for pos in range(model.n_dims):
        assert (J[pos, :pos] > 0).all(), f"pixel {pos} misses {torch.nonzero(J[pos, :pos] == 0).flatten().tolist()}"
        assert (J[pos, pos:] == 0).all()
    # the library's dependency map is a row of it
    x = random_images(model, 1, seed=1)
    for pos in (10, 30, 48):
        torch.testing.assert_close(dependency_map(model, pos, x).reshape(-1), jacobian(model, x)[0, 0, pos].abs())


def test_the_gated_receptive_field_is_the_raster_past_within_its_window():
    """A 7x7 first layer and n_blocks 3x3 layers see 3 + n_blocks + 1 rows above (3 + n_blocks columns
    either side) and 3 + n_blocks pixels to the left: exactly that window of the past, no hole in it."""
    n_blocks, H, W = 1, 12, 14
    model = make("gated_pixelcnn", (1, H, W), seed=3, n_blocks=n_blocks)
    reach = 3 + n_blocks
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    for r, c in [(11, 7), (6, 0), (9, 13), (0, 9)]:
        window = ((i < r) & (i >= r - reach - 1) & ((j - c).abs() <= reach)) | ((i == r) & (j < c) & (j >= c - reach))
        m = dependence_map(model, r * W + c)[0]
        assert torch.equal(m > 0, window), (r, c)


def test_pixelcnn_has_a_blind_spot_and_the_gated_pixelcnn_does_not():
    """At the same depth, the PixelCNN misses pixel (i - 1, j + 4), one row up and four to the right,
    although it sees (i - 4, j + 4) further up; the Gated PixelCNN sees both, and the whole past."""
    H = W = 10
    r, c = 5, 5
    cnn = models.create("pixelcnn", (1, H, W), n_channels=6, n_blocks=4, output_channels=5)
    perturb_(cnn, seed=4, scale=0.3)
    cnn_map = dependence_map(cnn.eval(), r * W + c)[0]
    gated = make("gated_pixelcnn", (1, H, W), seed=4, n_blocks=4)
    gated_map = dependence_map(gated, r * W + c)[0]
    assert cnn_map[r - 4, c + 4] > 0 and cnn_map[r - 1, c + 4] == 0  # a hole inside its field: the blind spot
    assert gated_map[r - 1, c + 4] > 0
    past = raster_past(H * W)[r * W + c].reshape(H, W)
    assert torch.equal(gated_map > 0, past)
    assert not torch.equal(cnn_map > 0, past)


def test_blind_spot_counts_the_holes_of_a_field_not_its_bounds():
    """A field bounded by depth (the gated window) has no blind spot; the PixelCNN's hole at
    (i - 1, j + 4) is one; an invented field with one pixel removed has exactly that one."""
    H = W = 10
    r, c = 5, 5
    pos = r * W + c
    gated = make("gated_pixelcnn", (1, H, W), seed=4, n_blocks=1)
    gated_seen = dependence_map(gated, pos)[0] > 0
    assert not torch.equal(gated_seen, raster_past(H * W)[pos].reshape(H, W))  # bounded by its depth
    assert not blind_spot(gated_seen, pos).any()
    cnn = models.create("pixelcnn", (1, H, W), n_channels=6, n_blocks=4, output_channels=5)
    perturb_(cnn, seed=4, scale=0.3)
    holes = blind_spot(dependence_map(cnn.eval(), pos)[0] > 0, pos)
    assert holes[r - 1, c + 4] and not holes[r, c:].any() and not holes[r + 1:].any()
    punched = raster_past(H * W)[pos].reshape(H, W).clone()
    punched[2, 7] = False
    assert blind_spot(punched, pos).nonzero().tolist() == [[2, 7]]


# --------------------------------------------------------------------------- the Diagonal BiLSTM layer


@pytest.mark.parametrize("H,W", [(3, 3), (4, 6), (5, 2)])
def test_skew_shifts_row_i_right_by_i_and_unskew_inverts_it(H, W):
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    s = skew(x)
    assert s.shape == (2, 3, H, W + H - 1)
    for i in range(H):
        assert torch.equal(s[:, :, i, i : i + W], x[:, :, i])
        assert (s[:, :, i, :i] == 0).all() and (s[:, :, i, i + W :] == 0).all()
    assert torch.equal(unskew(s, W), x)
    with pytest.raises(ValueError, match="columns"):
        unskew(s, W + 1)


def reference_layer(layer: DiagonalBiLSTMLayer, x: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
    """The layer by its definition, pixel by pixel: in the left-to-right direction the state at
    ``(i, j)`` comes from the hidden states at ``(i - 1, j)`` and ``(i, j - 1)`` through ``K^ss``'s
    two taps and the cell state at ``(i, j - 1)``; right-to-left, from ``(i - 1, j)`` and
    ``(i, j + 1)``; the output at ``(i, j)`` is the left-to-right state there plus the
    right-to-left state at ``(i - 1, j)``. States outside the image are zero. With ``pixels``, the
    right-to-left gates at ``(i, j)`` also read ``pixels[:, :, i, j]``."""
    hd, (B, _, H, W) = layer.hidden, x.shape
    gates_in = layer.input_to_state(x)  # (B, 8h, H, W)
    if pixels is not None:
        gates_in[:, 4 * hd :] += torch.einsum("oc,bchw->bohw", layer.pixels_to_state.weight[:, :, 0, 0], pixels)
    weight, bias = layer.state_to_state.weight, layer.state_to_state.bias  # (8h, h, 2), (8h,)
    zero = x.new_zeros(B, hd)
    out = x.new_zeros(B, hd, H, W)
    for direction, step in ((0, -1), (1, 1)):
        part = slice(direction * 4 * hd, (direction + 1) * 4 * hd)
        w, b = weight[part], bias[part]
        h, c = {}, {}
        columns = range(W) if step == -1 else range(W - 1, -1, -1)
        for i in range(H):
            for j in columns:
                above, beside = (i - 1, j), (i, j + step)
                gates = (gates_in[:, part, i, j] + h.get(above, zero) @ w[:, :, 0].T
                         + h.get(beside, zero) @ w[:, :, 1].T + b)
                o, f, g_in, g = gates.chunk(4, 1)
                c[i, j] = torch.sigmoid(f) * c.get(beside, zero) + torch.sigmoid(g_in) * torch.tanh(g)
                h[i, j] = torch.sigmoid(o) * torch.tanh(c[i, j])
        for (i, j), state in h.items():
            if direction == 0:
                out[:, :, i, j] += state
            elif i + 1 < H:
                out[:, :, i + 1, j] += state  # shifted down one row
    return out


@pytest.mark.parametrize("H,W", [(4, 5), (5, 3)])
@pytest.mark.parametrize("with_pixels", [False, True])
def test_the_diagonal_bilstm_layer_is_its_pixel_by_pixel_definition(H, W, with_pixels):
    torch.manual_seed(0)
    layer = DiagonalBiLSTMLayer(3, 4, pixel_channels=int(with_pixels))
    perturb_(layer, seed=5, scale=0.3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, H, W, generator=g)
    pixels = torch.randint(0, 2, (2, 1, H, W), generator=g).float() if with_pixels else None
    with torch.no_grad():
        torch.testing.assert_close(layer(x, pixels), reference_layer(layer, x, pixels))


# --------------------------------------------------------------------------- a distribution


@pytest.mark.parametrize("key", list(SMALL))
@pytest.mark.parametrize("shape,n_levels", [((1, 2, 3), 2), ((1, 3, 3), 2), ((1, 2, 2), 3)])
def test_probabilities_of_every_image_sum_to_one(key, shape, n_levels):
    D = shape[1] * shape[2]
    x = (all_binary(D) if n_levels == 2 else all_levels(D, n_levels)).reshape(-1, *shape)
    model = make(key, shape, n_levels, seed=6)
    with torch.no_grad():
        lp = model.log_prob(x).double()
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-5


@pytest.mark.parametrize("key", list(SMALL))
def test_sampling_matches_the_model(key):
    """Samples of a 2x2 binary model follow its own probabilities."""
    model = make(key, (1, 2, 2), seed=7)
    x = all_binary(4).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        p = model.log_prob(x).exp()
    s = model.sample(4000, generator=torch.Generator().manual_seed(0)).reshape(-1, 4)
    codes = (s * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / 4000
    se = (p * (1 - p) / 4000).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-3).all()


@pytest.mark.parametrize("name", ["diagonal_bilstm", "gated_pixelcnn"])
def test_only_single_channel_images(name):
    with pytest.raises(ValueError, match="single-channel"):
        models.create(name, (3, 4, 4))


def test_full_context_is_a_boolean():
    with pytest.raises(ValueError, match="diagonal_bilstm: full_context must be true or false, got 1"):
        models.create("diagonal_bilstm", (1, 4, 4), full_context=1)
