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
# # PixelRNN: a pixel-by-pixel LSTM and the Row LSTM
#
# **Claim.** Recurrent networks give autoregressive image models whose context is not limited
# by a kernel {cite}`vandenoord2016pixel`. The seed assignment ran an LSTM over the $D$ pixels
# as one long sequence (reading $x_{d-1}$ at step $d$); the paper's Row LSTM instead processes
# the image row by row: a masked $1\times k$ convolution of the current row (input-to-state)
# plus a $1\times k$ convolution of the previous row's hidden state (state-to-state), which
# gives each pixel a triangular receptive field above it. The paper reports 80.54 nats on
# binarized MNIST for the Row LSTM. Both likelihoods are exact.
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

from densitybench import chapter, models, plots

ch = chapter.Chapter.open("pixelrnn", profile, seed, results_dir, data_dir, device)
ch.folders

# %% [markdown]
# ## Data

# %%
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## The models, and a check of them before training
#
# For each model, the gradient of every pixel's logits with respect to the input image must
# vanish at and after the pixel itself (checked for every pixel, at random parameters). The
# pictures show what one pixel in the middle of the image depends on: the whole past for the
# sequence LSTM, a triangle widening upwards for the Row LSTM.

# %%
x = ch.images("train", 1)
H, W = ch.data.image_shape[1:]
centre = (H // 2, W // 2)
pictures = {}
for spec in ch.specs:
    m = models.create(spec.model, ch.data.image_shape, **spec.hparams, init_seed=seed)
    print(m)
    maps = chapter.dependency_maps(chapter.perturb(m, seed), x)
    leak = chapter.future_leak(maps)
    print(f"{spec.name}: largest |d logit_d / d x_j| over j >= d: {leak:.1e} (must be exactly 0)")
    assert leak == 0.0
    pictures[spec.name] = maps[centre[0] * W + centre[1]][0]
fig = plots.dependency_maps(pictures, centre)
plt.show()

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
# The sequence LSTM samples by carrying its state, one step per pixel; the Row LSTM here
# recomputes the whole image for each of the $D$ pixels. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %%
ch.show_samples(finished)

# %% [markdown]
# ## Completions
#
# Each model fills in the bottom half of test images given the top half, sampling the hidden
# pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %%
fig = ch.completion_figure(list(finished.values()), title="completions of the hidden bottom half")
plt.show()

# %% [markdown]
# ## What we learned
#
# - On {glue:text}`pixelrnn_dataset`, the first run ({glue:text}`pixelrnn_run`) reaches
#   {glue:text}`pixelrnn_nll` ± {glue:text}`pixelrnn_se` nats per image, exactly computed; every
#   run, the published Row LSTM number, the budget and the protocol differences are in the
#   [results table](results.ipynb).
# - Both recurrent models pass the strict-past check; the Row LSTM's receptive field has no
#   blind spot, unlike the [PixelCNN](pixelcnn.ipynb)'s, but its row-by-row recurrence is
#   sequential in the image height, and the sequence LSTM's in all $D$ pixels.
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`pixelrnn_nn_sample_median`, against {glue:text}`pixelrnn_nn_test_median` for
#   held-out test images.
