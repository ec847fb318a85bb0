# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # PixelCNN: masked convolutions, and the blind spot
#
# **Claim.** A stack of convolutions whose kernels are masked so that nothing at or after
# pixel $(i, j)$ in raster order reaches its output is an exact autoregressive model,
# $\log p(\mathbf{x}) = \sum_{i,j} \log p(x_{i,j} \mid \mathbf{x}_{<(i,j)})$, trained in one
# parallel pass {cite}`vandenoord2016pixel`. The first layer's mask (type A) excludes the
# centre, later ones (type B) include it. The seed slides set PixelCNN against MADE; the
# paper reports 81.30 nats on binarized MNIST. Stacked masked $3\times3$ kernels leave a
# *blind spot* above and to the right of each pixel, which this page draws. The Gated PixelCNN
# {cite}`vandenoord2016conditional` removes it by splitting the network into a vertical stack
# (the rows above) and a horizontal stack (the pixels to the left in the same row), with gated
# activations; the seed slides show the two completing the same occluded images. With a
# $K$-way softmax per pixel (up to 256) the same networks model grey levels.
#
# This page was executed with the profile and parameters in the next cell; every number in
# the text comes from that execution.

# %% tags=["parameters"]
profile = "digits"  # smoke | digits | mnist: the profile defines the runs and this page's settings
device = "auto"  # cpu | cuda | auto: where a missing run is trained
seed = 0  # the seed of the runs shown
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
data_dir = None  # None: $DENSITYBENCH_DATA, else <repo>/data

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from densitybench import chapter, models, plots
from densitybench.models.autoregressive import blind_spot, dependency_map

ch = chapter.Chapter.open("pixelcnn", profile, seed, results_dir, data_dir, device)
ch.folders

# %% [markdown]
# ## Data

# %% tags=["hide-input"]
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## The model, and a check of it before training
#
# The gradient of each pixel's logits with respect to the input image shows what the
# conditional can see. It must vanish at and after the pixel itself (checked for every
# pixel below, at random parameters); the picture shows the receptive field of the pixel in
# the middle of an image (at least 16 x 16, so that the border does not hide the effect):
# the PixelCNN's blind spot to its upper right, and the Gated PixelCNN's map, which must have
# no hole: every pixel before the centre within its field is seen (the field of any
# convolutional network is bounded by its depth; checked below, pixel for pixel).

# %% tags=["hide-input"]
hp = ch.spec("pixelcnn").hparams
# the Gated PixelCNN of this profile, else one as wide and deep as its PixelCNN
gated_hp = (ch.spec("gated_pixelcnn").hparams if "gated_pixelcnn" in {s.name for s in ch.specs} else
            {k: hp[k] for k in ("n_channels", "n_blocks", "output_channels", "n_levels")})
pixelcnn = models.create("pixelcnn", ch.data.image_shape, **hp, init_seed=seed)
print(pixelcnn)
for name, params in (("pixelcnn", hp), ("gated_pixelcnn", gated_hp)):
    net = models.create(name, ch.data.image_shape, **params, init_seed=seed)
    leak = chapter.future_leak(chapter.dependency_maps(chapter.perturb(net, seed), ch.images("train", 1)))
    print(f"{name}: largest |d logit_d / d x_j| over j >= d: {leak:.1e} (must be exactly 0)")
    assert leak == 0.0
# the blind spot is a property of the architecture, not of the weights: draw it on a canvas
# of at least 16 x 16 pixels, where it is not hidden by the image border
H, W = ch.data.image_shape[1:]
canvas = (1, max(H, 16), max(W, 16))
probe = models.create("pixelcnn", canvas, **hp, init_seed=seed)
Hc, Wc = canvas[1:]
centre = (Hc // 2, Wc // 2)
position = centre[0] * Wc + centre[1]
centre_map = dependency_map(probe, position)[0]
before = torch.arange(Hc * Wc).reshape(Hc, Wc) < position
blind = int(blind_spot(centre_map > 0, position).sum())
print(f"pixel {centre} of a {Hc}x{Wc} image: sees {int((centre_map > 0).sum())} of the {int(before.sum())} "
      f"pixels before it; blind to {blind}")
gated_probe = models.create("gated_pixelcnn", canvas, **gated_hp, init_seed=seed)
gated_map = dependency_map(gated_probe, position)[0]
gated_blind = int(blind_spot(gated_map > 0, position).sum())
print(f"Gated PixelCNN, the same pixel: sees {int((gated_map > 0).sum())} of the {int(before.sum())} pixels before "
      f"it; blind to {gated_blind}")
assert gated_blind == 0, "the Gated PixelCNN must see the whole raster past within its field"
glue("pixelcnn_blind", blind, display=False)
glue("pixelcnn_gated_blind", gated_blind, display=False)
glue("pixelcnn_before", int(before.sum()), display=False)
glue("pixelcnn_canvas", f"{Hc}x{Wc}", display=False)
n_res, n_gated = len(probe.blocks), gated_hp["n_blocks"] + 1  # the gated layers: the first and n_blocks more
fig = plots.dependency_maps({f"PixelCNN, {n_res} residual block{'s' * (n_res != 1)}": centre_map,
                             f"Gated PixelCNN, {n_gated} gated layers": gated_map}, centre)
plt.show()

# %% [markdown]
# ## Training
#
# The runs of this page are defined by the profile and kept in its run store: a finished run
# is read from there, a missing one is trained first (resuming from its last checkpoint if it
# was interrupted). Adam with learning rate {glue:text}`pixelcnn_lr`, minibatches of
# {glue:text}`pixelcnn_batch_size`, at most {glue:text}`pixelcnn_max_epochs` epochs with
# {glue:text}`pixelcnn_budget`, stopping when the validation NLL has not improved for
# {glue:text}`pixelcnn_patience` epochs and keeping the best epoch's weights. Why each run
# stopped (*patience*: no better validation NLL for that many epochs; *epoch cap*: the last
# epoch reached; *time budget*: the budget spent): {glue:text}`pixelcnn_stops`.

# %% tags=["hide-input"]
finished, records = ch.show_training()

# %% [markdown]
# ## Results
#
# Test NLL in nats (exact) with the standard error over test images, and bits per dimension.

# %% tags=["hide-input"]
first = ch.show_results(records)

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# Sampling needs one pass of the whole network per pixel ($D$ passes per image), the price
# of a model that trains in one parallel pass. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %% tags=["hide-input"]
ch.show_samples(finished)

# %% [markdown]
# ## Completions: PixelCNN against Gated PixelCNN
#
# An autoregressive model in raster order can fill in the bottom half of an image given the
# top half exactly: it samples the hidden pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.
# Both models complete the same occluded test images (a seeded random choice of the test
# split), two draws each; how far each model trained, and why it stopped, is in the training
# section above.

# %% tags=["hide-input"]
compared = [run for run in finished.values() if run.spec.model in ("pixelcnn", "gated_pixelcnn")]
fig = ch.completion_figure(compared, n_draws=2,
                           title="the same test images: completions of the hidden bottom half by each model")
plt.show()

# %% [markdown]
# ## What we learned
#
# - On {glue:text}`pixelcnn_dataset`, the PixelCNN ({glue:text}`pixelcnn_run`) reaches
#   {glue:text}`pixelcnn_nll` ± {glue:text}`pixelcnn_se` nats per image, exactly computed; the
#   published number, the budget and the protocol differences are in the
#   [results table](results.ipynb).
# - The masks hold: no conditional sees its own pixel or a later one. The price of stacking
#   masked $3\times3$ kernels is the blind spot: the centre pixel of a
#   {glue:text}`pixelcnn_canvas` image cannot see {glue:text}`pixelcnn_blind` of the pixels
#   that precede it within its field (of {glue:text}`pixelcnn_before` before it), all of them
#   up and to its right. The Gated PixelCNN's two stacks leave no hole (blind to
#   {glue:text}`pixelcnn_gated_blind`).
#   The PixelRNN page draws the same map for the Row LSTM and the Diagonal BiLSTM.
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`pixelcnn_nn_sample_median`, against {glue:text}`pixelcnn_nn_test_median` for
#   held-out test images.
