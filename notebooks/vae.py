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
# # VAE: a latent-variable model whose likelihood is only bounded
#
# **Claim.** A variational autoencoder {cite}`kingma2014vae` is trained by maximising the evidence
# lower bound $\mathcal{L}(\mathbf{x}) = \mathbb{E}_{q(\mathbf{z}\mid\mathbf{x})}[\log p(\mathbf{x}\mid\mathbf{z})] -
# \mathrm{KL}(q(\mathbf{z}\mid\mathbf{x}) \,\|\, p(\mathbf{z}))$, so its likelihood is never computed, only
# bounded. The importance-weighted bound $\mathcal{L}_k(\mathbf{x}) = \mathbb{E}\log \frac{1}{k}\sum_{i=1}^k
# p(\mathbf{x}, \mathbf{z}_i) / q(\mathbf{z}_i \mid \mathbf{x})$ with $\mathbf{z}_i \sim q(\mathbf{z}\mid\mathbf{x})$
# {cite}`burda2016iwae` satisfies $\mathcal{L} = \mathcal{L}_1 \le \mathcal{L}_k \le \mathcal{L}_{k'} \le \log p(\mathbf{x})$
# for $k \le k'$: it is a *lower* bound on the log-likelihood, so $-\mathcal{L}_k$ is an *upper* bound on the
# NLL (in expectation over the importance samples), and it tightens as $k$ grows. Every NLL on this page is
# such an upper bound, never the NLL itself. Burda et al. report 87.10 nats on the fixed binarization of
# MNIST for a one-stochastic-layer model trained with the $k = 50$ importance-weighted objective and
# evaluated with $k = 5000$; here a VAE trained with the plain ELBO ($k = 1$) is evaluated the same way,
# and, as in the seed thesis, a second VAE with a two-dimensional latent space is drawn as a map of the digits.
#
# This page was executed with the profile and parameters in the next cell; the profile's plan
# defines the two runs (data, sizes, training), and every number in the text comes from that
# execution.

# %% tags=["parameters"]
profile = "digits"  # smoke | digits | mnist: the profile's plan fixes the runs (datasets, sizes, training)
device = "auto"  # cpu | cuda | auto: where a missing run is trained and the trained models are analysed
seed = 0  # the seed of the runs to read
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
data_dir = None  # None: $DENSITYBENCH_DATA, else <repo>/data

# %% tags=["hide-input"]
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue
from scipy.stats import norm

from densitybench import chapter, data, metrics, models, plots, report

ch = chapter.Chapter.open("vae", profile, seed, results_dir, data_dir, device)
specs = {s.name: s for s in ch.specs}
main_spec, map_spec = specs["vae"], specs["vae-2d"]  # the main run and the one with a 2-d latent map
pd.DataFrame([{"run": s.folder, "key": s.key, "dataset": s.dataset, **s.hparams}
              for s in specs.values()]).set_index("run")

# %% [markdown]
# ## Data

# %% tags=["hide-input"]
ds = ch.data
print(ch.describe())
fig = ch.training_grid()
plt.show()

# %% [markdown]
# ## The model, and a check of it before training
#
# The encoder is a diagonal Gaussian $q(\mathbf{z}\mid\mathbf{x}) = \mathcal{N}(\boldsymbol\mu(\mathbf{x}),
# \operatorname{diag}\boldsymbol\sigma^2(\mathbf{x}))$, the prior $\mathcal{N}(0, I)$, the decoder a product of
# Bernoullis whose logits an MLP computes from $\mathbf{z}$. The checks below, on the untrained network, are
# the two properties the reported number rests on: averaged over validation images the bound grows with the
# number of importance samples, $\mathcal{L}_1 \le \mathcal{L}_{10} \le \mathcal{L}_{100}$; and processing the
# $k$ samples in chunks (to bound memory) changes nothing but the memory.

# %% tags=["hide-input"]
hp = main_spec.hparams
vae = models.create("vae", ds.image_shape, init_seed=seed, **hp)  # untrained weights drawn from `seed`
print(vae)
print(f"{vae.n_params():,} parameters; likelihood: {vae.likelihood}")

x = ch.images("valid", 300)
with torch.no_grad():
    bounds = {k: vae.iwae(x, k, generator=torch.Generator().manual_seed(seed)).mean().item() for k in (1, 10, 100)}
    print("mean L_k over", len(x), "validation images (untrained):", {k: round(v, 2) for k, v in bounds.items()})
    assert bounds[1] <= bounds[10] <= bounds[100]

    chunked = models.create("vae", ds.image_shape, **{**hp, "k_chunk": 7})
    chunked.load_state_dict(vae.state_dict())
    a = vae.iwae(x[:20], 50, generator=torch.Generator().manual_seed(seed))
    b = chunked.iwae(x[:20], 50, generator=torch.Generator().manual_seed(seed))
    print(f"largest |L_50 in one chunk - L_50 in chunks of 7|: {(a - b).abs().max().item():.1e}")
    assert torch.allclose(a, b, atol=1e-4)
    # log_prob draws its importance samples from a generator seeded with eval_seed: the same number every call
    assert torch.equal(vae.log_prob(x[:4]), vae.log_prob(x[:4]))

# %% [markdown]
# ## Training
#
# Both runs minimise the negative ELBO with one reparameterised sample and the analytic KL (the VAE
# objective, $k = 1$): Adam, minibatches of {glue:text}`vae_batch_size` images, learning rate
# {glue:text}`vae_lr` ({glue:text}`vae_lr_schedule`), at most {glue:text}`vae_budget`, stopping when the
# validation negative ELBO has not improved for {glue:text}`vae_patience` epochs and keeping the best
# epoch's weights. Early stopping watches the ELBO, not `log_prob`, because `log_prob` is the
# importance-weighted bound with $k =$ {glue:text}`vae_k_eval` samples, too expensive to compute every
# epoch. The validation and test ELBOs draw their noise from a generator with a fixed seed, so the
# criterion does not jitter between epochs. The first run warms the KL term up
# {cite}`bowman2016continuous,sonderby2016ladder`: over its first {glue:text}`vae_warmup_epochs` epochs the training loss weights
# the KL by a factor rising linearly from 0 to 1, which keeps more latent units in use; from then on it
# is the negative ELBO itself. During the warm-up the dashed training curve is that weighted loss, below
# the negative ELBO; the validation curve is always the negative ELBO.
#
# The second run, `vae-2d`, has a two-dimensional latent space so that the encoder's map of the data can be
# drawn. It needs labels to colour that map: when the binary dataset has them (the binary 8x8 digits do) it
# is trained on the same data; the fixed binarized MNIST carries no labels, so at the MNIST scale the map
# uses 8-bit MNIST binarized once with a seed, $x_d \sim \mathrm{Bernoulli}(\text{level}_d / 255)$. Here it
# was trained on {glue:text}`vae_2d_dataset`.
#
# Both runs are read from the profile's run store, where each is trained once (and resumed if it was
# interrupted); this page only analyses them. {glue:text}`vae_stop` This page shows seed 0; the
# bound $-\mathcal{L}_k$ over the seeds of the entries run with several (the
# [results page](results.ipynb) tabulates every seed): {glue:text}`vae_seeds`.

# %% tags=["hide-input"]
finished = ch.ensure_runs()
records = chapter.records(finished)
for name, r in records.items():
    print(f"{name}: best epoch {r['best_epoch']} of {r['epochs']} ({r['stop_reason']}), {r['train_seconds']:.0f} s, "
          f"test -ELBO {r['test_neg_elbo_nats']:.2f}, test -L_{specs[name].hparams['k_eval']} {r['test_nll_nats']:.2f}")

fig = plots.training_curves({name: r["history"] for name, r in records.items()}, ylabel="negative ELBO (nats)")
fig.axes[0].set_title("training (dashed) and validation (solid) negative ELBO")
plt.show()

tr = main_spec.train
assert map_spec.train == tr, "the text states one set of training settings for both runs"
steps_per_epoch = math.ceil(ds.sizes()["train"] / tr["batch_size"])
warmup_epochs = hp["kl_warmup"] / steps_per_epoch  # the warm-up is counted in optimiser steps
budget = report.limit_phrase(tr)
chapter.glue_values("vae", {
    "batch_size": tr["batch_size"], "lr": tr["lr"],
    "lr_schedule": f"multiplied by {tr['lr_gamma']:g} every {tr['lr_step']} epochs" if tr["lr_step"] else "constant",
    "budget": budget, "patience": tr["patience"], "k_eval": hp["k_eval"],
    "warmup_epochs": f"{warmup_epochs:g}" if warmup_epochs == round(warmup_epochs) else f"{warmup_epochs:.1f}",
    "2d_dataset": map_spec.dataset,
})
chapter.glue_values("vae", {"seeds": report.seeds_phrase(ch.profile, ch.store, "vae")})
glue("vae_stop", " ".join(
    f"Run {name} ran {r['epochs']} epochs in {r['train_seconds']:.0f} s and stopped "
    f"{report.stop_clause(r, specs[name].train, 'validation negative ELBO')}; "
    f"the weights of epoch {r['best_epoch']} were kept."
    for name, r in records.items()), display=False)

# %% [markdown]
# ## Results
#
# Two numbers per run, both upper bounds on the test NLL in nats with the standard error over test images:
# the negative ELBO (what training minimised) and $-\mathcal{L}_k$ with $k =$ {glue:text}`vae_k_eval`
# importance samples (the model's `log_prob`, and the column compared with the literature). Neither is the
# NLL; the true NLL lies below both. The published number, where there is one, was made under a different
# protocol, stated under the table.

# %% tags=["hide-input"]
rows = []
for run, r in records.items():
    pub = r["anchor"]
    rows.append({
        "run": run, "label": r["label"], "dataset": r["dataset"], "k": specs[run].hparams["k_eval"],
        "test -L_k (nats, ≥ NLL)": f"{r['test_nll_nats']:.2f} ± {r['test_nll_se']:.2f}",
        "test -ELBO (nats, ≥ NLL)": f"{r['test_neg_elbo_nats']:.2f} ± {r['test_neg_elbo_se']:.2f}",
        # the validation -L_k is skipped where it costs too much (the mnist profile); -ELBO chose the epoch
        "valid -L_k (nats)": f"{r['valid_nll_nats']:.2f}" if r.get("valid_nll_nats") is not None else "—",
        "valid -ELBO (nats)": f"{min(e['valid_loss'] for e in r['history']):.2f}",
        "bits/dim (bound)": f"{r['bits_per_dim']:.4f}",
        "params": r["n_params"], "epochs (best)": f"{r['epochs']} ({r['best_epoch']})",
        "train s": round(r["train_seconds"]), "published": f"{pub['value']:.2f}" if pub else "—",
    })
table = pd.DataFrame(rows).set_index("run")
display(table)
for run, r in records.items():
    print(f"{run}: {r['protocol_note']}")
    if r["anchor"]:
        print(f"  published: {r['anchor']['model']}, {r['anchor']['value']:.2f} {r['anchor']['unit']} "
              f"({r['anchor']['source']})")

main = records["vae"]
d2 = records["vae-2d"]["test_nll_nats"] - main["test_nll_nats"]
chapter.glue_values("vae", {
    "dataset": main["dataset"], "bound": f"{main['test_nll_nats']:.2f}", "bound_se": f"{main['test_nll_se']:.2f}",
    "elbo": f"{main['test_neg_elbo_nats']:.2f}", "elbo_se": f"{main['test_neg_elbo_se']:.2f}",
    "elbo_gap": f"{main['test_neg_elbo_nats'] - main['test_nll_nats']:.2f}",
    "2d_bound": f"{records['vae-2d']['test_nll_nats']:.2f}",
    "2d_vs_main": f"{abs(d2):.2f} nats {'worse' if d2 > 0 else 'better'} than the {hp['latent_dim']}-d model on the "
    "same images" if map_spec.dataset == main_spec.dataset
    else f"not comparable with the main run's, which was measured on {main_spec.dataset}",
    "latent_dim": hp["latent_dim"],
})

# %% [markdown]
# On {glue:text}`vae_dataset`, the VAE with {glue:text}`vae_latent_dim` latent dimensions has a test
# negative ELBO of {glue:text}`vae_elbo` ± {glue:text}`vae_elbo_se` nats and an importance-weighted bound of
# {glue:text}`vae_bound` ± {glue:text}`vae_bound_se` nats: the $k =$ {glue:text}`vae_k_eval` bound is
# {glue:text}`vae_elbo_gap` nats tighter than the ELBO the network was trained on.

# %% [markdown]
# ## How the bound tightens with the number of importance samples
#
# The same trained model, the same test images (the whole test split), more importance samples:
# $-\mathcal{L}_k$ can only come down (in expectation) towards the NLL. Each smaller $k$ is computed here with
# its own seeded draw of samples; the largest, $k =$ {glue:text}`vae_k_eval`, is the run's recorded test bound,
# the number of the results table. The grey line is the negative ELBO with the analytic KL, whose expectation
# equals $-\mathcal{L}_1$.

# %% tags=["hide-input"]
model = finished["vae"].model().to(ch.device)
x_k = ch.data.split("test").to(model.device)  # every test image: the images of the recorded bound
ks = sorted(k for k in (1, 10, 100) if k < hp["k_eval"])
tight = []
with torch.no_grad():
    for k in ks:
        g = torch.Generator().manual_seed(seed)
        v = torch.cat([-model.iwae(b, k, generator=g) for b in x_k.split(500)]).double().cpu().numpy()
        mean, se = metrics.mean_se(v)
        tight.append({"k": k, "-L_k (nats)": mean, "se": se, "from": "computed here"})
elbo_k = float(model.neg_elbo(x_k).mean())  # every test image; its noise seeded as in the record's test -ELBO
tight.append({"k": hp["k_eval"], "-L_k (nats)": main["test_nll_nats"], "se": main["test_nll_se"],
              "from": "the run's record (the results table)"})
tight = pd.DataFrame(tight).set_index("k")
display(tight.round(3))
ks = list(tight.index)

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.errorbar(tight.index, tight["-L_k (nats)"], yerr=tight["se"], marker="o", capsize=3, label="$-\\mathcal{L}_k$")
ax.axhline(elbo_k, color="grey", ls="--", label="negative ELBO (analytic KL)")
ax.set_xscale("log")
ax.set_xlabel("importance samples k")
ax.set_ylabel("nats (upper bound on the NLL)")
ax.set_title(f"{ds.name}: the IWAE bound on {len(x_k)} test images")
ax.legend(fontsize=8, loc="center right")
fig.tight_layout()
plt.show()

bound_k = tight["-L_k (nats)"]
chapter.glue_values("vae", {"k_images": len(x_k), "k_first": f"{bound_k.iloc[0]:.2f}",
                            "k_last": f"{bound_k.iloc[-1]:.2f}", "k_max": ks[-1],
                            "k_drop": f"{bound_k.iloc[0] - bound_k.iloc[-1]:.2f}"})
monotone = bool(np.all(np.diff(tight["-L_k (nats)"].to_numpy()) <= 0))
glue("vae_k_monotone", "decreases at every step, as the ordering of the bounds requires in expectation" if monotone
     else "does not decrease at every step: the ordering holds in expectation, and each point is one draw", display=False)

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# Ancestral sampling: $\mathbf{z} \sim \mathcal{N}(0, I)$, then every pixel $x_d \sim \mathrm{Bernoulli}$
# independently given $\mathbf{z}$. Each sample is set above its nearest training image (Hamming distance:
# the number of differing pixels). If the model copied its training set, samples would sit much closer to
# their neighbours than held-out test images do; the histogram compares the two.

# %% tags=["hide-input"]
chapter.show_samples(finished)
chapter.glue_nearest_neighbour("vae", records["vae"], ".0f")

# %% [markdown]
# ## The two-dimensional latent space
#
# With $L = 2$ the encoder's means $\boldsymbol\mu(\mathbf{x})$ of the test images can be plotted directly,
# coloured by the digit each image shows (the labels are not used in training). The decoder can be read the
# other way: the grid shows the mean image $\mathbb{E}[\mathbf{x}\mid\mathbf{z}]$ (pixel probabilities) at
# points $\mathbf{z}$ spaced evenly in probability under the prior, $\Phi^{-1}$ of an even grid in
# $(0.05, 0.95)$ along each axis.

# %% tags=["hide-input"]
vae2 = finished["vae-2d"].model().to(ch.device)
ds2 = ds if map_spec.dataset == ds.name else data.load(map_spec.dataset, data_dir)
assert ds2.labels is not None, f"{ds2.name} has no labels to colour the latent map with"
with torch.no_grad():
    mu, _ = vae2.encode(ds2.split("test").to(vae2.device))
mu = mu.cpu().numpy()
y = ds2.labels["test"].numpy()
fig, ax = plt.subplots(figsize=(5.5, 4.5))
sc = ax.scatter(mu[:, 0], mu[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=8, alpha=0.8)
fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
ax.set_xlabel("$\\mu_1(\\mathbf{x})$")
ax.set_ylabel("$\\mu_2(\\mathbf{x})$")
ax.set_title(f"{ds2.name}: encoder means of {len(mu)} test images")
fig.tight_layout()
plt.show()

n_grid = 15
q = norm.ppf(np.linspace(0.05, 0.95, n_grid))
z1, z2 = np.meshgrid(q, q[::-1])  # rows from the top: z2 decreasing, as on the scatter's axis
z = torch.tensor(np.stack([z1.ravel(), z2.ravel()], 1), dtype=torch.float32, device=vae2.device)
with torch.no_grad():
    means = vae2.decode_mean(z).cpu()
fig, ax = plt.subplots(figsize=(7, 7))
plots.image_grid(means, n_cols=n_grid, ax=ax,
                 title=f"decoder means E[x | z] on a {n_grid}x{n_grid} grid, z in [{q[0]:.2f}, {q[-1]:.2f}]^2")
plt.show()

# how well the 2-d means separate the digits: a nearest-centroid classifier on the map (labels used only here)
centroids = np.stack([mu[y == c].mean(0) for c in range(10)])
acc = float((np.argmin(((mu[:, None, :] - centroids[None]) ** 2).sum(-1), 1) == y).mean())
glue("vae_2d_centroid_acc", f"{acc:.0%}", display=False)

# %% [markdown]
# ## What we learned
#
# - A VAE's number is a bound, and which bound matters: on {glue:text}`vae_dataset` the test negative
#   ELBO is {glue:text}`vae_elbo` nats and the importance-weighted bound with
#   {glue:text}`vae_k_eval` samples {glue:text}`vae_bound` nats. Both lie above the unknown NLL; reporting
#   the ELBO as a likelihood would have cost {glue:text}`vae_elbo_gap` nats.
# - On {glue:text}`vae_k_images` test images, $-\mathcal{L}_k$ goes from {glue:text}`vae_k_first` nats
#   at $k = 1$ to {glue:text}`vae_k_last` at $k =$ {glue:text}`vae_k_max` (down by {glue:text}`vae_k_drop`);
#   it {glue:text}`vae_k_monotone`.
# - The median Hamming distance from a sample to its nearest training image is
#   {glue:text}`vae_nn_sample_median` pixels, against {glue:text}`vae_nn_test_median` for held-out test
#   images.
# - Two latent dimensions are enough to draw a map of the digits: a nearest-centroid rule on the 2-d encoder
#   means recovers the digit of {glue:text}`vae_2d_centroid_acc` of the test images, although no label was
#   used in training. The 2-d model's bound is {glue:text}`vae_2d_bound` nats,
#   {glue:text}`vae_2d_vs_main`.
