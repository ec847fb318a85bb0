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
# # NADE: one shared hidden layer for every conditional
#
# **Claim.** NADE writes $\log p(\mathbf{x}) = \sum_d \log p(x_d \mid \mathbf{x}_{<d})$ with
# every conditional computed by a one-hidden-layer network whose input weights are shared:
# $\mathbf{a}_1 = \mathbf{c}$, $\mathbf{a}_{d+1} = \mathbf{a}_d + \mathbf{W}_{:,d} x_d$,
# $\mathbf{h}_d = \sigma(\mathbf{a}_d)$, $p(x_d = 1 \mid \mathbf{x}_{<d}) = \sigma(b_d + \mathbf{V}_d \cdot \mathbf{h}_d)$
# {cite}`larochelle2011nade,uria2016nade`. The running pre-activation costs $O(DH)$ for all $D$
# conditionals together, and the likelihood is exact. With 500 hidden units and a fixed
# ordering the papers report 88.86 and 88.33 nats on binarized MNIST. For $K$-level pixels
# the output of each conditional is a $K$-way softmax (the seed assignment used 10 levels).
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

from densitybench import chapter, models

ch = chapter.Chapter.open("nade", profile, seed, results_dir, data_dir, device)
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
# The cumulative sum that produces $\mathbf{a}_d$ must only ever add pixels before $d$. The
# check below takes the gradient of every conditional's logit with respect to every input
# pixel, at random parameters: it must vanish exactly at and after the pixel's own position
# (the suite checks the same for several sizes, and that the $2^D$ probabilities of a small
# model sum to one).

# %% tags=["hide-input"]
nade = models.create("nade", ch.data.image_shape, **ch.specs[0].hparams, init_seed=seed)
print(nade)
leak = chapter.future_leak(chapter.dependency_maps(chapter.perturb(nade, seed), ch.images("train", 1)))
print(f"largest |d logit_d / d x_j| over j >= d: {leak:.1e} (must be exactly 0)")
assert leak == 0.0

# %% [markdown]
# ## Training
#
# The runs of this page are defined by the profile and kept in its run store: a finished run
# is read from there, a missing one is trained first (resuming from its last checkpoint if it
# was interrupted). Adam with learning rate {glue:text}`nade_lr`, minibatches of
# {glue:text}`nade_batch_size`, at most {glue:text}`nade_max_epochs` epochs with
# {glue:text}`nade_budget`, stopping when the validation NLL has not improved for
# {glue:text}`nade_patience` epochs and keeping the best epoch's weights. Why each run stopped
# (*patience*: no better validation NLL for that many epochs; *epoch cap*: the last epoch
# reached; *time budget*: the budget spent): {glue:text}`nade_stops`. This page shows seed 0;
# the test NLL over the seeds of the entries run with several (the [results page](results.ipynb)
# tabulates every seed): {glue:text}`nade_seeds`.

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
# Ancestral sampling carries the running pre-activation, so one image costs $O(DH)$. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %% tags=["hide-input"]
ch.show_samples(finished)

# %% [markdown]
# ## Completions
#
# An autoregressive model in raster order can fill in the bottom half of an image given the
# top half exactly: it samples the hidden pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %% tags=["hide-input"]
fig = ch.completion_figure([finished[first]], n_draws=3, title=f"{first}: completions of the hidden bottom half")
plt.show()

# %% [markdown]
# ## What we learned
#
# - On {glue:text}`nade_dataset`, NADE ({glue:text}`nade_run`) reaches {glue:text}`nade_nll` ±
#   {glue:text}`nade_se` nats per image, exactly computed; the published numbers and the
#   protocol differences are in the [results table](results.ipynb).
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`nade_nn_sample_median`, against {glue:text}`nade_nn_test_median` for held-out
#   test images.
# - Sharing $\mathbf{W}$ across conditionals is what makes NADE a single network of $O(DH)$
#   parameters instead of $D$ networks; the gradient check above shows that the shared
#   running sum never leaks a pixel into its own conditional.
