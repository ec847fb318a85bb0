"""GAN: Generative Adversarial Nets, with a Parzen-window estimate of the likelihood.

Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio,
"Generative Adversarial Nets", NIPS 2014.

A generator ``G(z)`` maps noise ``z ~ p_z`` to images; a discriminator ``D(x)`` gives the
probability that ``x`` came from the data rather than from ``G``. They play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].

Training alternates one step of ``D`` on this objective (binary cross-entropy: real -> 1,
fake -> 0) with one step of ``G``. For ``G`` we use the *non-saturating* loss the paper
recommends, ``-log D(G(z))``, instead of ``log(1 - D(G(z)))``: both have the same fixed
point, but the latter's gradient vanishes early in training when ``D`` rejects every
sample with confidence.

Architecture of the study's seed thesis (an MLP GAN): ``G``: ``z`` (64, standard normal)
-> 256 -> 256 -> ``D`` pixels with ``tanh`` output; ``D``: ``D`` pixels -> 256 -> 256 -> 1
logit; LeakyReLU(0.2) on every hidden layer of both. ``G``'s output ``t`` in ``(-1, 1)``
is the image ``(t + 1) / 2`` in ``(0, 1)``; ``D`` sees images rescaled to ``[-1, 1]``.
Adam with ``betas = (0.5, 0.999)`` for both players.

A GAN has no likelihood. Following Goodfellow et al., its "likelihood" here is a
Parzen-window estimate (:func:`densitybench.metrics.parzen_log_prob`): a Gaussian kernel
of width ``sigma`` on each of ``parzen_n_samples`` (10,000) generated samples, ``sigma``
chosen from ``logspace(-1, 0, 10)`` on validation images (:meth:`GAN.fit_parzen`).
Theis, van den Oord & Bethge ("A note on the evaluation of generative models", ICLR 2016)
show that such estimates are unreliable in high dimensions, far from the true
log-likelihood even with many samples, and that they can rank models wrongly: on MNIST
the k-means centroids of the training data outscore samples of the true distribution.
The numbers are reported with that warning, as an estimate, never beside exact
likelihoods as if they were one.

Data. The study feeds continuous models dequantized 8-bit images ``y = (x + u) / 256``
with ``u ~ U(0, 1)^D``; Goodfellow et al. used ``x / 255``. Both lie in ``[0, 1]``, but
the densities are not on the same scale (the two maps differ by a factor ``255 / 256``
per pixel and by the uniform noise), so our Parzen estimates are comparable with the
paper's 225 +/- 2 nats only up to that difference in protocol.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from .base import DensityModel, check_count
from .hparams import check_hparams, is_real

#: the kernel widths Goodfellow et al. search on validation data
PARZEN_SIGMAS = np.logspace(-1, 0, 10)


def _check_betas(value, n_dims):
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_real(b) and 0 <= b < 1 for b in value):
        return f"betas must be two numbers in [0, 1), got {value!r}"
    return None


def _mlp(sizes: tuple[int, ...], slope: float = 0.2) -> nn.Sequential:
    """Linear layers of ``sizes`` with LeakyReLU(``slope``) between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


class GAN(DensityModel):
    """An MLP GAN on images in ``[0, 1]``, with a Parzen-window likelihood estimate.

    The networks are ``G`` (generator) and ``D`` (discriminator), named as in the paper.

    Checkpoints hold both networks and the fitted kernel width ``parzen_sigma``, not the
    Parzen centres (10,000 x 784 floats would exceed the study's checkpoint size limit):
    :meth:`log_prob` regenerates them deterministically from ``parzen_seed``, so a
    reloaded model gives the same estimate (up to floating point differences between
    devices). They also hold the training steps taken and :attr:`loss_trace`, the losses of
    every step (see :meth:`get_extra_state`).

    Args:
        data_shape: shape of one image, e.g. ``(1, 28, 28)``; flattened to ``D`` pixels.
        noise_dim: dimension of the noise ``z ~ N(0, I)``.
        g_hidden: hidden units of ``G``, layer by layer.
        d_hidden: hidden units of ``D``, layer by layer.
        betas: Adam's ``betas`` for both players.
        parzen_n_samples: generated samples that centre the Parzen window.
        parzen_seed: seed of the noise behind those samples.
    """

    name = "gan"
    fused_adam_on_cpu = True  # measured faster (see DensityModel)
    likelihood = "estimate"
    width_hparams = ("g_hidden", "d_hidden")
    hparam_checks = {"betas": _check_betas}
    has_latent = True  # the generator's noise; no encoder

    @classmethod
    def conformance_hparams(cls, data_shape) -> dict:
        return {"noise_dim": 3, "g_hidden": [8], "d_hidden": [8], "parzen_n_samples": 50}

    def __init__(
        self,
        data_shape,
        noise_dim: int = 64,
        g_hidden=(256, 256),
        d_hidden=(256, 256),
        betas=(0.5, 0.999),
        parzen_n_samples: int = 10000,
        parzen_seed: int = 0,
    ):
        check_hparams(GAN, data_shape, locals())  # the constructor's arguments
        super().__init__(data_shape, support="continuous")
        self.noise_dim = int(noise_dim)
        self.g_hidden = tuple(int(h) for h in g_hidden)
        self.d_hidden = tuple(int(h) for h in d_hidden)
        self.betas = tuple(float(b) for b in betas)
        self.parzen_n_samples = int(parzen_n_samples)
        self.parzen_seed = int(parzen_seed)

        self.G = _mlp((self.noise_dim, *self.g_hidden, self.n_dims))
        self.D = _mlp((self.n_dims, *self.d_hidden, 1))
        #: Parzen kernel width chosen on validation data; NaN until :meth:`fit_parzen`
        self.register_buffer("parzen_sigma", torch.tensor(float("nan")))
        #: losses of the last training step, and ``(discriminator, generator)`` of every step
        #: of the run since construction
        self.last_losses: dict[str, float] = {}
        self.loss_trace: list[tuple[float, float]] = []
        self._n_updates = 0  # training steps behind the weights (kept in the state dict)
        self._n_loads = 0  # state dicts loaded: new weights, so the cached centres are stale
        self._parzen_cache: tuple[tuple, torch.Tensor] | None = None

    # ------------------------------------------------------------------ networks
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, shape ``(n, noise_dim)``, drawn from ``generator`` on its own device
        (the global generator of the model's device when None) and moved to the model."""
        dev = self.device
        gdev = generator.device if generator is not None else dev
        return torch.randn((n, self.noise_dim), generator=generator, device=gdev).to(dev)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` as images: ``(n, noise_dim)`` -> ``(n, *data_shape)`` in ``(0, 1)``."""
        t = torch.tanh(self.G(z))
        return ((t + 1) / 2).reshape(z.shape[0], *self.data_shape)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``D``: images ``(B, *data_shape)`` in ``[0, 1]`` -> ``(B,)``;
        ``D(x) = sigmoid(logit)`` is the probability that ``x`` is real."""
        return self.D(2 * x.reshape(x.shape[0], -1) - 1).squeeze(1)

    def discriminator_loss(self, x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``-E[log D(x)] - E[log(1 - D(fake))]``: BCE of real images against 1 plus BCE of
        generated images against 0 (each a mean over its batch)."""
        real_logits = self.discriminate(x)
        fake_logits = self.discriminate(fake)
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def generator_loss(self, z: torch.Tensor) -> torch.Tensor:
        """The non-saturating generator loss ``-E[log D(G(z))]`` (BCE of fakes against 1)."""
        logits = self.discriminate(self.generate(z))
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    # ------------------------------------------------------------------ training
    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The discriminator's loss on the real batch ``x`` and a fresh fake batch of the same
        size (noise from ``generator``); see :meth:`discriminator_loss`. A GAN minimises two
        losses, so training goes through :meth:`training_step`, not through this one."""
        x = self.check_input(x)
        return self.discriminator_loss(x, self.generate(self.noise(x.shape[0], generator)))

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> list[torch.optim.Optimizer]:
        """``[Adam over D's parameters, Adam over G's parameters]``, both with ``betas``."""
        return [
            self.adam(self.D.parameters(), lr=lr, betas=self.betas, weight_decay=weight_decay),
            self.adam(self.G.parameters(), lr=lr, betas=self.betas, weight_decay=weight_decay),
        ]

    def training_step(
        self, x: torch.Tensor, optimizers, clip_grad_norm: float | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One step of ``D`` then one step of ``G`` (Algorithm 1 of the paper with ``k = 1``).

        ``D`` is trained on ``x`` against ``G(z)`` with fresh noise; then ``G`` on the
        non-saturating loss with another fresh noise batch, against the updated ``D``. Both
        losses are kept in :attr:`last_losses` and appended to :attr:`loss_trace`.

        Args:
            x: ``(B, *data_shape)`` real images in ``[0, 1]``.
            optimizers: ``[optimizer of D, optimizer of G]`` from :meth:`configure_optimizers`.
            clip_grad_norm: clip each player's gradient norm to this value (none when None).
            generator: source of the noise (the global one when None).
        Returns:
            The generator's loss, a detached 0-dim tensor (the trace of both losses is read
            every step: the one model whose step waits for the device).
        """
        x = self.check_input(x)
        opt_d, opt_g = optimizers
        n = x.shape[0]

        with torch.no_grad():
            fake = self.generate(self.noise(n, generator))
        d_loss = self.discriminator_loss(x, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(self.D.parameters(), clip_grad_norm)
        opt_d.step()

        g_loss = self.generator_loss(self.noise(n, generator))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()  # also fills D's gradients, which the next D step clears
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(self.G.parameters(), clip_grad_norm)
        opt_g.step()

        self._n_updates += 1
        self.last_losses = {"discriminator": float(d_loss.item()), "generator": float(g_loss.item())}
        self.loss_trace.append((self.last_losses["discriminator"], self.last_losses["generator"]))
        return g_loss.detach()

    def _load_from_state_dict(self, *args, **kwargs):
        self._n_loads += 1  # new weights: the cached Parzen centres are stale
        super()._load_from_state_dict(*args, **kwargs)

    def get_extra_state(self) -> torch.Tensor:
        """The training steps taken and the loss trace, as one flat tensor
        ``[n_updates, d_1, g_1, d_2, g_2, ...]``: float32 when that holds every value
        exactly (losses of a float32 model do), float64 otherwise."""
        flat = torch.tensor([float(self._n_updates)] + [v for step in self.loss_trace for v in step],
                            dtype=torch.float64)
        single = flat.float()
        return single if torch.equal(single.double(), flat) else flat

    def set_extra_state(self, state: torch.Tensor) -> None:
        """Restore the steps taken and the loss trace.

        The trace is the history of the run, not a property of the weights: loading a state
        whose trace is the beginning of this model's own (a trainer going back to the weights
        of its best epoch) keeps the longer trace, so the record shows every step.
        """
        values = state.double().cpu().tolist()
        self._n_updates = int(values[0])
        trace = list(zip(values[1::2], values[2::2]))
        if not (len(trace) < len(self.loss_trace) and self.loss_trace[: len(trace)] == trace):
            self.loss_trace = trace
        last = self.loss_trace[-1] if self.loss_trace else None
        self.last_losses = {} if last is None else {"discriminator": last[0], "generator": last[1]}

    # ------------------------------------------------------------------ sampling
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``G(z)`` for ``z ~ N(0, I)`` drawn from ``generator``: ``(n, *data_shape)`` in ``[0, 1]``."""
        return self.generate(self.noise(n, generator))

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The noise ``z ~ N(0, I)``: ``(n, noise_dim)`` (see :meth:`noise`)."""
        return self.noise(check_count(n), generator)

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` as images: ``(n, noise_dim)`` -> ``(n, *data_shape)`` in ``(0, 1)``."""
        return self.generate(z)

    # ------------------------------------------------------------------ Parzen estimate
    def _seeded_samples(self, n: int) -> torch.Tensor:
        """``n`` samples from noise of a CPU generator seeded with ``parzen_seed``, flat ``(n, D)``."""
        g = torch.Generator().manual_seed(self.parzen_seed)
        return self.sample(n, generator=g).reshape(n, -1)

    def parzen_centres(self) -> torch.Tensor:
        """The ``parzen_n_samples`` Parzen centres, flat ``(N, D)`` on the model's device.

        Regenerated from ``parzen_seed`` whenever ``G`` may have changed (a training step,
        a load, any in-place change of its parameters, a move to another device) and
        cached otherwise.
        """
        key = (
            self._n_updates,
            self._n_loads,
            self.device,
            tuple((p.data_ptr(), p._version) for p in self.G.parameters()),
        )
        if self._parzen_cache is None or self._parzen_cache[0] != key:
            self._parzen_cache = None  # free the old centres before making new ones
            self._parzen_cache = (key, self._seeded_samples(self.parzen_n_samples))
        return self._parzen_cache[1]

    @torch.no_grad()
    def fit_parzen(self, valid: torch.Tensor, sigmas=PARZEN_SIGMAS, n_valid: int | None = None) -> dict[float, float]:
        """Choose the Parzen kernel width on validation images and store it in ``parzen_sigma``.

        Args:
            valid: ``(B, *data_shape)`` validation images, prepared as the model's inputs
                (dequantized, in ``[0, 1]``).
            sigmas: candidate widths; Goodfellow et al. search ``logspace(-1, 0, 10)``.
            n_valid: use only the first ``n_valid`` images (all when None).
        Returns:
            ``{sigma: mean validation log-likelihood in nats}`` for every candidate.
        """
        valid = self.check_input(valid)
        if n_valid is not None:
            if int(n_valid) < 1:
                raise ValueError(f"n_valid must be a positive integer, not {n_valid!r}")
            valid = valid[: int(n_valid)]
        best, table = metrics.select_parzen_sigma(valid.to(self.device), self.parzen_centres(), sigmas)
        self.parzen_sigma.fill_(best)
        return table

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Parzen-window log-density of ``x`` under the ``parzen_n_samples`` seeded samples."""
        sigma = float(self.parzen_sigma)
        if math.isnan(sigma):
            raise RuntimeError(
                "the GAN's Parzen kernel width is not fitted: call fit_parzen(valid) on validation "
                "data before log_prob"
            )
        with torch.no_grad():
            lp = metrics.parzen_log_prob(x.to(self.device), self.parzen_centres(), sigma)
        return lp.to(device=x.device, dtype=x.dtype)

    # ------------------------------------------------------------------ hooks of a generic trainer
    @torch.no_grad()
    def validation_criterion(self, valid: torch.Tensor, n_valid: int = 1000, n_samples: int = 2000) -> float:
        """A cheap early-stopping number, lower is better: minus the Parzen log-likelihood of
        the first ``n_valid`` validation images under ``n_samples`` samples (noise seeded with
        ``parzen_seed``, so epochs differ only by ``G``), at the best width of the same grid
        as :meth:`fit_parzen`. Leaves ``parzen_sigma`` untouched.

        A trainer that asks the model for its criterion uses this one.
        """
        valid = self.check_input(valid)
        valid = valid[: int(n_valid)].to(self.device)
        _, table = metrics.select_parzen_sigma(valid, self._seeded_samples(int(n_samples)), PARZEN_SIGMAS)
        return -max(table.values())

    def finalize(self, train: torch.Tensor, valid: torch.Tensor) -> dict:
        """After training: choose the Parzen width on all of ``valid`` (:meth:`fit_parzen`).

        Returns:
            ``parzen_sigma`` (the width chosen), ``parzen_n_samples`` (the centres behind the
            estimate) and ``parzen_valid_ll``: ``{f"{sigma:.6g}": mean validation
            log-likelihood in nats}`` for every width of the grid.
        """
        table = self.fit_parzen(valid)
        return {"parzen_sigma": float(self.parzen_sigma), "parzen_n_samples": self.parzen_n_samples,
                "parzen_valid_ll": {f"{s:.6g}": v for s, v in table.items()}}

    def artifacts(self) -> dict[str, np.ndarray]:
        """``loss_trace``: float64 ``(steps, 2)``, the discriminator's and the generator's loss
        at every training step."""
        return {"loss_trace": np.asarray(self.loss_trace, dtype=np.float64).reshape(-1, 2)}
