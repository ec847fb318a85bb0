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

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display
from myst_nb import glue

from densitybench import data, models, paths, plots, report, runs, study, train
from densitybench.models.autoregressive import dependency_map

prof = runs.load_profile(profile)
cfg = study.config("nade", profile)
out = paths.resolve(results_dir, profile)
store = out / "runs"
dev = train.resolve_device(device)
specs = [s for s in prof.specs(chapter="nade") if s.seed == seed]
assert specs, f"profile {profile!r} has no NADE run with seed {seed}"
[s.folder for s in specs]

# %% [markdown]
# ## Data

# %%
ds = data.load(cfg["dataset"], data_dir)
assert all(s.dataset == ds.name for s in specs), "every run of this page is trained on the page's dataset"
print(ds.description)
print(ds.sizes(), "images of shape", ds.image_shape)
fig = plots.image_grid(ds.train[:64].float(), title=f"{ds.name}: training images")
plt.show()

# %% [markdown]
# ## The model, and a check of it before training
#
# The cumulative sum that produces $\mathbf{a}_d$ must only ever add pixels before $d$. The
# check below takes the gradient of every conditional's logit with respect to every input
# pixel, at random parameters: it must vanish exactly at and after the pixel's own position
# (the suite checks the same for several sizes, and that the $2^D$ probabilities of a small
# model sum to one).

# %%
nade = models.create("nade", ds.image_shape, **specs[0].hparams, init_seed=seed)
print(nade)
with torch.no_grad():
    for p in nade.parameters():
        p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
x = ds.split("train")[:1]
D = ds.n_dims
leaks = [dependency_map(nade, d, x).reshape(-1)[d:].abs().max().item() for d in range(D)]
print(f"largest |d logit_d / d x_j| over j >= d: {max(leaks):.1e} (must be exactly 0)")
assert max(leaks) == 0.0

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
# reached; *time budget*: the budget spent): {glue:text}`nade_stops`.

# %%
finished = runs.ensure_all(specs, store, device=device, data_dir=data_dir)
records = {name: r.record for name, r in finished.items()}
settings = report.glue_training("nade", specs, records)

report.print_runs(records, "test NLL")
fig = plots.training_curves({name: r.history for name, r in finished.items()})
plt.show()

# %% [markdown]
# ## Results
#
# Test NLL in nats (exact) with the standard error over test images, and bits per dimension.

# %%
display(report.run_table(records))
first = next(iter(records))
glue("nade_run", first, display=False)
glue("nade_dataset", records[first]["dataset"], display=False)
glue("nade_nll", f"{records[first]['test_nll_nats']:.2f}", display=False)
glue("nade_se", f"{records[first]['test_nll_se']:.2f}", display=False)

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# Ancestral sampling carries the running pre-activation, so one image costs $O(DH)$. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %%
for name, r in finished.items():
    print(name)
    for figure in ("samples.png", "neighbours.png", "nn_distances.png"):
        display(Image(filename=r.path(figure)))
nn = records[first]["nearest_neighbour"]
glue("nade_nn_sample_median", f"{nn['samples']['q50']:.3g}", display=False)
glue("nade_nn_test_median", f"{nn['test']['q50']:.3g}", display=False)

# %% [markdown]
# ## Completions
#
# An autoregressive model in raster order can fill in the bottom half of an image given the
# top half exactly: it samples the hidden pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %%
model = finished[first].model().to(dev)
H = ds.image_shape[1]
test = ds.split("test")[:8].to(model.device)
g = torch.Generator(device=model.device).manual_seed(seed)
filled = {f"sample {i + 1}": model.complete(test, D // 2, generator=g).cpu() for i in range(3)}
fig = plots.completions(test.cpu(), H // 2, filled, title=f"{first}: completions of the hidden bottom half")
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
