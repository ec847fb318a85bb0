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
import torch
from IPython.display import Image, display
from myst_nb import glue

from densitybench import data, models, paths, plots, report, runs, study, train
from densitybench.models.autoregressive import dependency_map

prof = runs.load_profile(profile)
cfg = study.config("pixelrnn", profile)
out = paths.resolve(results_dir, profile)
store = out / "runs"
dev = train.resolve_device(device)
specs = [s for s in prof.specs(chapter="pixelrnn") if s.seed == seed]
assert specs, f"profile {profile!r} has no PixelRNN run with seed {seed}"
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
# ## The models, and a check of them before training
#
# For each model, the gradient of every pixel's logits with respect to the input image must
# vanish at and after the pixel itself (checked for every pixel, at random parameters). The
# pictures show what one pixel in the middle of the image depends on: the whole past for the
# sequence LSTM, a triangle widening upwards for the Row LSTM.

# %%
x = ds.split("train")[:1]
D = ds.n_dims
H, W = ds.image_shape[1:]
centre = (H // 2, W // 2)
pictures = {}
for spec in specs:
    m = models.create(spec.model, ds.image_shape, **spec.hparams, init_seed=seed)
    print(m)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    maps = [dependency_map(m, d, x) for d in range(D)]
    leak = max(mp.reshape(-1)[d:].abs().max().item() for d, mp in enumerate(maps))
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
finished = runs.ensure_all(specs, store, device=device, data_dir=data_dir)
records = {name: r.record for name, r in finished.items()}
settings = report.glue_training("pixelrnn", specs, records)

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
glue("pixelrnn_run", first, display=False)
glue("pixelrnn_dataset", records[first]["dataset"], display=False)
glue("pixelrnn_nll", f"{records[first]['test_nll_nats']:.2f}", display=False)
glue("pixelrnn_se", f"{records[first]['test_nll_se']:.2f}", display=False)

# %% [markdown]
# ## Samples and the nearest-neighbour check
#
# The sequence LSTM samples by carrying its state, one step per pixel; the Row LSTM here
# recomputes the whole image for each of the $D$ pixels. Each
# sample is set above its nearest training image; the histogram compares those distances
# with the same distances for held-out test images (samples much closer than test images
# would mean copying).

# %%
for name, r in finished.items():
    print(name)
    for figure in ("samples.png", "neighbours.png", "nn_distances.png"):
        display(Image(filename=r.path(figure)))
nn = records[first]["nearest_neighbour"]
glue("pixelrnn_nn_sample_median", f"{nn['samples']['q50']:.3g}", display=False)
glue("pixelrnn_nn_test_median", f"{nn['test']['q50']:.3g}", display=False)

# %% [markdown]
# ## Completions
#
# Each model fills in the bottom half of test images given the top half, sampling the hidden
# pixels from $p(\mathbf{x}_{\ge d} \mid \mathbf{x}_{<d})$.

# %%
test = ds.split("test")[:8]
filled = {}
for name, r in finished.items():
    model = r.model().to(dev)
    g = torch.Generator(device=model.device).manual_seed(seed)
    filled[r.record["label"]] = model.complete(test.to(model.device), D // 2, generator=g).cpu()
fig = plots.completions(test, H // 2, filled, title="completions of the hidden bottom half")
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
