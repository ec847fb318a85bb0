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
# # The baselines: PCA + GMM and a mixture of Bernoullis
#
# **Claim.** The study began by setting MADE against PCA + GMM and finding MADE's samples
# richer. For that comparison to be about densities and not only pictures, the baseline must
# be a density in pixel space: here a Gaussian mixture on the principal subspace times an
# isotropic Gaussian on the discarded directions, evaluated on dequantized 8-bit images and
# reported in nats and bits/dim. On binary data the classical baseline is a mixture of
# multivariate Bernoullis fitted by EM {cite}`germain2015made` (137.64 nats with $K = 500$ on
# binarized MNIST).
#
# This page was executed with the profile and parameters in the next cell; the profile's plan
# defines the runs (data, components, EM settings), and every number in the text comes from that
# execution.

# %% tags=["parameters"]
profile = "digits"  # smoke | digits | mnist: the profile's plan fixes the runs (datasets, components, EM)
device = "cpu"  # cpu | cuda | auto: where a missing run is fitted
seed = 0  # the seed of the runs to read
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
data_dir = None  # None: $DENSITYBENCH_DATA, else <repo>/data

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from densitybench import chapter, data, models, report

ch = chapter.Chapter.open("pca_gmm", profile, seed, results_dir, data_dir, device)
gmm_spec = ch.spec("pca_gmm")
mob_specs = [s for s in ch.specs if s.model == "bernoulli_mixture"]
pd.DataFrame([{"run": s.folder, "key": s.key, "model": s.model, "dataset": s.dataset, **s.hparams}
              for s in ch.specs]).set_index("run")

# %% [markdown]
# ## Data
#
# PCA + GMM is a continuous density, so it is fitted to and evaluated on dequantized images
# $\mathbf{y} = (\mathbf{x} + \mathbf{u}) / K$ with $\mathbf{u} \sim U(0, 1)^D$ and $K$ grey levels.
# Its NLL on the discrete images is then bounded through the change of variables,
# $-\log P(\mathbf{x}) \le -\mathbb{E}_{\mathbf{u}} \log p(\mathbf{y}) + D \log K$, and
# bits/dim $= \mathrm{NLL} / (D \ln 2)$.

# %% tags=["hide-input"]
grey, binary = ch.data, ch.load("binary_dataset", [s.name for s in mob_specs])
for d in (grey, binary):
    print(f"{d.name}: {d.description} {d.sizes()}")
gen = torch.Generator().manual_seed(seed)
y_train = data.dequantize(grey.train, grey.n_levels, gen)
# validation and test use one fixed dequantization draw (data.DEQUANTIZATION_SEED)
y_valid = data.dequantize(grey.valid, grey.n_levels, torch.Generator().manual_seed(data.DEQUANTIZATION_SEED))

# %% [markdown]
# ## PCA + GMM: the model, and a check of it before the full fit
#
# The density is $p(\mathbf{y}) = \sum_k \pi_k\, \mathcal{N}(\mathbf{z}; \mathbf{m}_k, S_k)\,
# \mathcal{N}(\mathbf{r}; 0, \sigma^2 I_{D-d})$ with $\mathbf{z} = W^\top(\mathbf{y} - \mathbf{b})$ the
# principal coordinates and $\mathbf{r}$ the residual; the rotation has unit Jacobian. The check
# fits a small instance and compares it with the same mixture written directly in pixel space,
# $\mathcal{N}(\mathbf{y}; \mathbf{b} + W\mathbf{m}_k, W S_k W^\top + \sigma^2 (I - W W^\top))$, computed by scipy.

# %% tags=["hide-input"]
from scipy.stats import multivariate_normal
from scipy.special import logsumexp

small = models.create("pca_gmm", grey.image_shape, variance=gmm_spec.hparams["variance"], n_components=2, max_iter=20,
                      seed=seed)
small.fit_closed_form(chapter.subset(y_train, 500, seed), chapter.subset(y_valid, 100, seed), progress=False)
W, b, s2 = small.components.numpy(), small.pca_mean.numpy(), small.noise_variance.item()
P = small.prec_chol.numpy()
y5 = chapter.subset(y_valid, 5, seed)
yy = y5.reshape(5, -1).double().numpy()
direct = []
for k in range(2):
    S = np.linalg.inv(P[k] @ P[k].T)
    cov = W @ S @ W.T + s2 * (np.eye(W.shape[0]) - W @ W.T)
    direct.append(small.log_weights[k].item() + multivariate_normal(b + W @ small.means[k].numpy(), cov).logpdf(yy))
direct = logsumexp(np.stack(direct), 0)
ours = small.log_prob(y5).double().numpy()
print("ours  :", np.round(ours, 3))
print("scipy :", np.round(direct, 3))
assert np.allclose(ours, direct, rtol=1e-6, atol=1e-3)

# %% [markdown]
# ## Fitting PCA + GMM
#
# PCA keeps {glue:text}`pca_variance` of the variance; the mixture has
# {glue:text}`gmm_components` full-covariance components fitted by EM from a k-means start
# (at most {glue:text}`gmm_max_iter` iterations; {glue:text}`gmm_stop`). The fitted run is read
# from the profile's run store, where it is fitted once; this page only analyses it.

# %% tags=["hide-input"]
finished = ch.ensure_runs([gmm_spec])
r = finished[gmm_spec.name].record
# the fit's one history entry: EM iterations and the principal directions kept (read from the record, so
# that the page needs no checkpoint: at the MNIST scale it is too large to commit)
n_iter, n_principal = r["history"][-1]["epoch"], r["history"][-1]["n_principal"]
print(f"kept {n_principal} principal directions; {n_iter} EM iterations ({r['stop_reason']}), "
      f"{r['train_seconds']:.1f} s")
em_stop = {"converged": "EM converged", "patience": "the validation NLL had stopped improving",
           "iteration_cap": "EM reached its iteration cap"}
chapter.glue_values("pca", {"variance": f"{gmm_spec.hparams['variance']:.0%}", "dims": n_principal})
chapter.glue_values("gmm", {
    "components": gmm_spec.hparams["n_components"], "max_iter": gmm_spec.hparams["max_iter"],
    "stop": f"{n_iter} were run in {r['train_seconds']:.2g} s, and {em_stop[r['stop_reason']]}",
})
chapter.glue_values("pca_gmm", {
    "bpd": f"{r['bits_per_dim']:.3f}", "bpd_se": f"{r['bits_per_dim_se']:.3f}", "nll": f"{r['test_nll_nats']:.1f}",
    "nll_cont": f"{r['test_nll_nats_continuous']:.1f}",
})

# %% [markdown]
# PCA kept {glue:text}`pca_dims` directions. On the test images the model scores
# {glue:text}`pca_gmm_bpd` ± {glue:text}`pca_gmm_bpd_se` bits/dim, that is
# {glue:text}`pca_gmm_nll` nats per image on the discrete data (an upper bound, from
# {glue:text}`pca_gmm_nll_cont` nats of density on the unit cube plus $D \log K$).

# %% [markdown]
# ## The mixture of Bernoullis on binary images
#
# EM with a weak Beta prior on each pixel probability, stopped when the validation NLL stops
# improving; the log-likelihood is exact. {glue:text}`mob_stop` This page shows seed 0; the test
# NLL over the seeds of the entries run with several (the [results page](results.ipynb)
# tabulates every seed): {glue:text}`mob_seeds`.

# %% tags=["hide-input"]
stops = []
finished.update(ch.ensure_runs(mob_specs))
for spec in mob_specs:
    K = spec.hparams["n_components"]
    rk = finished[spec.name].record
    print(f"{spec.folder} (K={K}): {rk['epochs']} EM iterations ({rk['stop_reason']}), test NLL "
          f"{rk['test_nll_nats']:.2f} ± {rk['test_nll_se']:.2f}")
    stops.append(f"{rk['label']}: {rk['epochs']} of at most {spec.hparams['max_iter']} iterations were run in "
                 f"{rk['train_seconds']:.2g} s, and {em_stop[rk['stop_reason']]}.")
glue("mob_stop", " ".join(stops), display=False)
glue("mob_seeds", report.seeds_phrase(ch.profile, ch.store, "pca_gmm"), display=False)

records = chapter.records(finished)
fig = chapter.training_curves({s.name: finished[s.name] for s in mob_specs}, ylabel="NLL (nats); x: EM iteration")
plt.show()

# %% [markdown]
# ## The mixtures against their published numbers
#
# A mixture of Bernoullis is simple enough to check by hand. For each fitted mixture the table
# recomputes the test NLL from the saved parameters alone, in float64 with numpy
# ($-\log p(\mathbf{x}) = -\log \sum_k \pi_k \prod_d \mu_{kd}^{x_d} (1 - \mu_{kd})^{1 - x_d}$), and
# checks (an assertion in the cell) that the weights sum to one and every $\mu_{kd}$ lies strictly
# inside $(0, 1)$. Beside
# it: the published number for the same $K$ on the same data, the first EM iteration at which our
# *validation* NLL was already below it, and a check run whose Beta prior is 100 times weaker
# (close to the maximum-likelihood fit), where the profile has one.
# {glue:text}`mob_published_text`

# %% tags=["hide-input"]
from scipy.special import logsumexp as np_logsumexp

x_test = binary.test.reshape(len(binary.test), -1).double().numpy()
check_rows, text = [], []
for spec in mob_specs:
    run, rk = finished[spec.name], finished[spec.name].record
    m = run.model()
    mu, log_w = m.probs.double().numpy(), m.log_weights.double().numpy()
    joint = x_test @ (np.log(mu) - np.log1p(-mu)).T + np.log1p(-mu).sum(1) + log_w
    recomputed = float(-np_logsumexp(joint, axis=1).mean())
    pub = rk["anchor"]
    below = next((h["epoch"] for h in rk["history"] if pub and h["valid_loss"] < pub["value"]), None)
    check_rows.append({
        "run": spec.folder, "K": spec.hparams["n_components"], "prior strength": m.alpha,
        "test NLL (nats)": f"{rk['test_nll_nats']:.2f} ± {rk['test_nll_se']:.2f}",
        "recomputed (numpy, float64)": f"{recomputed:.4f}",
        "|difference|": f"{abs(recomputed - rk['test_nll_nats']):.1e}",
        "μ range": f"[{mu.min():.1e}, {mu.max():.6f}]",
        "train / valid NLL": f"{rk['history'][rk['best_epoch'] - 1]['train_loss']:.2f} / {rk['valid_nll_nats']:.2f}",
        "EM iterations": f"{rk['epochs']} ({rk['stop_reason'].replace('_', ' ')})",
        "published": f"{pub['value']:.2f}" if pub else "—",
        "valid below published at iteration": below if pub else "—",
    })
    assert abs(recomputed - rk["test_nll_nats"]) < 1e-3 and abs(np.exp(np_logsumexp(log_w)) - 1) < 1e-6
    assert 0 < mu.min() and mu.max() < 1
checks = pd.DataFrame(check_rows).set_index("run")
display(checks)

by_k = {}
for spec in mob_specs:
    by_k.setdefault(spec.hparams["n_components"], []).append(spec)
for K, specs_k in by_k.items():
    main = next((s for s in specs_k if s.anchor), None)
    if main is None:
        continue
    rk, pub = finished[main.name].record, finished[main.name].record["anchor"]
    gap = rk["test_nll_nats"] - pub["value"]
    sentence = (f"For K = {K}, ours is {rk['test_nll_nats']:.2f} ± {rk['test_nll_se']:.2f} against the published "
                f"{pub['value']:.2f} ({gap:+.2f} nats)")
    for other in (s for s in specs_k if s is not main):
        ro = finished[other.name].record
        sentence += (f"; with the prior {other.hparams.get('alpha', 0.01):g} instead of 0.01 it is "
                     f"{ro['test_nll_nats']:.2f} ± {ro['test_nll_se']:.2f}"
                     + (", so the smoothing of the pixel probabilities accounts for the gap" if
                        abs(ro["test_nll_nats"] - pub["value"]) < 2 else
                        f", {ro['test_nll_nats'] - rk['test_nll_nats']:+.2f} nats from ours: the prior does not "
                        f"explain the gap"))
    text.append(sentence + ".")
explained = any("accounts for the gap" in t for t in text)
glue("mob_published_text", " ".join(text) + (
    "" if not text else
    " The recomputation agrees with the recorded numbers and the fitted mixtures are proper distributions, so the "
    "gain is not an evaluation error of ours. " + (
        "" if explained else
        "The table we take the published number from does not state how that mixture was fitted (initialisation, "
        "smoothing, number of EM iterations); our validation NLL is below it from the EM iteration given in the "
        "table onward. Why the published fit scores worse stays unexplained here.")) if text
     else "This profile has no published number for a mixture of Bernoullis.",
     display=False)

# %% [markdown]
# ## Results

# %% tags=["hide-input"]
rows = []
for name, r in records.items():
    pub = r["anchor"]
    rows.append({"run": name, "dataset": r["dataset"], "likelihood": r["likelihood"],
                 "test NLL (nats)": f"{r['test_nll_nats']:.2f} ± {r['test_nll_se']:.2f}",
                 "bits/dim": f"{r['bits_per_dim']:.4f} ± {r['bits_per_dim_se']:.4f}",
                 "params": r["n_params"], "fit s": round(r["train_seconds"]),
                 "published": f"{pub['value']:.2f}" if pub else "—"})
display(pd.DataFrame(rows).set_index("run"))

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# Samples of PCA + GMM (grey, clipped to $[0, 1]$) and of the mixtures of Bernoullis, each
# above its nearest training image (L2 distance on grey images, Hamming on binary ones), and
# the distribution of those distances against held-out test images. The
# [results page](results.ipynb) sets every model's samples side by side, MADE's included.

# %% tags=["hide-input"]
chapter.show_samples({run.record["label"]: run for run in finished.values()})
chapter.glue_nearest_neighbour("pca", records["pca_gmm"], ".2f")

# %% [markdown]
# ## What we learned
#
# - Completed by an isotropic Gaussian on the discarded directions, PCA + GMM is a proper
#   density whose number ({glue:text}`pca_gmm_bpd` bits/dim) can sit in the same table as the
#   flows and autoregressive models of the later chapters; it matches a direct scipy
#   evaluation of the equivalent pixel-space mixture.
# - The median L2 distance from a PCA + GMM sample to its nearest training image is
#   {glue:text}`pca_nn_sample_median`, against {glue:text}`pca_nn_test_median` for held-out test
#   images.
# - Whether MADE's samples are "richer" is judged by eye on the results page; the chapter on
#   judging samples will put numbers on it.
