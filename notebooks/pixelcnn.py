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
# *blind spot* above and to the right of each pixel, which this page draws. With a
# $K$-way softmax per pixel (up to 256) the same network models grey levels.
#
# This page was executed with the profile and parameters in the next cell; every number in
# the text comes from that execution.

# %% tags=["parameters"]
profile = "digits"  # smoke | digits | mnist: the profile defines the runs and this page's settings
device = "auto"  # cpu | cuda | auto: where a missing run is trained
seed = 0  # the seed of the runs shown
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
data_dir = None  # None: $DENSITYBENCH_DATA, else <repo>/data

# %%
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from densitybench import chapter, models, plots
from densitybench.models.autoregressive import dependency_map

ch = chapter.Chapter.open("pixelcnn", profile, seed, results_dir, data_dir, device)
ch.folders

# %% [markdown]
# ## Data

# %%
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## The model, and a check of it before training
#
# The gradient of each pixel's logits with respect to the input image shows what the
# conditional can see. It must vanish at and after the pixel itself (checked for every
# pixel below, at random parameters); the picture shows the receptive field of the pixel in
# the middle of an image (at least 16 x 16, so that the border does not hide the effect) and
# the blind spot to its upper right.

# %%
hp = ch.specs[0].hparams
pixelcnn = models.create("pixelcnn", ch.data.image_shape, **hp, init_seed=seed)
print(pixelcnn)
leak = chapter.future_leak(chapter.dependency_maps(chapter.perturb(pixelcnn, seed), ch.images("train", 1)))
print(f"largest |d logit_d / d x_j| over j >= d: {leak:.1e} (must be exactly 0)")
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
blind = int(((centre_map == 0) & before).sum())
print(f"pixel {centre} of a {Hc}x{Wc} image: sees {int((centre_map > 0).sum())} of the {int(before.sum())} "
      f"pixels before it; blind to {blind}")
glue("pixelcnn_blind", blind, display=False)
glue("pixelcnn_before", int(before.sum()), display=False)
glue("pixelcnn_canvas", f"{Hc}x{Wc}", display=False)
fig = plots.dependency_maps({f"PixelCNN, {len(probe.blocks)} residual blocks": centre_map}, centre)
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

# %%
finished, records = ch.show_training()

# %% [markdown]
# ## Results
#
# Test NLL in nats (exact) with the standard error over test images, and bits per dimension.

# %%
first = ch.show_results(records)

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# Sampling needs one pass of the whole network per pixel ($D$ passes per image), the price
# of a model that trains in one parallel pass. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %%
ch.show_samples(finished)

# %% [markdown]
# ## Completions
#
# An autoregressive model in raster order can fill in the bottom half of an image given the
# top half exactly: it samples the hidden pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %%
fig = ch.completion_figure([finished[first]], n_draws=3, title=f"{first}: completions of the hidden bottom half")
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
#   {glue:text}`pixelcnn_canvas` image cannot see {glue:text}`pixelcnn_blind` of the
#   {glue:text}`pixelcnn_before` pixels that precede it, all of them up and to its right. The Row LSTM on the [PixelRNN page](pixelrnn.ipynb) has none.
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`pixelcnn_nn_sample_median`, against {glue:text}`pixelcnn_nn_test_median` for
#   held-out test images.
