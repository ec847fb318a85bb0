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
# # PixelRNN: a pixel-by-pixel LSTM, the Row LSTM and the Diagonal BiLSTM
#
# **Claim.** Recurrent networks give autoregressive image models whose context is not limited
# by a kernel {cite}`vandenoord2016pixel`. The seed assignment ran an LSTM over the $D$ pixels
# as one long sequence (reading $x_{d-1}$ at step $d$); the paper's Row LSTM instead processes
# the image row by row: a masked $1\times k$ convolution of the current row (input-to-state)
# plus a $1\times k$ convolution of the previous row's hidden state (state-to-state), which
# gives each pixel a triangular receptive field above it. The Diagonal BiLSTM skews the image
# so that a $1\times2$ state-to-state convolution runs along its diagonals, in both
# directions, and sees the whole raster past. The paper reports 80.54 nats on binarized MNIST
# for the Row LSTM and 80.75 (1 layer) to 79.20 (7 layers) for the Diagonal BiLSTM, its best.
# All these likelihoods are exact.
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

from densitybench import chapter, models, plots, runs

ch = chapter.Chapter.open("pixelrnn", profile, seed, results_dir, data_dir, device)
ch.folders

# %% [markdown]
# ## Data

# %% tags=["hide-input"]
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## The models, and a check of them before training
#
# For each model, the gradient of every pixel's logits with respect to the input image must
# vanish at and after the pixel itself (checked for every pixel, at random parameters). The
# pictures show what one pixel in the middle of the image depends on, beside the profile's
# PixelCNN for comparison: the whole past for the sequence LSTM and the Diagonal BiLSTM, a
# triangle widening upwards for the Row LSTM (which, on an image large enough, leaves out the
# rest of the past: the far left of its own row and the lower corners beside the triangle),
# and the PixelCNN's field with its blind spot.

# %% tags=["hide-input"]
x = ch.images("train", 1)
H, W = ch.data.image_shape[1:]
centre = (H // 2, W // 2)
position = centre[0] * W + centre[1]
before = torch.arange(H * W).reshape(H, W) < position
pixelcnn_spec = runs.load_profile(profile).spec("pixelcnn")
probes = [(s.label or s.name, s.model, s.hparams) for s in ch.specs] + [("PixelCNN (for comparison)", "pixelcnn",
                                                                 pixelcnn_spec.hparams)]
pictures, seen, labels = {}, {}, {}
for label, model, hparams in probes:
    m = models.create(model, ch.data.image_shape, **hparams, init_seed=seed)
    maps = chapter.dependency_maps(chapter.perturb(m, seed), x)
    leak = chapter.future_leak(maps)
    print(f"{label}: largest |d logit_d / d x_j| over j >= d: {leak:.1e} (must be exactly 0)")
    assert leak == 0.0
    pictures[label] = maps[position][0]
    seen[model] = int(((pictures[label] > 0) & before).sum())
    labels[model] = label.removesuffix(" (for comparison)")
    print(f"  pixel {centre} sees {seen[model]} of the {int(before.sum())} pixels before it")
fig = plots.dependency_maps(pictures, centre)
plt.show()
glue("pixelrnn_before", int(before.sum()), display=False)
glue("pixelrnn_image", f"{H}x{W}", display=False)
n_before = int(before.sum())
why = {"row_lstm": "its triangle leaves out the far left of its own row and the lower corners beside it",
       "pixelcnn": "the rest lies in its blind spot or beyond its field"}
glue("pixelrnn_seen", "; ".join(
    f"the {labels[m]} sees {n}" + (f" ({why[m]})" if n < n_before and m in why else "") for m, n in seen.items()),
    display=False)

# %% [markdown]
# ## Training
#
# The runs of this page are defined by the profile and kept in its run store: a finished run
# is read from there, a missing one is trained first (resuming from its last checkpoint if it
# was interrupted). Adam with learning rate {glue:text}`pixelrnn_lr`, minibatches of
# {glue:text}`pixelrnn_batch_size`, at most {glue:text}`pixelrnn_max_epochs` epochs with
# {glue:text}`pixelrnn_budget`, stopping when the validation NLL has not improved for
# {glue:text}`pixelrnn_patience` epochs and keeping the best epoch's weights. Why each run
# stopped (*patience*: no better validation NLL for that many epochs; *epoch cap*: the last
# epoch reached; *time budget*: the budget spent): {glue:text}`pixelrnn_stops`.

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
# The sequence LSTM samples by carrying its state, one step per pixel; the Row LSTM here
# recomputes the whole image for each of the $D$ pixels. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %% tags=["hide-input"]
ch.show_samples(finished)

# %% [markdown]
# ## Completions
#
# Each model fills in the bottom half of test images given the top half, sampling the hidden
# pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %% tags=["hide-input"]
fig = ch.completion_figure(list(finished.values()), title="completions of the hidden bottom half")
plt.show()

# %% [markdown]
# ## What we learned
#
# - On {glue:text}`pixelrnn_dataset`, the first run ({glue:text}`pixelrnn_run`) reaches
#   {glue:text}`pixelrnn_nll` ± {glue:text}`pixelrnn_se` nats per image, exactly computed; every
#   run, the published Row LSTM number, the budget and the protocol differences are in the
#   [results table](results.ipynb).
# - Every recurrent model passes the strict-past check. Of the {glue:text}`pixelrnn_before`
#   pixels before the centre of a {glue:text}`pixelrnn_image` image: {glue:text}`pixelrnn_seen`
#   (the [PixelCNN page](pixelcnn.ipynb) draws its blind spot). The price of the larger context is
#   sequential computation: the Row LSTM's recurrence runs over the image height, the Diagonal
#   BiLSTM's over its diagonals, the sequence LSTM's over all $D$ pixels.
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`pixelrnn_nn_sample_median`, against {glue:text}`pixelrnn_nn_test_median` for
#   held-out test images.
