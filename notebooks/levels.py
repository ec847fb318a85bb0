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
profile = "digits"  # smoke | digits | mnist: fixes every hyperparameter below that is None
levels_dataset = None  # the integer-level dataset, e.g. "digits" (17 levels) or "mnist" (256)
epochs = None  # most epochs; early stopping on the validation NLL
device = "auto"  # cpu | cuda | auto
seed = 0
results_dir = None  # where the runs are written (relative to the repository); None: results/<profile>
data_dir = None  # None: $DENSITYBENCH_DATA, else <repo>/data

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from densitybench import data, models, paths, plots, report, study, train

cfg = study.config("levels", profile, levels_dataset=levels_dataset, epochs=epochs)
out = paths.resolve(results_dir, profile)
dev = train.resolve_device(device)
cfg

# %% [markdown]
# ## Data

# %%
ds = data.load(cfg["levels_dataset"], data_dir)
print(ds.description)
print(ds.sizes(), "images of shape", ds.image_shape, "with", ds.n_levels, "levels")
fig = plots.image_grid(ds.train[:64].float() / (ds.n_levels - 1), title=f"{ds.name}: training images")
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
x = ds.split("test")[:16]
for run, hp in cfg["runs"].items():
    m = models.create(run.split("-")[0], ds.image_shape, **{**hp, "n_levels": K})
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    bpd = (-m.log_prob(x) / (D * math.log(2))).detach()
    print(f"{run}: {bpd.min().item():.6f} to {bpd.max().item():.6f} bits/dim at zero parameters")
    assert torch.allclose(bpd, torch.full_like(bpd, uniform_bpd), atol=1e-5)
glue("levels_uniform_bpd", f"{uniform_bpd:.3f}", display=False)
glue("levels_K", K, display=False)

# %% [markdown]
# ## Training
#
# Each family's softmax model with Adam (learning rate {glue:text}`levels_lr`, minibatches of
# {glue:text}`levels_batch_size`), at most {glue:text}`levels_max_epochs` epochs, early stopping
# on the validation NLL with patience {glue:text}`levels_patience`, the best epoch's weights kept.

# %%
glue("levels_lr", cfg["lr"], display=False)
glue("levels_batch_size", cfg["batch_size"], display=False)
glue("levels_max_epochs", cfg["epochs"], display=False)
glue("levels_patience", cfg["patience"], display=False)

LABEL = {"made": "MADE", "nade": "NADE", "pixelcnn": "PixelCNN", "pixel_lstm": "pixel-sequence LSTM",
         "row_lstm": "Row LSTM"}
ANCHOR = {"made": "made_dequantized", "pixelcnn": "gated_pixelcnn_256"}
NOTE = {
    "made": "published: MADE with Gaussian conditionals as a continuous density on dequantized data (MAF paper "
            "setting); ours: a discrete {K}-way softmax per pixel, {size}",
    "pixelcnn": "published: a gated PixelCNN (a deeper, gated architecture without the blind spot) with a 256-way "
                "softmax; ours: the original PixelCNN, {size}",
}
records, trained = {}, {}
for run, hp in cfg["runs"].items():
    kind = run.split("-")[0]
    hp = {**hp, "n_levels": K}
    size = ", ".join(f"{k} {v}" for k, v in hp.items() if k != "n_levels")
    on_mnist = ds.name == "mnist"
    note = (NOTE.get(kind, "no published number") + "; Adam lr {lr:g}, at most {epochs} epochs, early stopping "
            "on the validation NLL").format(K=K, size=size, **cfg)
    model, rec = study.train_run(
        run, kind, hp, ds, cfg, out, seed=seed, device=dev, label=f"{LABEL[kind]}, {K}-way softmax",
        anchor=ANCHOR.get(kind) if on_mnist else None, protocol_note=note,
    )
    records[run], trained[run] = rec, model
    print(f"{run}: best epoch {rec['best_epoch']} of {rec['epochs']}, {rec['train_seconds']:.0f} s, "
          f"{rec['bits_per_dim']:.4f} bits/dim")

fig = plots.training_curves({r: rec["history"] for r, rec in records.items()})
plt.show()

# %% [markdown]
# ## Every family on the same data
#
# The table gathers every run of this profile on {glue:text}`levels_dataset`: the softmax
# models trained above and the continuous models of the [NICE](nice.ipynb) and
# [PCA + GMM](pca_gmm.ipynb) pages. Lower is better; "±" is the standard error over test
# images; a uniform model scores {glue:text}`levels_uniform_bpd` bits/dim. The GAN's Parzen
# number is not a likelihood of the model and is left out.

# %%
table = report.bits_table(report.collect(out), ds.name)
table.to_csv(out / f"bits_per_dim_{ds.name}.csv", index=False)
pd.set_option("display.max_colwidth", None)
display(table.set_index("model"))
glue("levels_dataset", ds.name, display=False)
glue("levels_best", table.iloc[0]["model"], display=False)
glue("levels_best_bpd", table.iloc[0]["bits/dim"], display=False)
glue("levels_n_models", len(table), display=False)

# %% [markdown]
# ## Samples side by side
#
# The first 36 samples of each softmax model (drawn with the run's seed, not selected); each
# run directory also holds the nearest-neighbour check.

# %%
fig, axes = plt.subplots(1, len(records), figsize=(3.2 * len(records), 3.6))
for ax, (run, r) in zip(np.atleast_1d(axes), records.items()):
    plots.image_grid(np.load(out / run / "samples.npy").astype(np.float32)[:36], title=r["label"], ax=ax)
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
