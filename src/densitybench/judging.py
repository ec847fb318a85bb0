"""Judging samples: every model's samples through the same measures, each with a standard error.

Likelihood is one axis; this module measures the other, what the samples look like, with
measures that run offline and treat every model alike. All of them look at images through
the penultimate features of :class:`~densitybench.embedding.DigitClassifier` (so the Fréchet
distance is "FID with digit features", not comparable with Inception-based FID):

* Fréchet distance between feature Gaussians (Heusel et al. 2017), bootstrap SE;
* precision and recall with k = 3 (Kynkäänniemi et al. 2019), binomial SE;
* mode coverage: entropy of the classifier's labels of the samples, bootstrap SE;
* a classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy of a logistic
  regression telling samples from real images, 0.5 = indistinguishable, binomial SE;
* the data-copying statistic C_T (Meehan, Chaudhuri & Dasgupta 2020) over k-means cells of
  the embedding of the training set, bootstrap SE over samples;
* distances from samples to their nearest training image in pixel space (L2 on [0, 1]
  pixels), quantiles with bootstrap SEs, beside the same distances of held-out real images.

Every model is compared with the same held-out real images (the test split), so the rows
of a table are comparable; a row of real images the models never saw (the validation split)
gives the score of real data, and a "model" that returns training images shows what
copying looks like.

The runs judged are read, never trained here: :func:`draw_sample_sets` reloads each finished
run's model and draws its samples (or reads the samples a run stored when its checkpoint is
not at hand), :func:`references` builds the real-image references with their sanity rows, and
:func:`judge_sets` puts every set through :func:`judge`. :func:`latent_walk` walks a model's
latent space by what the model declares it offers (an encoder, an invertible map or a generator), not by
its class.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import embedding, metrics


@dataclass
class Reference:
    """What every set of samples is compared with.

    Attributes:
        classifier: the embedding's classifier.
        train: ``(N, 1, H, W)`` training images in [0, 1] (nearest neighbours, C_T cells).
        test: ``(n, 1, H, W)`` held-out real images in [0, 1].
        train_features, test_features: their embeddings.
        cells: k-means (``n_cells`` cells) fitted on ``train_features``.
        test_cells: the cell of each test image.
        test_copy_distances: each test image's distance to its nearest training image in the embedding.
        test_pixel_distances: the same in pixel space (L2 on [0, 1] pixels).
    """

    classifier: embedding.DigitClassifier
    train: torch.Tensor
    test: torch.Tensor
    train_features: np.ndarray
    test_features: np.ndarray
    cells: object
    test_cells: np.ndarray
    test_copy_distances: np.ndarray
    test_pixel_distances: np.ndarray
    n_cells: int
    n_classes: int


def build_reference(classifier, train: torch.Tensor, test: torch.Tensor, n_cells: int = 20, seed: int = 0) -> Reference:
    """Embed the training and held-out images once and cut the training set into cells.

    Args:
        classifier: a trained :class:`~densitybench.embedding.DigitClassifier`.
        train: ``(N, 1, H, W)`` training images in [0, 1].
        test: ``(n, 1, H, W)`` held-out real images in [0, 1].
        n_cells: k-means cells for C_T.
    """
    from sklearn.cluster import KMeans

    train_f, test_f = embedding.embed(classifier, train), embedding.embed(classifier, test)
    km = KMeans(n_clusters=n_cells, n_init=4, random_state=seed).fit(train_f)
    d_copy = _nearest_distance(test_f, train_f)
    d_pix, _ = metrics.nearest_neighbours(test, train, "l2")
    return Reference(classifier, train, test, train_f, test_f, km, km.predict(test_f), d_copy, d_pix.numpy(),
                     n_cells, classifier.readout.out_features)


def _nearest_distance(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's Euclidean distance to its nearest row of ``reference`` (in the embedding)."""
    return metrics.nearest_neighbours(torch.from_numpy(features), torch.from_numpy(reference), "l2")[0].numpy()


def _boot_se(stat, n: int, n_boot: int, rng: np.random.Generator) -> float:
    """Standard deviation of ``stat(idx)`` over ``n_boot`` bootstrap index sets of size ``n``."""
    return float(np.std([stat(rng.integers(0, n, n)) for _ in range(n_boot)], ddof=1))


def judge(ref: Reference, images: torch.Tensor, n_boot: int = 50, min_per_cell: int = 20, seed: int = 0) -> dict:
    """Every measure of one set of images against ``ref``.

    Args:
        ref: from :func:`build_reference`.
        images: ``(M, 1, H, W)`` samples in [0, 1].
        n_boot: bootstrap replicates for the SEs that have no closed form.
    Returns:
        A flat dict: ``fd``, ``precision``, ``recall``, ``mode_entropy``, ``mode_tv``,
        ``c2st``, ``c_t``, ``nn_q05``, ``nn_q50`` (pixel L2 to the nearest training image),
        each with a ``*_se``; ``label_histogram``, ``n``; and per image ``nn_distances``
        and ``nn_index`` (the nearest training image) as arrays.
    """
    rng = np.random.default_rng(seed)
    images = images.float().clamp(0, 1)
    labels, feats = embedding.predict(ref.classifier, images)
    real = ref.test_features
    m, n = len(feats), len(real)
    out: dict = {"n": int(m)}

    out["fd"] = metrics.frechet_distance(feats, real)
    out["fd_se"] = float(np.std([
        metrics.frechet_distance(feats[rng.integers(0, m, m)], real[rng.integers(0, n, n)]) for _ in range(n_boot)
    ], ddof=1))

    pr = metrics.precision_recall(real, feats, k=3)
    out.update({"precision": pr["precision"], "precision_se": pr["precision_se"],
                "recall": pr["recall"], "recall_se": pr["recall_se"]})

    mc = metrics.mode_coverage(labels, ref.n_classes)
    out["mode_entropy"], out["mode_tv"], out["label_histogram"] = mc["entropy"], mc["tv_from_uniform"], mc["histogram"]
    out["mode_entropy_se"] = _boot_se(lambda i: metrics.mode_coverage(labels[i], ref.n_classes)["entropy"],
                                      m, 200, rng)

    c2 = metrics.c2st(real, feats, seed=seed)
    out["c2st"], out["c2st_se"] = c2["accuracy"], c2["accuracy_se"]

    d_gen = _nearest_distance(feats, ref.train_features)
    cell_gen = ref.cells.predict(feats)

    def c_t(i):
        return metrics.copying_statistic(ref.test_copy_distances, ref.test_cells, d_gen[i], cell_gen[i],
                                         ref.n_cells, min_per_cell)["C_T"]

    try:
        out["c_t"] = c_t(np.arange(m))
        out["c_t_se"] = _boot_se(c_t, m, n_boot, rng)
    except ValueError:  # the samples fall in too few cells: C_T is undefined, say so
        out["c_t"], out["c_t_se"] = math.nan, math.nan

    d_pix, idx = metrics.nearest_neighbours(images, ref.train, "l2")
    d_pix = d_pix.numpy()
    out["nn_distances"], out["nn_index"] = d_pix, idx.numpy()
    for q in (0.05, 0.5):
        key = f"nn_q{int(q * 100):02d}"
        out[key] = float(np.quantile(d_pix, q))
        out[f"{key}_se"] = _boot_se(lambda i: np.quantile(d_pix[i], q), m, 200, rng)
    return out


# --------------------------------------------------------------------------- the runs judged


@dataclass
class SampleSets:
    """The samples of the runs judged.

    Attributes:
        images: run name -> ``(n, C, H, W)`` samples as images in [0, 1].
        models: run name -> the reloaded model (runs judged from stored samples have none).
        not_judged: run name -> why it has no samples here.
        timings: one ``{"run", "samples", "seconds per sample"}`` per model that drew samples.
    """

    images: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    not_judged: dict = field(default_factory=dict)
    timings: list = field(default_factory=list)


def draw_sample_sets(finished: dict, dataset, *, n_judge: int, n_judge_slow: int, slow_seconds: float, seed: int = 0,
                     device="cpu") -> SampleSets:
    """Samples of every finished run, drawn with a fixed seed from its reloaded model.

    A model whose run recorded more than ``slow_seconds`` per sample (one network pass per
    pixel) gives ``n_judge_slow`` samples, the others ``n_judge``. Binary and ``K``-level
    samples become images in [0, 1] as level / (K - 1); continuous ones are clipped to [0, 1].
    A run whose checkpoint is not at hand is judged from the samples it stored
    (``judge_samples.npy``) when it stored at least ``n_judge``, and is otherwise listed in
    ``not_judged``.

    Args:
        finished: run name -> :class:`~densitybench.runs.Run`.
        dataset: ``dataset(name) -> ImageData``, the data a run was trained on.
        device: where the models draw their samples.
    """
    from . import evaluate

    out = SampleSets()
    for name, run in finished.items():
        rec = run.record
        try:
            model = run.model().to(device)
        except FileNotFoundError:
            stored = run.path("judge_samples.npy")
            if stored.is_file() and len(np.load(stored, mmap_mode="r")) >= n_judge:
                out.images[name] = torch.from_numpy(np.load(stored)[:n_judge].astype(np.float32))
            else:
                ck = rec.get("checkpoint") or {}
                out.not_judged[name] = f"no checkpoint here ({ck.get('size_mb')} MB) and no stored samples"
            continue
        out.models[name] = model
        n = n_judge_slow if rec["sample_seconds_per_image"] > slow_seconds else n_judge
        t0 = time.perf_counter()
        s = evaluate.draw_samples(model, n, torch.Generator(device=model.device).manual_seed(seed))
        out.timings.append({"run": name, "samples": n, "seconds per sample": (time.perf_counter() - t0) / n})
        out.images[name] = evaluate.to_image(s, dataset(rec["dataset"]), model.support == "continuous")
    return out


def references(classifier, datasets: dict, *, n_real: int, n_judge: int, n_cells: int, n_boot: int,
               seed: int = 0) -> tuple[dict, dict]:
    """The reference of each dataset and the two sets whose answers are known.

    Each dataset's reference holds its training images and ``n_real`` test images drawn at
    random; against it go ``n_judge`` (at most the validation size) validation images, which
    should score like real data, and as many training images, a "model" that copies.

    Args:
        classifier: the embedding's trained classifier.
        datasets: name -> :class:`~densitybench.data.ImageData`.
    Returns:
        ``(refs, rows)``: name -> :class:`Reference`, and label -> ``{"dataset", "kind":
        "reference", **judge(...)}`` with labels ``"real images (<name>, valid)"`` and
        ``"training images (<name>), a copier"``.
    """
    from . import evaluate

    refs, rows = {}, {}
    g = torch.Generator().manual_seed(seed)
    for name in sorted(datasets):
        ds = datasets[name]
        test_idx = torch.randperm(len(ds.test), generator=g)[:n_real]
        refs[name] = build_reference(classifier, evaluate.to_image(ds.train, ds, False),
                                     evaluate.to_image(ds.test[test_idx], ds, False), n_cells, seed)
        n = min(n_judge, len(ds.valid))
        valid, train = (evaluate.to_image(split[torch.randperm(len(split), generator=g)[:n]], ds, False)
                        for split in (ds.valid, ds.train))
        for label, x in ((f"real images ({name}, valid)", valid), (f"training images ({name}), a copier", train)):
            rows[label] = {"dataset": name, "kind": "reference", **judge(refs[name], x, n_boot, seed=seed)}
    return refs, rows


def judge_sets(images: dict, records: dict, refs: dict, *, n_boot: int, seed: int = 0) -> dict:
    """:func:`judge` of every set of samples against the reference of its run's dataset.

    Args:
        images: run name -> samples as images in [0, 1].
        records: run name -> its ``metrics.json`` record (``dataset``, ``likelihood``).
        refs: dataset name -> :class:`Reference`.
    Returns:
        run name -> ``{"dataset", "kind": the run's likelihood, **judge(...)}``.
    """
    return {run: {"dataset": records[run]["dataset"], "kind": records[run]["likelihood"],
                  **judge(refs[records[run]["dataset"]], x, n_boot, seed=seed)} for run, x in images.items()}


@torch.no_grad()
def latent_walk(model, ds, ends, steps: torch.Tensor, seed: int = 0, pair: int = 0):
    """Images along a straight line in ``model``'s latent space, by the capabilities it declares.

    - a model that can encode (``can_encode``: the VAE's encoder means, NICE's exact codes
      ``h = f(y)``): between the codes of the test images ``ends``, prepared as the model's
      inputs (dequantized for a model of continuous data), mapped back by ``from_latent`` (the
      VAE's pixel probabilities, NICE's inverse) and clipped to [0, 1] for display;
    - a model with a latent space but no encoder (``has_latent``: the GAN's noise): between two
      latent points drawn with ``seed + pair``.

    Args:
        ds: the run's :class:`~densitybench.data.ImageData`.
        ends: the indices of two test images.
        steps: ``(S, 1)`` positions in [0, 1] along the line.
    Returns:
        ``(images, between_data)``: ``(S, ...)`` images on the CPU and whether the ends are the
        test images (False: latent points drawn from the prior); None for a model with no
        latent space.
    """
    from . import data

    steps = steps.to(model.device)
    if model.can_encode:
        if model.support == "continuous":
            x = data.dequantize(ds.test[ends], ds.n_levels, torch.Generator().manual_seed(seed))
        else:
            x = ds.split("test")[ends]
        z = model.to_latent(x.to(model.device))
        return model.from_latent((1 - steps) * z[0] + steps * z[1]).clamp(0, 1).cpu(), True
    if model.has_latent:
        z = model.sample_latent(2, torch.Generator(device=model.device).manual_seed(seed + pair))
        return model.from_latent((1 - steps) * z[0] + steps * z[1]).cpu(), False
    return None


# --------------------------------------------------------------------------- the Parzen lesson


def parzen_lesson(
    centre_sets: dict[str, torch.Tensor], valid: torch.Tensor, test: torch.Tensor, sigmas=None
) -> list[dict]:
    """Parzen-window log-likelihoods of the same test images under several sets of centres.

    Theis, van den Oord & Bethge (2016): the Parzen estimate ranks a set of k-means centroids
    of the training data above real images from the data distribution itself, so it cannot
    rank generative models. For each set the kernel width is chosen on ``valid`` (the
    Goodfellow et al. grid ``logspace(-1, 0, 10)`` by default) and the test mean is given with
    its standard error over test images.

    Args:
        centre_sets: name -> ``(N, ...)`` centres (e.g. GAN samples, k-means centroids, real images).
        valid, test: ``(B, ...)`` points in the same space as the centres.
    Returns:
        One dict per set: ``name``, ``n_centres``, ``sigma``, ``test_ll``, ``test_ll_se``.
    """
    rows = []
    for name, centres in centre_sets.items():
        sigma, _ = metrics.select_parzen_sigma(valid, centres, sigmas)
        ll = metrics.parzen_log_prob(test, centres, sigma).cpu().numpy()
        mean, se = metrics.mean_se(ll)
        rows.append({"name": name, "n_centres": int(len(centres)), "sigma": sigma, "test_ll": mean, "test_ll_se": se})
    return rows


def kmeans_centroids(images: torch.Tensor, n_centroids: int, seed: int = 0, max_iter: int = 10) -> torch.Tensor:
    """``n_centroids`` k-means centroids of ``images``, shaped like the images.

    Lloyd's algorithm from a random initialisation (the k-means++ one costs ``O(n_centroids)``
    passes over the data), stopped after ``max_iter`` passes: every centroid is the mean of
    the images in its cell at the last assignment, which is all the Parzen lesson needs
    (Theis et al. used 10,000 centroids on MNIST)."""
    from sklearn.cluster import KMeans

    x = images.reshape(len(images), -1).numpy().astype(np.float32)
    km = KMeans(n_clusters=n_centroids, init="random", n_init=1, max_iter=max_iter, random_state=seed).fit(x)
    return torch.from_numpy(km.cluster_centers_.astype(np.float32)).reshape(n_centroids, *images.shape[1:])


# --------------------------------------------------------------------------- the table

#: the columns of :func:`table`: key, header, decimals
COLUMNS = (
    ("fd", "FD (digit features)", 2), ("precision", "precision", 3), ("recall", "recall", 3),
    ("mode_entropy", "label entropy (nats)", 3), ("c2st", "C2ST accuracy", 3), ("c_t", "C_T", 2),
    ("nn_q05", "NN dist. q05", 2), ("nn_q50", "NN dist. median", 2),
)


def table(rows: dict[str, dict]) -> "pd.DataFrame":
    """One row per judged set (name -> ``{"dataset", "kind", **judge(...)}``): every measure as
    ``mean ± SE``."""
    import pandas as pd

    out = []
    for name, r in rows.items():
        row = {"samples of": name, "dataset": r.get("dataset", ""), "likelihood": r.get("kind", ""),
               "n": r.get("n", "")}
        for key, header, digits in COLUMNS:
            v, se = r.get(key), r.get(f"{key}_se")
            row[header] = "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f} ± {se:.{digits}f}"
        out.append(row)
    return pd.DataFrame(out).set_index("samples of")
