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
# # Results
#
# **Claim.** Every number of the study in one table, each with its kind of likelihood, its
# standard error over test images (and across seeds where several were run), why its training
# stopped, and the published number it should be compared with, with a statement of where
# the two protocols differ. A number worse than the published one is shown as it is; a number
# whose training was cut short by a budget or a cap is set beside no published number. The
# page shows the key columns; the full table, with every column (parameters, training time,
# epochs, sampling time, the source of each published number and where the protocols differ),
# is {download}`results.csv <results.csv>`, written in the profile's results folder beside
# its runs.
#
# This page trains nothing: it reads the runs of the profile's plan that are finished in its
# run store (a run without its `metrics.json` is partial and is not tabulated). The runs of
# "Beyond MNIST", on other datasets, are on that page.

# %% tags=["parameters"]
profile = "digits"  # smoke | digits | mnist: the profile whose runs are tabulated
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
device = "cpu"  # unused: this notebook only reads records
data_dir = None
seed = 0  # the seed whose samples are shown (the tables hold every seed of the plan)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from densitybench import paths, report

out = paths.resolve(results_dir, profile)
store = out / "runs"
finished, unfinished = report.finished_runs(profile, store)  # every seed of the plan
records = [r.record for r in finished]
seed_records = [r for r in records if r["seed"] == seed]
assert records, f"no finished run of profile {profile!r} in {paths.relative_to_repo(store)}"
#: the binary datasets among the records (the rest hold integer levels)
BINARY = sorted({r["dataset"] for r in records if report.dataset_kind(r) == "binary"})
print(f"{len(records)} finished runs of profile {profile!r} in {paths.relative_to_repo(store)}")
print("runs of the plan not finished (not tabulated):",
      ", ".join(f"{u['run']} ({u['status']})" for u in unfinished) or "none")

# %% [markdown]
# ## Negative log-likelihood
#
# Lower is better; "±" is the standard error over test images; with several seeds the number
# is the mean over seeds, "±" the mean of their test-image standard errors and "SE over
# seeds" the standard error of the mean across seeds. Every number here is exact but the
# VAE's, an upper bound on the NLL (its importance-weighted bound); the GAN's Parzen-window
# estimate is not a likelihood of the model and has its own table below. On integer-level data
# a continuous model's "test NLL" is its dequantization bound on the discrete NLL (see each
# model's page). "Stopped by" says why training ended: *patience* (no better validation value
# for that many epochs: the protocol's own end), *epoch cap* or *time budget* (with whether
# the validation value was still improving then: a number that would likely fall with more
# training), *converged* or *iteration cap* (EM). "Ours − published" is given only for a run
# that ended by patience or convergence; any other says why there is no comparison.

# %% tags=["hide-input"]
table = report.nll_table(records)
table.to_csv(out / "results.csv", index=False)
key = list(report.KEY_COLUMNS)
binary = table["dataset"].isin(BINARY)
pd.set_option("display.max_colwidth", None)  # every cell whole: the stop reasons are read in full
display(Markdown("**Binary images**"))
display(table.loc[binary, key].drop(columns=["bits/dim"]).set_index("model"))
display(Markdown("**Integer-level images** (a continuous model: its dequantization bound)"))
display(table.loc[~binary, key].set_index("model"))

# %% [markdown]
# ## Parzen-window estimates
#
# A GAN has no likelihood. Goodfellow et al. fit a Gaussian Parzen window to its samples and
# report the window's mean log-density of the test images: an estimate of a different density
# (the window's, not the model's), biased and very sensitive to the width $\sigma$ and the
# number of samples {cite}`theis2016note`. It is kept out of every likelihood column.

# %% tags=["hide-input"]
parzen = report.parzen_table(records)
display(parzen.set_index("model") if len(parzen) else "no Parzen estimate in this profile")

# %% [markdown]
# ## Every family on grey levels
#
# The autoregressive models with a softmax over levels beside the continuous models, all in
# bits per dimension of the same integer-level test images (the argument is on the
# [grey levels page](levels.ipynb)).

# %% tags=["hide-input"]
for name in sorted({r["dataset"] for r in records} - set(BINARY)):
    bits = report.bits_table(seed_records, name)
    if len(bits):
        display(Markdown(f"**{name}**"))
        display(bits.set_index("model"))

# %% [markdown]
# ## Published numbers and protocol differences

# %% tags=["hide-input"]
pd.set_option("display.max_colwidth", None)
compared = table[table["published"] != "—"]
display(compared[["model", "published", "source of published", "protocol differences"]].set_index("model"))

# %% [markdown]
# ## Samples side by side
#
# The seed slides' first hypothesis is that MADE's samples are richer than PCA + GMM's. Each
# panel holds the first 36 samples of one run (drawn with the run's seed, not selected). Each
# model's page has its nearest-neighbour check.

# %% tags=["hide-input"]
import numpy as np
import matplotlib.pyplot as plt
from densitybench import plots

import textwrap

shown_runs = [run for run in finished if run.record["seed"] == seed]
n_cols = min(len(shown_runs), 4)  # four panels a row stay legible at the page's width
n_rows = -(-len(shown_runs) // n_cols)
fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 3.2 * n_rows), squeeze=False)
for ax in axes.flat[len(shown_runs):]:
    ax.axis("off")
for ax, run in zip(axes.flat, shown_runs):
    r = run.record
    plots.image_grid(np.load(run.path("samples.npy")).astype(np.float32)[:36], ax=ax)
    ax.set_title(textwrap.fill(r["label"], 30) + f"\n{r['dataset']}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Provenance
#
# Each number was produced by the run below: its seed, the commit of the code, the device
# and the torch version. Each run's name links to its full record, `metrics.json` (the numbers,
# the training history, the configuration and package versions), published with the book;
# its settings are in `spec.json` beside it, whose key the table gives.
# A checkpoint over the committed size stays in the run store where it was trained; one marked
# "not kept" was not saved; the run's spec rebuilds either.

# %% tags=["hide-input"]
provenance = report.provenance_table(records)
provenance.insert(0, "record", [report.record_link(r, profile) for r in records])
display(HTML(provenance.drop(columns="run").to_html(index=False, escape=False)))

# %% [markdown]
# ## Reproducing each chapter
#
# The command that trains a chapter's missing runs and executes its page, and the training
# time its runs took here (the sum of their recorded training seconds, every seed; sampling and
# evaluation come on top). [Cite and reproduce](../cite.md) says how to set up and get the data.

# %% tags=["hide-input"]
per_chapter = {}
for r in records:
    chapter_name = (r.get("spec") or {}).get("chapter", "—")
    c = per_chapter.setdefault(chapter_name, {"runs": 0, "training (min)": 0.0, "datasets": set()})
    c["runs"] += 1
    c["training (min)"] += r["train_seconds"] / 60
    c["datasets"].add(r["dataset"])
display(pd.DataFrame([{"chapter": k, "command": f"densitybench study --profile {profile} --notebooks {k} --no-book",
                       "runs": v["runs"], "training (min)": round(v["training (min)"], 1),
                       "data": ", ".join(sorted(v["datasets"]))} for k, v in per_chapter.items()]).set_index("chapter"))
glue("n_runs", len(records), display=False)
glue("results_profile", profile, display=False)

# %% [markdown]
# This page aggregates {glue:text}`n_runs` runs of the profile {glue:text}`results_profile`.
