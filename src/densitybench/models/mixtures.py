"""The baselines of the study's origin: a mixture of Bernoullis and PCA + GMM.

Mixture of multivariate Bernoullis, fitted by EM: the binary baseline of MADE
(Germain et al., ICML 2015, Tables 2 and 6)::

    p(x) = sum_k pi_k prod_d mu_kd^{x_d} (1 - mu_kd)^{1 - x_d}.

PCA + GMM, the seed slides' baseline: PCA keeping a fraction of the variance, then a
Gaussian mixture on the principal subspace. To make its NLL a density in pixel space,
the discarded directions get an isotropic Gaussian whose variance ``sigma^2`` is the mean
discarded eigenvalue (as in probabilistic PCA, Tipping & Bishop 1999). With ``W`` the
``D x d`` orthonormal principal directions, ``z = W^T (y - b)`` and the residual
``r = (y - b) - W z``, the rotation to ``(z, r)`` has unit Jacobian, so

    log p(y) = log sum_k pi_k N(z; m_k, S_k) - (D - d)/2 log(2 pi sigma^2) - |r|^2 / (2 sigma^2).

Equivalently ``p(y) = sum_k pi_k N(y; b + W m_k, W S_k W^T + sigma^2 (I - W W^T))``.
The model is fitted to dequantized data ``y = (x + u) / n_levels`` (see
:func:`densitybench.data.dequantize`).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch

from .base import DensityModel, FittedBuffersMixin, uniform
from .hparams import check_hparams, is_integer, is_real


def _check_variance(value, n_dims):
    if not is_real(value) or not 0 < value <= 1:
        return f"variance must be a number in (0, 1], got {value!r}"
    return None


def _check_n_principal(value, n_dims):
    if value is None:
        return None
    if not is_integer(value) or value < 1:
        return f"n_principal must be a positive integer or null, got {value!r}"
    if n_dims is not None and value > n_dims:
        return f"n_principal must be at most the data's {n_dims} dimensions, got {value!r}"
    return None


def _out_of_time(t0: float, max_seconds: float | None) -> bool:
    """Whether the budget ``max_seconds`` (None: no budget) has been spent since ``t0``."""
    return max_seconds is not None and time.perf_counter() - t0 >= max_seconds


class BernoulliMixture(FittedBuffersMixin, DensityModel):
    """Mixture of ``n_components`` multivariate Bernoullis, fitted by EM.

    The M-step uses a symmetric Beta(1 + alpha, 1 + alpha) prior on each ``mu_kd`` (the
    MAP estimate ``(sum_n r_nk x_nd + alpha) / (N_k + 2 alpha)``) so no probability is 0 or 1.
    EM stops when the validation NLL has not improved for ``patience`` iterations, after
    ``max_iter`` iterations, or after the iteration that spends the time budget given to
    :meth:`fit_closed_form`; the parameters of the best iteration are kept. Until fitted, the buffers are empty and
    ``log_prob`` and ``sample`` raise ``RuntimeError``.

    Args:
        data_shape: shape of one example.
        n_components: K.
        alpha: strength of the Beta prior.
        max_iter: most EM iterations.
        patience: iterations without validation improvement before stopping.
        seed: seed of the initialisation (K random training images, shrunk to the mean).
    """

    name = "bernoulli_mixture"
    likelihood = "exact"
    trained_by_gradient = False
    width_hparams = ()  # no network; the size of the model is n_components

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"n_components": 3, "max_iter": 5}

    def __init__(self, data_shape, n_components=10, alpha=0.01, max_iter=200, patience=5, seed=0):
        check_hparams(BernoulliMixture, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, support="binary")
        self.n_components = int(n_components)
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)
        self.patience = int(patience)
        self.seed = int(seed)
        # empty until fitted: ``log pi`` (K,) and ``mu`` (K, D)
        self.register_buffer("log_weights", torch.zeros(0))
        self.register_buffer("probs", torch.zeros(0, self.n_dims))

    @property
    def is_fitted(self) -> bool:
        return self.probs.shape[0] > 0

    def n_params(self) -> int:
        """``K`` weights and ``K x D`` probabilities (as stored; the weights sum to 1)."""
        return self.n_components * (1 + self.n_dims)

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log p(x | k)``, shape ``(B, K)``."""
        x = x.reshape(x.shape[0], -1).to(self.probs.dtype)
        log_mu, log_1m = torch.log(self.probs), torch.log1p(-self.probs)
        return x @ (log_mu - log_1m).T + log_1m.sum(1) + self.log_weights

    def _log_prob(self, x):
        return torch.logsumexp(self._component_log_probs(x), 1)

    def _sample(self, n, generator):
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        u = uniform((n, self.n_dims), generator, self.probs.device)
        return (u < self.probs[k]).float().reshape(n, *self.data_shape)

    @torch.no_grad()
    def fit_closed_form(self, train: torch.Tensor, valid: torch.Tensor, progress: bool = True, batch_size=10000,
                        max_seconds: float | None = None):
        """Fit by EM with early stopping on ``valid``.

        Args:
            train, valid: ``(N, *data_shape)`` binary.
            progress: show a progress bar.
            batch_size: examples per E-step pass.
            max_seconds: a wall-clock budget (None: none), checked after every iteration:
                the iteration that spends it is the last, and its row of the history says
                ``"stopped_by_budget": True``.
        Returns:
            The per-iteration history: ``epoch``, ``train_loss``, ``valid_loss``, ``seconds``.
        """
        from tqdm import tqdm

        t_start = time.perf_counter()
        train = self.check_input(train)
        valid = self.check_input(valid)
        xt = train.reshape(train.shape[0], -1).to(self.probs.device, self.probs.dtype)
        K = self.n_components
        g = torch.Generator().manual_seed(self.seed)
        pick = torch.randperm(xt.shape[0], generator=g)[:K]
        mean = xt.mean(0)
        self.probs = (0.5 * xt[pick] + 0.5 * mean).clamp(1e-3, 1 - 1e-3)
        self.log_weights = torch.full((K,), -math.log(K), dtype=xt.dtype, device=xt.device)

        def nll(x):
            return -torch.cat([self._log_prob(b) for b in x.split(batch_size)]).mean().item()

        history, best, best_state, bad = [], float("inf"), None, 0
        bar = tqdm(range(1, self.max_iter + 1), desc=f"EM K={K}", disable=not progress, mininterval=5)
        for it in bar:
            t0 = time.perf_counter()
            counts = torch.zeros(K, dtype=xt.dtype, device=xt.device)
            sums = torch.zeros_like(self.probs)
            train_ll = 0.0
            for b in xt.split(batch_size):
                lp = self._component_log_probs(b)  # E-step
                norm = torch.logsumexp(lp, 1, keepdim=True)
                train_ll += norm.sum().item()
                r = torch.exp(lp - norm)
                counts += r.sum(0)
                sums += r.T @ b
            self.probs.copy_((sums + self.alpha) / (counts[:, None] + 2 * self.alpha))  # M-step
            self.log_weights.copy_(torch.log(counts.clamp_min(1e-12) / counts.sum()))
            v = nll(valid.to(self.probs.device))
            history.append(
                {"epoch": it, "train_loss": -train_ll / xt.shape[0], "valid_loss": v, "seconds": time.perf_counter() - t0}
            )
            bar.set_postfix(valid=f"{v:.2f}")
            if v < best - 1e-4:
                best, bad = v, 0
                best_state = {k: t.clone() for k, t in self.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
            if it < self.max_iter and _out_of_time(t_start, max_seconds):
                history[-1]["stopped_by_budget"] = True
                break
        self.load_state_dict(best_state)
        return history


def principal_dimension(x: torch.Tensor, variance: float) -> int:
    """How many principal directions keep ``variance`` of the variance of ``x`` ``(N, ...)``.

    For binary images this counts on the images themselves: after dequantization the uniform
    noise adds the same variance to every direction, and 99% of the total would keep
    nearly all of them.
    """
    from sklearn.decomposition import PCA

    a = x.reshape(x.shape[0], -1).double().cpu().numpy()
    return int(PCA(n_components=variance if variance < 1 else None, svd_solver="full").fit(a).n_components_)


class PCAGMM(FittedBuffersMixin, DensityModel):
    """PCA keeping ``variance`` of the variance, a GMM on the subspace, and an isotropic
    Gaussian on the discarded directions: a proper density on ``R^D``.

    Fitted with scikit-learn's ``PCA`` and ``GaussianMixture`` (EM, k-means initialisation);
    the fitted parameters are stored as buffers and the density is evaluated in float64 torch.
    Until fitted, the buffers are empty and ``log_prob`` and ``sample`` raise ``RuntimeError``.

    Args:
        data_shape: shape of one example.
        variance: fraction of the variance the principal subspace keeps (0 < variance <= 1).
        n_principal: the dimension of the principal subspace, when it is fixed in advance
            (e.g. from the variance of the binary images before dequantization); overrides
            ``variance``.
        n_components: Gaussian components.
        covariance_type: ``"full"`` or ``"diag"`` (as scikit-learn).
        reg_covar: added to the diagonal of each covariance.
        max_iter: most EM iterations.
        seed: seed of the k-means initialisation.
    """

    name = "pca_gmm"
    likelihood = "exact"
    trained_by_gradient = False
    width_hparams = ()  # no network; the size of the model is n_components (and n_principal)
    hparam_choices = {"covariance_type": ("full", "diag")}
    hparam_checks = {"variance": _check_variance, "n_principal": _check_n_principal}

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"n_principal": 2, "n_components": 2, "max_iter": 5}

    def __init__(
        self, data_shape, variance=0.99, n_components=110, covariance_type="full", reg_covar=1e-6, max_iter=100, seed=0,
        n_principal=None,
    ):
        check_hparams(PCAGMM, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, support="continuous")
        self.fixed_principal = None if n_principal is None else int(n_principal)
        self.variance = float(variance)
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        f64 = torch.float64
        self.register_buffer("pca_mean", torch.zeros(self.n_dims, dtype=f64))
        self.register_buffer("components", torch.zeros(self.n_dims, 0, dtype=f64))  # W, D x d
        self.register_buffer("noise_variance", torch.ones((), dtype=f64))  # sigma^2
        self.register_buffer("log_weights", torch.zeros(0, dtype=f64))
        self.register_buffer("means", torch.zeros(0, 0, dtype=f64))
        #: precision Cholesky factors P_k with S_k^{-1} = P_k P_k^T, shape (K, d, d)
        self.register_buffer("prec_chol", torch.zeros(0, 0, 0, dtype=f64))

    @property
    def is_fitted(self) -> bool:
        # the mixture's buffers are empty until fitted, and shaped by the state dict on load
        return self.log_weights.numel() > 0

    @property
    def n_principal(self) -> int:
        return int(self.components.shape[1])

    def n_params(self) -> int:
        D, d, K = self.n_dims, self.n_principal, self.n_components
        cov = d * (d + 1) // 2 if self.covariance_type == "full" else d
        return D + D * d + 1 + (K - 1) + K * d + K * cov

    def fit_closed_form(self, train: torch.Tensor, valid: torch.Tensor, progress: bool = True,
                        max_seconds: float | None = None):
        """Fit PCA then the GMM on ``train`` (dequantized); report the validation NLL.

        The GMM is fitted by scikit-learn's EM one iteration at a time (``warm_start``), with
        scikit-learn's own convergence test (the change of the mean log-likelihood bound below
        ``tol = 1e-3``): the same parameters as one call with ``max_iter`` iterations, and a
        time budget can end it between two iterations.

        Args:
            train, valid: ``(N, *data_shape)`` continuous (dequantized) data.
            progress: print PCA's outcome and EM's progress.
            max_seconds: a wall-clock budget (None: none) counted from the start of the fit and
                checked after every EM iteration: the iteration that spends it is the last.
        Returns:
            One row: ``epoch`` (EM iterations), ``train_loss``, ``valid_loss``, ``seconds``,
            ``converged``, ``n_principal``, and ``"stopped_by_budget": True`` when the budget
            ended EM before it converged or reached ``max_iter``.
        """
        from sklearn.decomposition import PCA

        t0 = time.perf_counter()
        train = self.check_input(train)
        valid = self.check_input(valid)
        xt = train.reshape(train.shape[0], -1).double().cpu().numpy()
        keep = self.fixed_principal or (self.variance if self.variance < 1 else None)
        pca = PCA(n_components=keep, svd_solver="full")
        z = pca.fit_transform(xt)
        d = z.shape[1]
        noise = float(pca.noise_variance_) if d < self.n_dims else 1.0
        if progress:
            kept = (f"{pca.explained_variance_ratio_.sum():.1%} of the variance, fixed in advance"
                    if self.fixed_principal else f"{self.variance:.0%} of the variance")
            print(f"PCA: kept {d} of {self.n_dims} directions ({kept}); sigma^2 of the discarded ones = {noise:.3g}")
        gmm, n_iter, converged, by_budget = self._fit_gmm(z, t0, max_seconds, progress)
        f64 = torch.float64
        self.pca_mean = torch.from_numpy(pca.mean_).to(f64)
        self.components = torch.from_numpy(pca.components_.T.copy()).to(f64)
        self.noise_variance = torch.tensor(noise, dtype=f64)
        self.log_weights = torch.from_numpy(np.log(gmm.weights_)).to(f64)
        self.means = torch.from_numpy(gmm.means_).to(f64)
        pc = gmm.precisions_cholesky_
        if self.covariance_type == "diag":
            pc = np.stack([np.diag(p) for p in pc])
        self.prec_chol = torch.from_numpy(np.ascontiguousarray(pc)).to(f64)
        v = -self.log_prob(valid).mean().item()
        row = {
            "epoch": n_iter,
            "train_loss": -self.log_prob(train).mean().item(),
            "valid_loss": v,
            "seconds": time.perf_counter() - t0,
            "converged": converged,
            "n_principal": d,
        }
        if by_budget:
            row["stopped_by_budget"] = True
        return [row]

    def _fit_gmm(self, z: np.ndarray, t0: float, max_seconds: float | None, progress: bool):
        """EM on the principal coordinates ``z`` ``(N, d)``, one scikit-learn iteration per call.

        Returns:
            ``(gmm, iterations, converged, stopped by the budget)``.
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=1,
            random_state=self.seed,
            warm_start=True,
        )
        bound, n_iter, converged, by_budget = -np.inf, 0, False, False
        with warnings.catch_warnings():
            # every one-iteration call "did not converge": the test is ours, below
            warnings.simplefilter("ignore", ConvergenceWarning)
            while n_iter < self.max_iter:
                gmm.fit(z)  # the first call initialises (k-means), every call runs one EM iteration
                n_iter += 1
                change, bound = gmm.lower_bound_ - bound, gmm.lower_bound_
                if progress and n_iter % 10 == 0:
                    print(f"EM iteration {n_iter}: mean log-likelihood bound {bound:.6g} (change {change:.3g})")
                if abs(change) < gmm.tol:  # scikit-learn's own test
                    converged = True
                    break
                if n_iter < self.max_iter and _out_of_time(t0, max_seconds):
                    by_budget = True
                    break
        if progress:
            why = "converged" if converged else "stopped by the time budget" if by_budget else "iteration cap"
            print(f"EM: {n_iter} iterations ({why})")
        return gmm, n_iter, converged, by_budget

    def _log_prob(self, x, batch_size: int = 2000):
        out = []
        for b in x.reshape(x.shape[0], -1).split(batch_size):
            y = b.to(self.pca_mean.device, torch.float64) - self.pca_mean
            z = y @ self.components  # (B, d)
            r = y - z @ self.components.T  # residual in the discarded directions
            d, D = self.n_principal, self.n_dims
            s2 = self.noise_variance
            log_resid = -0.5 * (D - d) * torch.log(2 * math.pi * s2) - 0.5 * (r * r).sum(1) / s2
            # (B, K, d): (z - m_k) P_k
            w = torch.einsum("bkd,kde->bke", z[:, None, :] - self.means[None], self.prec_chol)
            log_det = torch.log(torch.diagonal(self.prec_chol, dim1=1, dim2=2)).sum(1)
            log_n = -0.5 * d * math.log(2 * math.pi) + log_det - 0.5 * (w * w).sum(2)
            out.append(torch.logsumexp(log_n + self.log_weights, 1) + log_resid)
        return torch.cat(out).to(x.dtype if x.dtype == torch.float64 else torch.float32)

    def _sample(self, n, generator):
        dev = self.pca_mean.device
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator).to(dev)
        gdev = generator.device if generator is not None else torch.device("cpu")
        eps = torch.randn((n, self.n_principal, 1), generator=generator, device=gdev, dtype=torch.float64).to(dev)
        # z = m_k + P_k^{-T} eps has covariance (P_k P_k^T)^{-1} = S_k
        z = self.means[k] + torch.linalg.solve_triangular(
            self.prec_chol[k].transpose(1, 2), eps, upper=True
        ).squeeze(2)
        e2 = torch.randn((n, self.n_dims), generator=generator, device=gdev, dtype=torch.float64).to(dev)
        resid = e2 - (e2 @ self.components) @ self.components.T
        y = self.pca_mean + z @ self.components.T + self.noise_variance.sqrt() * resid
        return y.float().reshape(n, *self.data_shape)
