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
# # Every family on grey levels, in bits per dimension
#
# **Claim.** Autoregressive models with a $K$-way softmax per pixel are exact discrete models
# of $K$-level images, so MADE, NADE, PixelCNN and the PixelRNNs can be set beside the
# continuous models (NICE, PCA + GMM) on the same data. A continuous density $p$ on the
# dequantized images $\mathbf{y} = (\mathbf{x} + \mathbf{u}) / K$ induces a discrete model whose
# NLL is at most $\mathbb{E}_{\mathbf{u}}[-\log p(\mathbf{y})] + D \ln K$ (Jensen's inequality and
# the Jacobian $K^{-D}$ of the scaling), and bits per dimension are that NLL over $D \ln 2$.
# So a discrete model's bits/dim on $K$-level data and a continuous model's bits/dim on the
# dequantized data measure the same thing, the latter as an upper bound. Published tables
# rarely put the two kinds side by side; this page does.
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
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from densitybench import chapter, models, plots, report

ch = chapter.Chapter.open("levels", profile, seed, results_dir, data_dir, device)
ds = ch.data
ch.folders

# %% [markdown]
# ## Data

# %%
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## A check of the units before training
#
# A model that gives every level of every pixel the same probability has NLL exactly
# $D \ln K$ nats, that is $\log_2 K$ bits per dimension. Each softmax model below, with its
# parameters set to zero, must give exactly that: the reference line of the table.

# %%
D, K = ds.n_dims, ds.n_levels
uniform_bpd = math.log2(K)
x = ch.images("test", 16)
for spec in ch.specs:
    m = models.create(spec.model, ds.image_shape, **spec.hparams, init_seed=seed)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    bpd = (-m.log_prob(x) / (D * math.log(2))).detach()
    print(f"{spec.name}: {bpd.min().item():.6f} to {bpd.max().item():.6f} bits/dim at zero parameters")
    assert torch.allclose(bpd, torch.full_like(bpd, uniform_bpd), atol=1e-5)
chapter.glue_values("levels", {"uniform_bpd": f"{uniform_bpd:.3f}", "K": K})

# %% [markdown]
# ## Training
#
# The runs of this page are defined by the profile and kept in its run store: a finished run
# is read from there, a missing one is trained first (resuming from its last checkpoint if it
# was interrupted). Each family's softmax model with Adam (learning rate
# {glue:text}`levels_lr`, minibatches of {glue:text}`levels_batch_size`), at most
# {glue:text}`levels_max_epochs` epochs with {glue:text}`levels_budget`, early stopping on the
# validation NLL with patience {glue:text}`levels_patience`, the best epoch's weights kept. Why
# each run stopped (*patience*: no better validation NLL for that many epochs; *epoch cap*: the
# last epoch reached; *time budget*: the budget spent): {glue:text}`levels_stops`.

# %%
finished = ch.ensure_runs()
records = ch.glue_training(finished)
report.print_runs(records, "bits/dim")
fig = chapter.training_curves(finished)
plt.show()

# %% [markdown]
# ## Every family on the same data
#
# The table gathers the runs of this profile on {glue:text}`levels_dataset`: the softmax
# models above and the continuous models of the [NICE](nice.ipynb) and
# [PCA + GMM](pca_gmm.ipynb) pages, read from the same run store (trained first if missing).
# Lower is better; "±" is the standard error over test images; a uniform model scores
# {glue:text}`levels_uniform_bpd` bits/dim. The GAN's Parzen number is not a likelihood of the
# model and is left out. Why those runs stopped, and their training time:
# {glue:text}`levels_other_stops`.

# %%
continuous = [s for other in ("nice", "pca_gmm") for s in ch.profile.specs(chapter=other)
              if s.seed == seed and s.dataset == ds.name]
others = ch.ensure_runs(continuous)
glue("levels_other_stops", "; ".join(
    f"{name}: {r.record['stop_reason'].replace('_', ' ')} after {r.record['train_seconds']:.0f} s"
    + (f" (budget {r.spec.train['max_seconds']:g} s)" if r.spec.train["max_seconds"] else "")
    for name, r in others.items()) or "none", display=False)
table = report.bits_table([*records.values(), *(r.record for r in others.values())], ds.name)
table.to_csv(ch.results / f"bits_per_dim_{ds.name}.csv", index=False)
pd.set_option("display.max_colwidth", None)
display(table.set_index("model"))
chapter.glue_values("levels", {"dataset": ds.name, "best": table.iloc[0]["model"],
                               "best_bpd": table.iloc[0]["bits/dim"], "n_models": len(table)})

# %% [markdown]
# ## Samples side by side
#
# The first 36 samples of each softmax model (drawn with the run's seed, not selected); each
# run directory also holds the nearest-neighbour check.

# %%
fig, axes = plt.subplots(1, len(finished), figsize=(3.2 * len(finished), 3.6))
for ax, r in zip(np.atleast_1d(axes), finished.values()):
    plots.image_grid(np.load(r.path("samples.npy")).astype(np.float32)[:36], title=r.record["label"], ax=ax)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What we learned
#
# - Of the {glue:text}`levels_n_models` models measured on {glue:text}`levels_dataset`,
#   {glue:text}`levels_best` has the lowest bits/dim ({glue:text}`levels_best_bpd`), against
#   {glue:text}`levels_uniform_bpd` for a uniform model over the {glue:text}`levels_K` levels.
# - Discrete and continuous models share one scale here because uniform dequantization turns a
#   density on $[0, 1]^D$ into an upper bound on a discrete NLL; the published numbers beside
#   ours come from other architectures and budgets, stated in the [results table](results.ipynb).
