"""VAE: the variational autoencoder, evaluated with the importance-weighted bound.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; the bound used for
evaluation is that of Burda, Grosse & Salakhutdinov, "Importance Weighted
Autoencoders", ICLR 2016.

A latent ``z`` in ``R^L`` with the standard normal prior ``p(z) = N(0, I)`` and a
Bernoulli decoder ``p(x | z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d))`` (``f`` outputs
logits). The encoder is the diagonal Gaussian ``q(z | x) = N(mu(x), diag sigma^2(x))``,
parameterised by ``(mu, log sigma^2)``. Training maximises the ELBO with one
reparameterised sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, and the analytic KL:

    L(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)),
    KL   = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

The likelihood reported is the importance-weighted bound with ``k`` samples
``z_1..z_k ~ q(z | x)`` and weights ``w_i = p(x, z_i) / q(z_i | x)``:

    L_k(x) = log (1/k) sum_i w_i,

An optional KL warm-up (Bowman et al. 2016; Sønderby et al. 2016) trains during its first
``kl_warmup`` optimiser steps on ``E_q[log p(x | z)] - beta KL`` with ``beta`` rising linearly from
0 to 1, and on the ELBO itself afterwards; it keeps more latent units in use.

The bound ``L_k`` satisfies ``L(x) = E[L_1] <= E[L_k] <= E[L_k'] <= log p(x)`` for ``k <= k'`` and tends
to ``log p(x)`` as ``k`` grows (Burda et al., Theorem 1). Following their protocol,
``log_prob`` is ``L_5000``: a stochastic lower bound, so ``likelihood = "bound"`` and
``-log_prob`` is an upper bound on the NLL in expectation. Its samples are drawn from a
generator seeded with ``eval_seed`` at every call, so the same batch always gives the same
number, on any device.

Early stopping watches the negative ELBO of the validation images (:meth:`VAE.validation_criterion`),
with its noise from a generator seeded with ``eval_seed``: cheaper than ``L_5000``, and steady
from one epoch to the next. The record also reports the test negative ELBO
(:meth:`VAE.evaluation_extras`), an upper bound on the NLL looser than ``-L_k``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from .base import DensityModel, check_count, uniform
from .hparams import check_hparams

_LOG_2PI = math.log(2 * math.pi)
_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(sizes: tuple[int, ...], activation: str) -> nn.Sequential:
    """Linear layers through ``sizes`` with ``activation`` after each one."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _standard_normal(shape, generator: torch.Generator | None, device, dtype) -> torch.Tensor:
    """``N(0, 1)`` noise drawn from ``generator`` (on its own device), moved to ``device``;
    from the default generator of ``device`` when ``generator`` is None."""
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)


class VAE(DensityModel):
    """Gaussian-encoder, Bernoulli-decoder VAE over binary data (Burda et al.'s 1-layer model).

    Args:
        data_shape: shape of one example, e.g. ``(1, 28, 28)``; flattened in C order.
        latent_dim: ``L``, the number of latent dimensions (2 for a latent plane one can draw).
        hidden_sizes: units of the encoder's deterministic layers; the decoder mirrors them
            (``L -> reversed(hidden_sizes) -> D``).
        activation: ``"tanh"`` (Burda et al.) or ``"relu"``.
        k_eval: importance samples behind ``log_prob`` (5000 in Burda et al.).
        k_chunk: importance samples processed at once; bounds the memory of the bound to
            about ``k_chunk * B * max(D, hidden)`` numbers and does not change its value.
        eval_seed: seed of the generator that draws the importance samples of ``log_prob``.
        kl_warmup: optimiser steps over which the KL term's weight in the training loss rises
            linearly from 0 to 1 (counted by :meth:`after_step` from the model's creation); 0
            trains on the ELBO from the first step. The bounds and ``log_prob`` never weight the KL.
        k_train: importance samples of the training objective: 1 trains on the ELBO (the VAE),
            ``k > 1`` on the importance-weighted bound ``L_k`` (the IWAE of Burda et al., who
            train with k = 5 and k = 50); a KL warm-up applies to the ELBO only.
    """

    name = "vae"
    fused_adam_on_cpu = True  # measured faster (see DensityModel)
    likelihood = "bound"
    width_hparams = ("hidden_sizes",)
    hparam_choices = {"activation": tuple(_ACTIVATIONS)}
    has_latent = True
    can_encode = True  # the encoder's mean

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"latent_dim": 2, "hidden_sizes": [6], "k_eval": 4, "k_chunk": 3}

    def __init__(
        self,
        data_shape,
        latent_dim: int = 50,
        hidden_sizes=(200, 200),
        activation: str = "tanh",
        k_eval: int = 5000,
        k_chunk: int = 500,
        eval_seed: int = 0,
        kl_warmup: int = 0,
        k_train: int = 1,
    ):
        check_hparams(VAE, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, support="binary")
        self.latent_dim = int(latent_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.k_eval = int(k_eval)
        self.k_chunk = int(k_chunk)
        self.eval_seed = int(eval_seed)
        self.kl_warmup = int(kl_warmup)
        self.k_train = int(k_train)
        if self.k_train > 1 and self.kl_warmup:
            raise ValueError("vae: kl_warmup weights the ELBO's KL term; with k_train > 1 the IWAE bound has none")
        self.steps = 0  # optimiser steps taken, for the warm-up (kept in the state dict)
        D, L = self.n_dims, self.latent_dim

        enc = (D,) + self.hidden_sizes
        self.encoder = _mlp(enc, activation)
        self.enc_mu = nn.Linear(enc[-1], L)
        self.enc_log_var = nn.Linear(enc[-1], L)
        dec = (L,) + self.hidden_sizes[::-1]
        self.decoder = _mlp(dec, activation)
        self.dec_logits = nn.Linear(dec[-1], D)

    # ------------------------------------------------------------------ networks
    @property
    def _dtype(self) -> torch.dtype:
        return self.enc_mu.weight.dtype

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of ``q(z | x)``.

        Args:
            x: ``(B, *data_shape)``.
        Returns:
            ``(mu, log_var)``, each ``(B, L)``: the mean and ``log sigma^2``.
        """
        h = self.encoder(x.reshape(x.shape[0], -1).to(self._dtype))
        return self.enc_mu(h), self.enc_log_var(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of ``p(x | z)``.

        Args:
            z: ``(..., L)``, e.g. ``(B, L)``.
        Returns:
            ``(..., D)`` logits, e.g. ``(B, D)``.
        """
        return self.dec_logits(self.decoder(z.to(self._dtype)))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean ``E[x | z]`` (pixel probabilities), e.g. over a 2-D latent grid.

        Args:
            z: ``(B, L)``.
        Returns:
            ``(B, *data_shape)`` probabilities in ``[0, 1]``.
        """
        return torch.sigmoid(self.decode(z)).reshape(z.shape[0], *self.data_shape)

    @staticmethod
    def _log_bernoulli(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z) = sum_d x_d l_d - softplus(l_d)`` for logits ``(..., B, D)`` and
        ``x`` ``(B, D)``; returns ``(..., B)``."""
        return (logits * x).sum(-1) - F.softplus(logits).sum(-1)

    # ------------------------------------------------------------------ bounds
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The ELBO ``L(x)`` with one reparameterised sample and the analytic KL, shape ``(B,)``.

        Args:
            x: ``(B, *data_shape)`` binary.
            generator: source of ``eps``; the default generator of the model's device if None.
        """
        x = self.check_input(x)
        if x.shape[0] == 0:
            return x.new_empty(0)
        return self._elbo(x, generator)

    def _elbo(self, x: torch.Tensor, generator: torch.Generator | None, beta: float = 1.0) -> torch.Tensor:
        mu, log_var = self.encode(x)
        eps = _standard_normal(mu.shape, generator, mu.device, mu.dtype)
        z = mu + torch.exp(0.5 * log_var) * eps
        x_flat = x.reshape(x.shape[0], -1).to(mu.dtype)
        kl = 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
        return self._log_bernoulli(self.decode(z), x_flat) - beta * kl

    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The importance-weighted bound ``L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i | x)``.

        The ``k`` samples are processed ``k_chunk`` at a time with a running logsumexp; the
        noise of sample ``i`` is the ``i``-th ``(B, L)`` draw from ``generator`` whatever the
        chunking, so ``k_chunk`` changes the memory, not the value.

        Args:
            x: ``(B, *data_shape)`` binary.
            k: number of importance samples, ``>= 1``.
            generator: source of the samples; the default generator of the model's device if None.
        Returns:
            ``(B,)`` in nats.
        """
        x = self.check_input(x)
        if x.shape[0] == 0:
            return x.new_empty(0)
        return self._iwae(x, k, generator)

    def _iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, not {k!r}")
        k = int(k)
        mu, log_var = self.encode(x)
        std = torch.exp(0.5 * log_var)
        x_flat = x.reshape(x.shape[0], -1).to(mu.dtype)
        # log q(z|x) = -1/2 sum_j (eps_j^2 + log sigma_j^2 + log 2 pi); the log sigma part is per example
        log_q_const = -0.5 * (log_var + _LOG_2PI).sum(1)
        total = None
        for start in range(0, k, self.k_chunk):
            n = min(self.k_chunk, k - start)
            # one (B, L) draw per importance sample keeps the stream independent of k_chunk
            eps = torch.stack([_standard_normal(mu.shape, generator, mu.device, mu.dtype) for _ in range(n)])
            z = mu + std * eps  # (n, B, L)
            log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
            log_qz = log_q_const - 0.5 * eps.pow(2).sum(-1)
            log_w = self._log_bernoulli(self.decode(z), x_flat) + log_pz - log_qz  # (n, B)
            chunk = torch.logsumexp(log_w, 0)
            total = chunk if total is None else torch.logaddexp(total, chunk)
        return total - math.log(k)

    # ------------------------------------------------------------------ interface
    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``L_{k_eval}(x)`` with importance samples from a CPU generator seeded with
        ``eval_seed`` (the same noise on every device). Run it under ``torch.no_grad()``
        unless the gradient is wanted: the graph would hold every chunk."""
        generator = torch.Generator().manual_seed(self.eval_seed)
        return self._iwae(x, self.k_eval, generator)

    @property
    def kl_weight(self) -> float:
        """The KL term's weight in the training loss now: ``min(1, steps / kl_warmup)``."""
        return 1.0 if self.steps >= self.kl_warmup else self.steps / self.kl_warmup

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The negative ELBO averaged over the batch (one sample per example); during the
        warm-up, with the KL term weighted by :attr:`kl_weight`. With ``k_train > 1``, the
        negative IWAE bound ``L_{k_train}`` averaged over the batch."""
        x = self.check_input(x)
        if self.k_train > 1:
            return -self._iwae(x, self.k_train, None).mean()
        return -self._elbo(x, None, self.kl_weight).mean()

    def after_step(self) -> None:
        self.steps += 1

    def get_extra_state(self) -> torch.Tensor:
        """``[optimiser steps taken]``: where the KL warm-up stands."""
        return torch.tensor([self.steps], dtype=torch.long)

    def set_extra_state(self, state: torch.Tensor) -> None:
        (self.steps,) = (int(v) for v in state.tolist())

    # ------------------------------------------------------------------ hooks of a generic trainer
    def neg_elbo(self, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """The negative ELBO ``-L(x)`` of every example, in nats, without gradient.

        The noise of the one reparameterised sample per example comes from a single CPU
        generator seeded with ``eval_seed``, drawn batch after batch, so the same ``x`` always
        gives the same numbers.

        Args:
            x: ``(B, *data_shape)`` binary.
            batch_size: examples per forward pass.
        Returns:
            ``(B,)`` float64 array.
        """
        g = torch.Generator().manual_seed(self.eval_seed)
        with torch.no_grad():
            return torch.cat([-self.elbo(b.to(self.device), generator=g).double().cpu()
                              for b in x.split(batch_size)]).numpy()

    def validation_criterion(self, valid: torch.Tensor) -> float:
        """The mean negative ELBO of ``valid`` (:meth:`neg_elbo`), the early-stopping criterion."""
        return float(self.neg_elbo(valid).mean())

    def evaluation_extras(self, test: torch.Tensor) -> dict:
        """``test_neg_elbo_nats`` and ``test_neg_elbo_se``: the mean negative ELBO of ``test``
        (:meth:`neg_elbo`) and its standard error over examples."""
        mean, se = metrics.mean_se(self.neg_elbo(test))
        return {"test_neg_elbo_nats": mean, "test_neg_elbo_se": se}

    def _prior(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return _standard_normal((n, self.latent_dim), generator, self.device, self._dtype)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``z ~ N(0, I)``, then ``x ~ Bernoulli(sigmoid(f(z)))``."""
        probs = self.decode_mean(self._prior(n, generator))
        u = uniform(probs.shape, generator, probs.device).to(probs.dtype)
        return (u < probs).to(torch.get_default_dtype())

    def sample_mean(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean images ``E[x | z]`` of ``n`` prior draws ``z ~ N(0, I)``: ``(n, *data_shape)``
        probabilities (smoother to look at than binary samples)."""
        n = check_count(n)
        with torch.no_grad():
            return self.decode_mean(self._prior(n, generator))

    # ------------------------------------------------------------------ the latent space
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``: ``(n, L)``."""
        return self._prior(check_count(n), generator)

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's mean ``mu(x)``: ``(B, *data_shape)`` binary -> ``(B, L)``."""
        mu, _ = self.encode(self.check_input(x))
        return mu

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean ``E[x | z]``: ``(B, L)`` -> ``(B, *data_shape)`` probabilities
        (see :meth:`decode_mean`)."""
        return self.decode_mean(z)
