"""Published numbers the study compares itself with, and the protocol each was made under.

Values are test NLL in nats per image (lower is better) unless ``unit`` says bits/dim, or
"nats on [0,1]" for a density of continuous images in [0, 1]^D (compared with a run's
``test_nll_nats_continuous``, the NLL before the discretisation term ``D ln K``).
A run names the anchor it should be compared with in its config (``anchor``) only when the
anchor is the same model under the same protocol; the results table puts the two side by side
with the run's own statement of how the protocols differ. ``kind`` says who made the number: a
``"paper"`` (the model's authors), a ``"reimplementation"`` (another paper's implementation of
the model) or a ``"tutorial"``; the tables label any but a paper's. :data:`RELATED` lists
published numbers of other models a page may mention as context, never as a comparison.
"""

from __future__ import annotations

FIXED_BINARIZATION = "binarized MNIST, fixed binarization (Larochelle & Murray 2011), 50k/10k/10k"
DEQUANTIZED_MNIST = "8-bit MNIST, uniformly dequantized, (x + u) / 256; 50k/10k/10k"
PARZEN_MNIST = (
    "MNIST scaled to [0,1], Gaussian Parzen window on 10,000 samples, width from logspace(-1, 0, 10) chosen on "
    "validation; the value is the negative mean test log-density (lower is better)"
)

#: key -> (model, dataset protocol, value, unit, source)
ANCHORS: dict[str, dict] = {
    "mob_k10": dict(model="Mixture of Bernoullis, K=10", protocol=FIXED_BINARIZATION, value=168.95, unit="nats",
                    source="Germain et al. 2015 (MADE), Table 6"),
    "mob_k500": dict(model="Mixture of Bernoullis, K=500", protocol=FIXED_BINARIZATION, value=137.64, unit="nats",
                     source="Germain et al. 2015 (MADE), Table 6"),
    "fvsbn": dict(model="FVSBN", protocol=FIXED_BINARIZATION, value=97.45, unit="nats",
                  source="Larochelle & Murray 2011"),
    "nade_1hl": dict(model="NADE, 1 hidden layer, fixed order", protocol=FIXED_BINARIZATION, value=88.33,
                     unit="nats", source="Uria et al. 2016 (88.86 in Larochelle & Murray 2011)"),
    "made_1hl_1mask": dict(model="MADE, 1 hidden layer, 1 mask", protocol=FIXED_BINARIZATION, value=88.40,
                           unit="nats", source="Germain et al. 2015 (MADE), Table 6"),
    "made_1hl_32masks": dict(model="MADE, 1 hidden layer, 32 masks", protocol=FIXED_BINARIZATION, value=88.04,
                             unit="nats", source="Germain et al. 2015 (MADE), Table 6"),
    "made_2hl_1mask": dict(model="MADE, 2 hidden layers, 1 mask", protocol=FIXED_BINARIZATION, value=89.59,
                           unit="nats", source="Germain et al. 2015 (MADE), Table 6"),
    "made_2hl_32masks": dict(model="MADE, 2 hidden layers, 32 masks", protocol=FIXED_BINARIZATION, value=86.64,
                             unit="nats", source="Germain et al. 2015 (MADE), Table 6"),
    "pixelcnn": dict(model="PixelCNN", protocol=FIXED_BINARIZATION, value=81.30, unit="nats",
                     source="van den Oord et al. 2016 (PixelRNN), Table 4"),
    "row_lstm": dict(model="Row LSTM", protocol=FIXED_BINARIZATION, value=80.54, unit="nats",
                     source="van den Oord et al. 2016 (PixelRNN), Table 4"),
    "diagonal_bilstm_1x32": dict(model="Diagonal BiLSTM, 1 layer, h = 32", protocol=FIXED_BINARIZATION, value=80.75,
                                 unit="nats", source="van den Oord et al. 2016 (PixelRNN), Table 4"),
    "diagonal_bilstm_7x16": dict(model="Diagonal BiLSTM, 7 layers, h = 16", protocol=FIXED_BINARIZATION, value=79.20,
                                 unit="nats", source="van den Oord et al. 2016 (PixelRNN), Table 4"),
    "gated_pixelcnn": dict(model="Gated PixelCNN (reimplementation)", protocol=FIXED_BINARIZATION, value=80.10,
                           unit="nats", source="Gulrajani et al. 2017 (PixelVAE), Table 1", kind="reimplementation"),
    "iwae_1layer_fixed": dict(model="IWAE (k=50), 1 stochastic layer", protocol=FIXED_BINARIZATION, value=87.10,
                              unit="nats", source="Burda et al. 2016, Appendix D (test NLL by IWAE with k=5000)"),
    "gan_parzen": dict(model="Adversarial nets (Parzen estimate)", protocol=PARZEN_MNIST, value=-225.0,
                       unit="nats on [0,1]", source="Goodfellow et al. 2014, Table 1 (log-likelihood 225 ± 2)"),
    "nice": dict(model="NICE", protocol=DEQUANTIZED_MNIST, value=4.36, unit="bits/dim",
                 source="Dinh et al. 2014 (log-likelihood 1980.50 nats on [0,1]^784)"),
    "realnvp": dict(model="RealNVP", protocol=DEQUANTIZED_MNIST, value=1.06, unit="bits/dim",
                    source="Grathwohl et al. 2019 (FFJORD), Table 2"),
}

#: Published numbers of models the study does not run, on data it does: context a page may
#: mention beside a model of the same family, never an anchor (no "ours − published").
#: ``differs`` says how the model differs from the nearest one of the study.
RELATED: dict[str, dict] = {
    "made_dequantized": dict(model="MADE with Gaussian-mixture conditionals, a density on dequantized data",
                             protocol=DEQUANTIZED_MNIST, value=2.04, unit="bits/dim",
                             source="Grathwohl et al. 2019 (FFJORD), Table 2", kind="paper",
                             differs="continuous Gaussian-mixture conditionals, not a 256-way softmax"),
    "gated_pixelcnn_256": dict(model="Gated PixelCNN, 256-way softmax", protocol="8-bit MNIST, discrete model",
                               value=0.81, unit="bits/dim", source="UvA deep learning tutorial 12", kind="tutorial",
                               differs="gated layers without the blind spot, deeper, one seed, a tutorial's training"),
}

#: MADE paper Table 2 (Germain et al. 2015): test NLL in nats on the UCI binary datasets of
#: Larochelle, Bengio & Turian 2010, hyperparameters chosen on validation per dataset.
UCI_TABLE2 = {
    "mob": ("MoBernoullis", {"adult": 20.44, "dna": 98.19, "mushrooms": 14.46, "nips": 290.02}),
    "rbm": ("RBM", {"adult": 16.26, "dna": 96.74, "mushrooms": 15.15, "nips": 277.37}),
    "fvsbn": ("FVSBN", {"adult": 13.17, "dna": 83.64, "mushrooms": 10.27, "nips": 276.88}),
    "nade": ("NADE (fixed order)", {"adult": 13.19, "dna": 84.81, "mushrooms": 9.81, "nips": 273.08}),
    "eonade": ("EoNADE 1hl (16 orderings)", {"adult": 13.19, "dna": 82.31, "mushrooms": 9.69, "nips": 272.39}),
    "darn": ("DARN", {"adult": 13.19, "dna": 81.04, "mushrooms": 9.55, "nips": 274.68}),
    "made": ("MADE", {"adult": 13.12, "dna": 83.63, "mushrooms": 9.68, "nips": 280.25}),
    "made_masks": ("MADE mask sampling", {"adult": 13.13, "dna": 79.66, "mushrooms": 9.69, "nips": 277.28}),
}
for _key, (_model, _values) in UCI_TABLE2.items():
    for _dataset, _value in _values.items():
        ANCHORS[f"uci_{_dataset}_{_key}"] = dict(
            model=_model, protocol=f"UCI {_dataset} (Larochelle, Bengio & Turian 2010 split)", value=_value,
            unit="nats", source="Germain et al. 2015 (MADE), Table 2")

#: The per-epoch table of the assignment the study grew from: NADE and a pixel LSTM on MNIST with
#: 10 grey levels (784 categorical outputs of 10 classes), the mean NLL in nats per image of the
#: training and the test images after each epoch. The assignment looked at the test NLL after
#: every epoch (it had no validation split), so these numbers are selected by nothing. ``runs``
#: is keyed by the model's name in :data:`densitybench.models.MODELS`; ``train[i]`` and
#: ``test[i]`` are those after epoch ``i + 1``.
ASSIGNMENT_10_LEVELS = {
    "source": "DGM assignment (the study's source), per-epoch table",
    "dataset": "mnist",
    "n_levels": 10,
    "n_dims": 784,
    "protocol": ("MNIST with 10 grey levels, 784 categorical outputs of 10 classes; train and test NLL after every "
                 "epoch, no validation split (the split and the mapping to 10 levels are not stated)"),
    "unit": "nats",
    "runs": {
        "nade": dict(model="NADE", optimizer="Adam, lr 0.01", train=[800.27, 715.89, 690.14],
                     test=[753.92, 724.28, 709.23]),
        "pixel_lstm": dict(model="pixel LSTM", optimizer="Adam, lr 0.001",
                           train=[851.27, 660.89, 632.14, 615.89, 600.14],
                           test=[708.92, 655.28, 629.23, 612.28, 597.23]),
    },
}


def get(key: str | None) -> dict | None:
    """The anchor ``key`` (with its key; ``kind`` is ``"paper"`` where not stated), or None
    when the run names none."""
    if key is None:
        return None
    if key not in ANCHORS:
        raise KeyError(f"unknown anchor {key!r}; known: {', '.join(ANCHORS)}")
    return {"key": key, **ANCHORS[key]}


def published_label(anchor: dict, unit: bool = True) -> str:
    """An anchor's value (and ``unit``) as a table shows it, with who made it when not the
    model's authors: ``"80.10 nats (reimplementation)"``."""
    text = f"{anchor['value']:.2f}" + (f" {anchor['unit']}" if unit else "")
    kind = anchor.get("kind", "paper")
    return text if kind == "paper" else f"{text} ({kind})"
