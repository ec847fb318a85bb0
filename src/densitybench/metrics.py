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
