"""Metrics that know nothing of a particular model: NLL summaries and nearest neighbours."""

from __future__ import annotations

import math

import numpy as np
import torch


def mean_se(values) -> tuple[float, float]:
    """Mean and its standard error ``std / sqrt(n)`` (``ddof=1``) over examples."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


@torch.no_grad()
def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, metric: str = "l2", batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each query to its nearest reference example, and that example's index.

    Args:
        queries: ``(Q, ...)``; flattened.
        reference: ``(R, ...)``; flattened, same number of dimensions.
        metric: ``"hamming"`` (number of differing pixels of binary images) or ``"l2"``.
    Returns:
        ``(distances (Q,), indices (Q,))``.
    """
    q = queries.reshape(queries.shape[0], -1).double()
    r = reference.reshape(reference.shape[0], -1).double()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the reference {r.shape[1]}")
    if metric not in ("hamming", "l2"):
        raise ValueError("metric must be 'hamming' or 'l2'")
    dists, idxs = [], []
    r2 = (r * r).sum(1)
    for qb in q.split(batch_size):
        if metric == "hamming":
            # for 0/1 vectors |a - b|_1 = |a| + |b| - 2 a.b
            d = qb.sum(1, keepdim=True) + r.sum(1) - 2 * qb @ r.T
        else:
            d = ((qb * qb).sum(1, keepdim=True) + r2 - 2 * qb @ r.T).clamp_min(0)
        m, i = d.min(1)
        dists.append(m if metric == "hamming" else m.sqrt())
        idxs.append(i)
    return torch.cat(dists).round(decimals=9).float(), torch.cat(idxs)


def quantiles(values, qs=(0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {f"q{int(q * 100):02d}": float(np.quantile(v, q)) for q in qs} | {"mean": float(v.mean())}


# --------------------------------------------------------------------------- Parzen windows


def _parzen_inputs(x, centres, device):
    """``x`` and ``centres`` as flat float64 tensors on ``device``, checked."""
    xt = torch.as_tensor(x)
    ct = torch.as_tensor(centres)
    if device is None:
        device = ct.device
    if xt.ndim < 1 or ct.ndim < 1:
        raise ValueError("x and centres must have a leading batch dimension")
    if ct.shape[0] < 1:
        raise ValueError("the Parzen window needs at least one centre")
    xt = xt.reshape(xt.shape[0], -1).to(device=device, dtype=torch.float64)
    ct = ct.reshape(ct.shape[0], -1).to(device=device, dtype=torch.float64)
    if xt.shape[1] != ct.shape[1]:
        raise ValueError(f"x has {xt.shape[1]} dimensions, the centres {ct.shape[1]}")
    if not (torch.isfinite(xt).all() and torch.isfinite(ct).all()):
        raise ValueError("x and centres must be finite")
    return xt, ct


def _parzen_sigmas(sigmas) -> np.ndarray:
    s = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    if s.ndim != 1 or s.size == 0:
        raise ValueError("sigmas must be a non-empty 1-D sequence")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"every kernel width must be positive and finite, got {s.tolist()}")
    return s


@torch.no_grad()
def _parzen_log_probs(xt, ct, sigmas: np.ndarray, batch_size: int, centre_batch_size: int) -> torch.Tensor:
    """``(S, B)`` Parzen log-densities of the rows of ``xt`` for every width in ``sigmas``.

    The squared distances of a block of points to a block of centres are computed once and
    shared by all widths; the sum over centres is a running ``logsumexp`` over centre blocks,
    so memory grows with ``batch_size * centre_batch_size``, not with ``B * N``.
    """
    if batch_size < 1 or centre_batch_size < 1:
        raise ValueError("batch sizes must be positive")
    N, D = ct.shape
    s = torch.as_tensor(sigmas, dtype=torch.float64, device=ct.device)
    inv_two_var = (1.0 / (2.0 * s * s)).tolist()
    # log N + (D/2) log(2 pi sigma^2): the mixture weight 1/N and the Gaussian's normaliser
    const = math.log(N) + 0.5 * D * torch.log(2 * math.pi * s * s)  # (S,)
    c_blocks = ct.split(centre_batch_size)
    c2_blocks = [(c * c).sum(1) for c in c_blocks]
    out = []
    for xb in xt.split(batch_size):
        x2 = (xb * xb).sum(1, keepdim=True)
        acc = torch.full((len(sigmas), xb.shape[0]), -math.inf, dtype=torch.float64, device=ct.device)
        for c, c2 in zip(c_blocks, c2_blocks):
            d2 = (x2 + c2 - 2.0 * xb @ c.T).clamp_min(0.0)  # (b, n) squared distances
            block = torch.stack([torch.logsumexp(d2 * -k, dim=1) for k in inv_two_var])  # (S, b)
            acc = torch.logaddexp(acc, block)
        out.append(acc - const[:, None])
    return torch.cat(out, dim=1)


def parzen_log_prob(x, centres, sigma: float, batch_size: int = 500, centre_batch_size: int = 5000, device=None):
    """Log-density of ``x`` under a Parzen window (an isotropic Gaussian kernel density).

    With ``N`` centres ``mu_i`` in ``D`` dimensions and kernel width ``sigma``::

        log p(x) = logsumexp_i(-|x - mu_i|^2 / (2 sigma^2)) - log N - (D/2) log(2 pi sigma^2).

    Goodfellow et al. (2014) estimate the likelihood of a GAN this way, with ``N = 10,000``
    generated samples as centres. Theis, van den Oord & Bethge ("A note on the evaluation
    of generative models", ICLR 2016) show that such estimates are unreliable in high
    dimensions: even with many samples they are far from the true log-likelihood, and they
    can rank models wrongly (k-means centroids of the training data outscore samples of the
    true distribution on MNIST). Report them only with that warning.

    Args:
        x: ``(B, ...)`` points (tensor or array); flattened.
        centres: ``(N, ...)`` kernel centres with the same number of dimensions.
        sigma: kernel width, positive.
        batch_size: points per block.
        centre_batch_size: centres per block (memory is ``batch_size * centre_batch_size``
            float64 values, whatever ``B`` and ``N``).
        device: where to compute; by default the centres' device.
    Returns:
        ``(B,)`` log-densities in nats, accumulated in float64: a tensor on the computing
        device when ``x`` is a tensor, a NumPy array otherwise.
    """
    if np.ndim(sigma) != 0:
        raise ValueError("sigma must be a single number; use select_parzen_sigma for a grid")
    sigmas = _parzen_sigmas([sigma])
    xt, ct = _parzen_inputs(x, centres, device)
    lp = _parzen_log_probs(xt, ct, sigmas, int(batch_size), int(centre_batch_size))[0]
    return lp if isinstance(x, torch.Tensor) else lp.cpu().numpy()


def select_parzen_sigma(
    valid, centres, sigmas=None, batch_size: int = 500, centre_batch_size: int = 5000, device=None
) -> tuple[float, dict[float, float]]:
    """The Parzen kernel width that maximises the mean log-likelihood of validation points.

    The protocol of Goodfellow et al. (2014): ``sigma`` from ``numpy.logspace(-1, 0, 10)``
    (the default) chosen on validation images, then used on the test set. The caveat of
    :func:`parzen_log_prob` applies.

    Args:
        valid: ``(B, ...)`` validation points.
        centres: ``(N, ...)`` kernel centres (e.g. generated samples).
        sigmas: candidate widths, all positive.
        batch_size, centre_batch_size, device: as in :func:`parzen_log_prob`.
    Returns:
        ``(best_sigma, {sigma: mean validation log-likelihood in nats})``; ties go to the
        first width in ``sigmas``.
    """
    sigmas = _parzen_sigmas(np.logspace(-1, 0, 10) if sigmas is None else sigmas)
    xt, ct = _parzen_inputs(valid, centres, device)
    if xt.shape[0] < 1:
        raise ValueError("select_parzen_sigma needs at least one validation point")
    means = _parzen_log_probs(xt, ct, sigmas, int(batch_size), int(centre_batch_size)).mean(1).cpu().numpy()
    table = {float(s): float(m) for s, m in zip(sigmas, means)}
    return float(sigmas[int(np.argmax(means))]), table


# --------------------------------------------------------------------------- judging samples
# Every function takes features (N, F) of real and generated images: an embedding such as a
# classifier's penultimate layer, or raw pixels for small images.


def _as_2d(x) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (the FID formula,
    Heusel et al. 2017): ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2})``.

    With features of a classifier of our own it is not comparable with Inception-based FID.
    """
    a, b = _as_2d(a), _as_2d(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the sets have {a.shape[1]} and {b.shape[1]} features")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr (C_a C_b)^{1/2} = sum of the square roots of the eigenvalues of the symmetric
    # C_a^{1/2} C_b C_a^{1/2}: stable for singular covariances (no matrix square root of a
    # non-symmetric product)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_covmean)
    return max(fd, 0.0)


def _pairwise(a: np.ndarray, b: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Euclidean distances ``(len(a), len(b))``."""
    bt = torch.from_numpy(b)
    out = [torch.cdist(torch.from_numpy(a[i:i + batch_size]), bt) for i in range(0, len(a), batch_size)]
    return torch.cat(out).numpy()


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points, each with the radius of the
    distance to the point's ``k``-th nearest neighbour in the same set. Precision is the
    fraction of generated points inside the real manifold; recall the fraction of real points
    inside the generated one. Standard errors are binomial over the points.
    """
    real, fake = _as_2d(real), _as_2d(fake)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"each set needs more than k={k} points")

    def radii(x):
        d = _pairwise(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    r_real, r_fake = radii(real), radii(fake)
    d = _pairwise(fake, real)  # (n_fake, n_real)
    in_real = (d <= r_real[None, :]).any(1)
    in_fake = (d.T <= r_fake[None, :]).any(1)
    p, r = float(in_real.mean()), float(in_fake.mean())
    return {"precision": p, "precision_se": math.sqrt(p * (1 - p) / len(fake)),
            "recall": r, "recall_se": math.sqrt(r * (1 - r) / len(real))}


def mode_coverage(labels, n_classes: int) -> dict:
    """How a classifier's labels of generated images spread over the classes: the histogram,
    its entropy (nats; ``log n_classes`` when uniform) and its total-variation distance from
    uniform (0 when uniform, ``1 - 1/n_classes`` when one class takes everything)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes)[:n_classes]
    p = counts / counts.sum()
    nz = p[p > 0]
    return {"histogram": counts.tolist(), "entropy": float(-(nz * np.log(nz)).sum()) + 0.0,
            "max_entropy": math.log(n_classes), "tv_from_uniform": float(0.5 * np.abs(p - 1 / n_classes).sum())}


def c2st(real, fake, seed: int = 0, test_fraction: float = 0.5) -> dict[str, float]:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): the held-out accuracy of a logistic
    regression trained to tell ``fake`` from ``real``; 0.5 means indistinguishable. Both sets
    are cut to the same size; the SE is binomial over the held-out points."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, fake = _as_2d(real), _as_2d(fake)
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    x = np.concatenate([real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x_tr, y_tr)
    acc = float((clf.predict(x_te) == y_te).mean())
    return {"accuracy": acc, "accuracy_se": math.sqrt(acc * (1 - acc) / len(y_te)), "n_test": int(len(y_te))}


def data_copying(train, test, generated, n_cells: int = 20, min_per_cell: int = 20, seed: int = 0) -> dict:
    """The data-copying test C_T of Meehan, Chaudhuri & Dasgupta (2020).

    The training set is cut into ``n_cells`` k-means cells. In each cell, the distances from
    held-out test points to their nearest training point are compared with the same
    distances of generated points by the Mann-Whitney U statistic, standardised to ``Z_U``
    (negative when generated points sit closer to the training set than test points do).
    ``C_T`` is the average of ``Z_U`` over the cells holding at least ``min_per_cell``
    generated points, weighted by the test points' share: ``C_T << 0`` means copying,
    ``C_T >> 0`` underfitting, about 0 neither.
    """
    from sklearn.cluster import KMeans

    train, test, generated = _as_2d(train), _as_2d(test), _as_2d(generated)
    km = KMeans(n_clusters=n_cells, n_init=4, random_state=seed).fit(train)
    d_test = _pairwise(test, train).min(1)
    d_gen = _pairwise(generated, train).min(1)
    return copying_statistic(d_test, km.predict(test), d_gen, km.predict(generated), n_cells, min_per_cell)


def copying_statistic(d_test, cell_test, d_gen, cell_gen, n_cells: int, min_per_cell: int = 20) -> dict:
    """``C_T`` from precomputed nearest-training-point distances and k-means cells of the
    held-out test points and of the generated points (see :func:`data_copying`)."""
    from scipy.stats import rankdata

    z, weights = [], []
    for c in range(n_cells):
        a, b = d_test[cell_test == c], d_gen[cell_gen == c]
        if len(b) < min_per_cell or len(a) < 2:
            continue
        m, n = len(a), len(b)
        ranks = rankdata(np.concatenate([a, b]))
        u = ranks[m:].sum() - n * (n + 1) / 2  # pairs (test, generated) with the generated point farther
        z.append((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))
        weights.append(m)
    if not z:
        raise ValueError(f"no cell holds {min_per_cell} generated points; use fewer cells or more samples")
    w = np.asarray(weights, float) / sum(weights)
    return {"C_T": float((w * np.asarray(z)).sum()), "cells_used": len(z), "z_per_cell": [float(v) for v in z]}
