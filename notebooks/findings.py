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
# # Findings
#
# What the study found, in one page: every model's number on the same axis, what each one
# bought with its training time, and a verdict on each hypothesis of the introduction. Every
# number and every verdict below is computed from the runs' records when the page is executed;
# none is typed in. The evidence behind each is on the page it points to.
#
# This page trains nothing: it reads the runs of the profile's plan that are finished in its
# run store (a run without its `metrics.json` is partial and is not read), and, for the
# robustness hypothesis, the runs of the profiles this one gathers.

# %% tags=["parameters", "remove-cell"]
profile = "digits"  # smoke | digits | mnist: the profile whose runs are read
results_dir = None  # the profile's results (relative to the repository); None: results/<profile>
device = "cpu"  # unused: this notebook only reads records
data_dir = None
seed = 0  # the seed of the runs whose training is followed (the headline averages every seed)

# %% tags=["remove-input"]
import json

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

from densitybench import findings, paths, report, runs

out = paths.resolve(results_dir, profile)
store = out / "runs"
finished, unfinished = report.finished_runs(profile, store)  # every seed of the plan
records = [r.record for r in finished]
assert records, f"no finished run of profile {profile!r} in {paths.relative_to_repo(store)}"
seed_records = [r for r in records if r["seed"] == seed]
main = findings.main_datasets(records)  # the binary and the integer-level dataset with most entries
print(f"{len(records)} finished runs of profile {profile!r} in {paths.relative_to_repo(store)}")
print("runs of the plan not finished (not read):",
      ", ".join(f"{u['run']} ({u['status']})" for u in unfinished) or "none")


def glue_text(name, value):
    """Glue one value of the page's text as ``findings_<name>``."""
    glue(f"findings_{name}", value, display=False)


# %% [markdown]
# ## Every model on one axis
#
# One row per entry of the profile (its seeds averaged), best at the top: the test NLL in nats
# per image on binary images, and in bits per dimension on integer-level images. The thick bar
# is the standard error over test images, the thin one (with caps) the standard error across
# seeds where an entry has several; the number beside each name combines the two. A filled
# marker is an entry whose every seed converged (its validation value stopped improving for
# the patience, or EM reached its tolerance); a hollow red one was cut short by a time budget
# or an epoch or iteration cap, so its number would likely fall with more training. The
# hollow diamond is the published number for the same model and data, drawn only where it is
# in the axis' unit. A row marked "bound" is an upper bound on the NLL (the VAE's
# importance-weighted bound; a continuous model's dequantization bound on levels); the GAN's
# Parzen-window estimate is no likelihood of the model and is not drawn.

# %% tags=["remove-input"]
for kind, unit in (("binary", "nats"), ("levels", "bits/dim")):
    if kind in main:
        fig = findings.headline_figure(records, main[kind], unit)
        plt.show()

groups = report.by_entry([r for r in records if r["likelihood"] != "estimate"])
n_conv = sum(all(report.converged(r) for r in g) for g in groups.values())
glue_text("counts", f"Of the {findings.plural(len(groups), 'likelihood entry', 'likelihood entries')} of this "
                   f"profile, {findings.plural(n_conv, 'converged', 'converged')} and "
                   f"{findings.plural(len(groups) - n_conv, 'was', 'were')} cut short by a budget or a cap.")
glue_text("datasets", " and ".join(f"{main[k]} ({'test NLL in nats' if k == 'binary' else 'bits/dim'})"
                                   for k in ("binary", "levels") if k in main))

# %% [markdown]
# The figures show {glue:text}`findings_datasets`. {glue:text}`findings_counts` A cut-short
# entry's number says what the model reached in the time it was given, not what it can reach.
#
# ## What training time bought
#
# Each line is one run (seed as in the parameters cell): its validation value after every
# epoch against its cumulative training time, on a log scale (evaluation time not counted).
# The line ends with `x` where training was cut short by a budget or a cap and with `o` where
# it converged. A dashed line is a VAE's negative ELBO, the criterion it stops on (an upper
# bound on its validation NLL); a continuous model's value is its dequantization bound in
# nats of the discrete images. The y axis is clipped at the top, so that the first epochs do
# not flatten the rest; dotted lines are the budgets of the table below.

# %% tags=["remove-input"]
curves = findings.learning_curves(seed_records)
for name in dict.fromkeys(curves["dataset"]):
    fig = findings.compute_figure(seed_records, name, budgets=findings.BUDGETS)
    plt.show()
untimed = [findings.row_label(r) for r in seed_records
           if r["likelihood"] != "estimate" and findings.epoch_times(r) is None]
glue_text("n_timed", curves["run"].nunique())
glue_text("n_scaled", curves.loc[curves["time"] == "scaled", "run"].nunique())
glue_text("untimed", findings.listing(untimed) if untimed else "none")

# %% [markdown]
# {glue:text}`findings_n_timed` runs are drawn. Of these, {glue:text}`findings_n_scaled` were
# recorded before the training time of each epoch was kept: their time axis is the running
# sum of each epoch's wall time (validation included) scaled to the run's recorded training
# time, a close approximation. Runs with no timing at all are not drawn:
# {glue:text}`findings_untimed`.
#
# ### At equal budgets
#
# For each run above and each CPU budget, the best validation NLL (nats per image) it had
# reached by an epoch that ended within that much training time: "—" where its first epoch
# ended later, "ended at N s" where the run finished before the budget (the value is then its
# final best). These are validation numbers: the test split is used once, at the end of
# training, for the numbers of the figure above, and never to compare runs along the way.

# %% tags=["remove-input"]
at = findings.at_budget(seed_records, findings.BUDGETS)
for name in dict.fromkeys(at["dataset"]):
    print(name)
    display(findings.budget_table(at, name))
if not len(at):
    print("no run of this profile records its training time per epoch")

# %% [markdown]
# ## The hypotheses
#
# ### The published numbers reproduce
#
# Every entry with a published number. An entry is judged only when every seed converged: its
# difference from the published number, with the standard error of ours (the published one
# has none), counts as reproducing when it is within two standard errors of zero. An entry
# cut short by a budget or a cap cannot be judged: its number is not the model's under the
# protocol.

# %% tags=["remove-input"]
repro = findings.reproduction(records)
with pd.option_context("display.max_colwidth", None):
    display(repro[["model", "dataset", "published", "ours", "ours − published", "verdict"]].set_index("model"))
h3 = findings.reproduction_summary(repro)
glue_text("h3_verdict", h3["verdict"])
glue_text("h3_details", h3["details"])
glue_text("h3_lower", "" if not h3["n_lower"] else (
    f"An entry better than its published number by more than two standard errors ({h3['lower']}) is not "
    "claimed as a win: its page checks the number and says whether the difference is explained"
    + (" (the page of the baselines, PCA + GMM and the mixtures, recomputes the mixtures' numbers from their "
       "parameters alone and fits a check with a weaker prior; neither explains the gain)"
       if "Mixture of Bernoullis" in h3["lower"] else "")
    + "."))

# %% [markdown]
# **Verdict: the claim {glue:text}`findings_h3_verdict`.** {glue:text}`findings_h3_details`
# {glue:text}`findings_h3_lower`
#
# Two caveats. The budgets are those of a CPU: the entries cut short were stopped long before
# the training their papers describe ended, so this page says nothing about whether their
# published numbers reproduce. And a
# judged entry need not follow its paper's protocol exactly: the [results page](results.ipynb)
# states, for every published number, where the two protocols differ (network width,
# optimiser, number of epochs).
#
# ### MADE is robust across datasets
#
# MADE with the seed's settings (one hidden layer of 500 units, one mask) on every dataset it
# ran on: those of this profile's model pages and of its "Beyond MNIST" page, whose runs may be
# gathered from other profiles. The
# published MADE numbers were obtained with settings tuned on each dataset's validation
# split; matching them with one fixed set of settings is what robustness would mean against
# them.

# %% tags=["remove-input"]
prof = runs.load_profile(profile)
# the profile's own "Beyond MNIST" runs, then those of the profiles it gathers (each in its own store)
other = [r.record for r in report.finished_runs(profile, store, exclude_chapters=())[0]
         if r.record["spec"].get("chapter") in report.OWN_PAGE_CHAPTERS]
for g in prof.gathers:
    g_store = paths.resolve(None, g) / "runs"
    if g_store.is_dir():
        other += [r.record for r in report.finished_runs(g, g_store, exclude_chapters=())[0]]
robust = findings.made_robustness(records + other)
with pd.option_context("display.max_colwidth", None):
    display(robust[["dataset", "ours", "published", "ours − published", "relative", "verdict"]].set_index("dataset")
            if len(robust) else "no run of MADE with the seed's settings in this profile")
h2 = findings.robustness_summary(robust)
glue_text("h2_verdict", h2["verdict"])
glue_text("h2_n_datasets", h2["n_datasets"])
glue_text("h2_n_published", h2["n_published"])

# %% [markdown]
# **Verdict.** {glue:text}`findings_h2_verdict` MADE with these settings ran on
# {glue:text}`findings_h2_n_datasets` datasets, {glue:text}`findings_h2_n_published` of them
# with a published MADE number. The [Beyond MNIST page](beyond.ipynb) tests the claim the
# other way, against the two baselines with the same untuned settings on every binary dataset.
#
# ### MADE's samples are richer than PCA + GMM's

# %% tags=["remove-input"]
samples_file = out / "samples.json"
# MADE with the seed's settings on binary images, else the profile's MADE with one mask there
binary_made = [r for r in records if report.dataset_kind(r) == "binary"
               and findings.is_seed_made(r, {"n_masks": 1})]
made_entry = next((report.entry_name(r) for r in sorted(binary_made, key=lambda r: not findings.is_seed_made(r))),
                  None)
gmm_entry = next((report.entry_name(r) for r in records if r["model"] == "pca_gmm"), None)
if samples_file.is_file():
    h1 = findings.samples_comparison(json.loads(samples_file.read_text())["rows"], made_entry, gmm_entry)
else:
    h1 = {"judged": False, "verdict": "is not measured on this profile"}
h1_text = findings.samples_sentence(h1)
print(h1_text)
glue_text("h1_verdict", h1["verdict"])
glue_text("h1_text", h1_text)

# %% [markdown]
# **Verdict: the claim {glue:text}`findings_h1_verdict`.** {glue:text}`findings_h1_text`.
# The measures are those of the [samples page](samples.ipynb), in the features of a digit
# classifier trained there, each against real images of its own kind (binary for MADE, grey
# for PCA + GMM); "richer" is read as recall, the share of real images that some sample
# resembles.
#
# ### Which family is best for what, under these budgets

# %% tags=["remove-input"]
def best_phrase(row, unit):
    """``label: value ± se unit, why it stopped``, or a statement that there is none."""
    if row is None:
        return "no entry"
    d = findings.unit_digits(unit)
    why = "EM converged" if row["stopped by"] == "converged" else f"stopped by {row['stopped by']}"
    return f"{row['label']}: {findings.format_pm(row['value'], row['se'], d)} {unit}, {why}"


for kind, unit in (("binary", "nats"), ("levels", "bits/dim")):
    if kind in main:
        glue_text(f"best_{kind}_dataset", main[kind])
        glue_text(f"best_{kind}_converged", best_phrase(
            findings.best_entry(records, main[kind], unit, converged_only=True), unit))
        glue_text(f"best_{kind}_any", best_phrase(findings.best_entry(records, main[kind], unit), unit))
    else:
        for what in ("dataset", "converged", "any"):
            glue_text(f"best_{kind}_{what}", "no such dataset in this profile")
speed = findings.sampling_extremes(seed_records)
glue_text("fastest", speed["fastest"])
glue_text("slowest", speed["slowest"])
glue_text("speed_ratio", f"{speed['ratio']:,.0f}" if speed["ratio"] else "—")
improving = findings.still_improving(seed_records)
with pd.option_context("display.max_colwidth", None):
    display(improving.drop(columns="slope").set_index("model") if len(improving)
            else "no run was cut short while still improving")
glue_text("improving", (
    f"{findings.plural(len(improving), 'run was', 'runs were')} cut short while the validation value was still "
    "falling (the table above; its slope is that of the last five epochs, in nats per epoch of the validation "
    "criterion: a steeper one has further to go). Their numbers are where the budget stopped them, so each would "
    "likely move down the figure at the top with more training" if len(improving) else
    "no run was cut short while its validation value was still falling, so no number here is known to be far from "
    "where converged training would put it"))

# %% [markdown]
# - **Best exact likelihood on {glue:text}`findings_best_binary_dataset`, among entries
#   trained to convergence:** {glue:text}`findings_best_binary_converged`. Among every entry,
#   whatever stopped it: {glue:text}`findings_best_binary_any`.
# - **Best exact likelihood on {glue:text}`findings_best_levels_dataset` (bits/dim), among
#   entries trained to convergence:** {glue:text}`findings_best_levels_converged`. Among every
#   entry: {glue:text}`findings_best_levels_any`.
# - **Fastest sampling:** {glue:text}`findings_fastest`; the slowest is
#   {glue:text}`findings_slowest`, {glue:text}`findings_speed_ratio` times slower. An
#   autoregressive model draws one pixel after another; a mixture, a flow, a VAE or a GAN draws
#   a whole image in one pass.
# - **What converged training would change:** {glue:text}`findings_improving`.
#
# ## What these runs do not support

# %% tags=["remove-input"]
unset = findings.unsettled(records)
glue_text("ranking", findings.ranking(records, main.get("binary")))
glue_text("seeds", "every entry has a single seed, so no spread across seeds is measured and each number's "
                   "uncertainty is that over test images only" if unset["max_seeds"] == 1 else
          f"entries have up to {unset['max_seeds']} seeds; the spread across seeds is in the figure at the top")

# %% [markdown]
# - **A ranking between families whose runs were cut short.** {glue:text}`findings_ranking`
# - **A statement about seeds:** {glue:text}`findings_seeds`.
# - **A verdict on a published number whose run was cut short**, whichever side of it our
#   number falls: a number above the published one may only need more training, and one below
#   it would need a converged run to count.
# - **The samples' quality as a likelihood.** The sample measures and the likelihoods are
#   different axes; neither is inferred from the other here.
