"""SB3's action distributions of the NumPy path, one class per family, with the derivatives the update needs.

Each class is built from the action head's output of a batch and holds the gradient of the loss with respect to it
(``grad_out``, and for the Gaussian families ``grad_scale``, the gradient with respect to each sample's standard
deviations), accumulated by the ``*_backward`` methods. The rollout step uses the same classes for its
log-probabilities and standard deviations (and draws the actions itself, with torch's generator).

The derivatives, per sample, with ``z`` the logits, ``p = softmax(z)``, ``mu``/``s`` the Gaussian mean and standard
deviation and ``a`` the action (checked against autograd in ``tests/lean/test_numpy_update.py``):

- categorical: ``d log p_a / dz = onehot(a) - p``; ``dH/dz = -p (log p + H)``; closed-form ``KL[p0 || p]``:
  ``dKL/dz = p - p0``;
- Gaussian, per action dimension: ``d log N / d mu = (a - mu) / s^2``, ``d log N / ds = ((a - mu)^2 / s^2 - 1) / s``;
  ``dH/ds = 1 / s``; ``dKL[N(mu0, s0) || N(mu, s)] / d mu = (mu - mu0) / s^2`` and
  ``/ds = 1/s - (s0^2 + (mu - mu0)^2) / s^3``; then ``s = exp(log_std)`` (:class:`NumpyGaussian`), or gSDE's
  ``s = sqrt(latent^2 @ exp(log_std)^2 + eps)`` with the latent detached, as SB3 detaches it (:class:`NumpyGsde`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sb3_ppo_variants._lean.numpy_net import matmul

#: torch's ``Normal.log_prob`` constant, ``log(sqrt(2 pi))``, and ``Normal.entropy``'s ``0.5 + 0.5 log(2 pi)``
LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
GAUSSIAN_ENTROPY = 0.5 + 0.5 * math.log(2 * math.pi)


class _LazyGradients:
    """``grad_out`` (and ``grad_scale``) made, as zeros, on first use: a rollout step needs none."""

    _out: np.ndarray
    scale: np.ndarray
    #: annotations only (no class value), so that the first read reaches __getattr__
    grad_out: np.ndarray
    grad_scale: np.ndarray

    def __getattr__(self, name: str) -> np.ndarray:
        if name == "grad_out":
            value = np.zeros_like(self._out)
        elif name == "grad_scale":
            value = np.zeros_like(self.scale)
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value


class NumpyCategorical(_LazyGradients):
    """``Categorical(logits=out)``: the normalised logits ``log_p`` (SB3/torch: ``z - logsumexp(z)``) and ``p``."""

    def __init__(self, out: np.ndarray) -> None:
        self._out = out
        shifted = out - out.max(axis=1, keepdims=True)
        self.log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.p = np.exp(self.log_p)

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        """Log-probability of each sample's action (integer indices)."""
        return self.log_p[np.arange(len(actions)), actions]

    def log_prob_backward(self, actions: np.ndarray, grad: np.ndarray) -> None:
        self.grad_out -= grad[:, None] * self.p
        self.grad_out[np.arange(len(actions)), actions] += grad  # one action per row: no repeated index

    def entropy(self) -> np.ndarray:
        return -(self.log_p * self.p).sum(axis=1)

    def entropy_backward(self, entropy: np.ndarray, grad: np.ndarray) -> None:
        self.grad_out -= grad[:, None] * self.p * (self.log_p + entropy[:, None])

    def closed_form_kl(self, old_params: np.ndarray) -> np.ndarray:
        """KL[old || this] per sample, ``old_params`` the old logits (the layout of
        :func:`sb3_ppo_variants.kl_penalty_ppo.kl.dist_params`)."""
        shifted = old_params - old_params.max(axis=1, keepdims=True)
        self.old_log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.old_p = np.exp(self.old_log_p)
        return (self.old_p * (self.old_log_p - self.log_p)).sum(axis=1)

    def closed_form_kl_backward(self, grad: np.ndarray) -> None:
        """After :meth:`closed_form_kl`: the gradient of ``sum(grad * KL)``."""
        self.grad_out += grad[:, None] * (self.p - self.old_p)

    def log_std_grad(self) -> None:
        """No ``log_std`` parameter."""
        return None


class NumpyGaussian(_LazyGradients):
    """SB3's ``DiagGaussianDistribution``: ``Normal(mean, ones_like(mean) * exp(log_std))``."""

    def __init__(self, mean: np.ndarray, log_std: np.ndarray) -> None:
        self._out = self.mean = mean
        self.std = np.exp(log_std)
        self.scale = self._scale()

    def _scale(self) -> np.ndarray:
        return np.ones_like(self.mean) * self.std

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        """torch's ``Normal.log_prob``, summed over the action dimensions (``actions``: ``(batch, dims)``)."""
        var = self.scale * self.scale
        return (-((actions - self.mean) ** 2) / (2 * var) - np.log(self.scale) - LOG_SQRT_2PI).sum(axis=1)

    def log_prob_backward(self, actions: np.ndarray, grad: np.ndarray) -> None:
        diff = actions - self.mean
        var = self.scale * self.scale
        self.grad_out += grad[:, None] * diff / var
        self.grad_scale += grad[:, None] * (diff * diff / var - 1) / self.scale

    def entropy(self) -> np.ndarray:
        return (GAUSSIAN_ENTROPY + np.log(self.scale)).sum(axis=1)

    def entropy_backward(self, entropy: np.ndarray, grad: np.ndarray) -> None:
        self.grad_scale += grad[:, None] / self.scale

    def closed_form_kl(self, old_params: np.ndarray) -> np.ndarray:
        """KL[old || this] per sample, ``old_params`` the old means then standard deviations."""
        old_mean, old_std = np.split(old_params, 2, axis=1)
        self.old_mean, self.old_std = old_mean, old_std
        var_ratio = (old_std / self.scale) ** 2
        kl = 0.5 * (var_ratio + ((old_mean - self.mean) / self.scale) ** 2 - 1.0 - np.log(var_ratio))
        return kl.sum(axis=1)

    def closed_form_kl_backward(self, grad: np.ndarray) -> None:
        """After :meth:`closed_form_kl`: the gradient of ``sum(grad * KL)``."""
        diff = self.mean - self.old_mean
        var = self.scale * self.scale
        self.grad_out += grad[:, None] * diff / var
        self.grad_scale += grad[:, None] * (1 / self.scale - (self.old_std**2 + diff * diff) / (var * self.scale))

    def log_std_grad(self) -> np.ndarray:
        """The gradient with respect to the policy's ``log_std`` parameter, from ``grad_scale``."""
        return (self.grad_scale * self.scale).sum(axis=0)


class NumpyGsde(NumpyGaussian):
    """SB3's ``StateDependentNoiseDistribution`` as PPO uses it (``exp(log_std)``, no squashing, the latent detached):
    the standard deviation of action ``j`` is ``sqrt(sum_i latent_i^2 sigma_ij^2 + eps)``.

    :param dist: SB3's distribution object (``full_std``, ``action_dim``, ``epsilon``)
    """

    def __init__(self, mean: np.ndarray, log_std: np.ndarray, latent: np.ndarray, dist: Any) -> None:
        self.latent_sq = latent * latent
        self._dist = dist
        super().__init__(mean, log_std)

    def _scale(self) -> np.ndarray:
        std = self.std
        if not self._dist.full_std:
            std = np.ones((len(std), int(self._dist.action_dim)), dtype=np.float32) * std
        self.full_std_matrix = std
        return np.sqrt(matmul(self.latent_sq, std * std) + np.float32(self._dist.epsilon))

    def log_std_grad(self) -> np.ndarray:
        # scale = sqrt(latent^2 @ std^2 + eps), std = exp(log_std) (broadcast over actions unless full_std)
        grad_var = self.grad_scale / (2 * self.scale)
        grad_log_std = matmul(self.latent_sq.T, grad_var) * 2 * self.full_std_matrix**2
        if grad_log_std.shape != self.std.shape:
            grad_log_std = grad_log_std.sum(axis=1, keepdims=True)
        return grad_log_std


#: any of the three
NumpyDistribution = NumpyCategorical | NumpyGaussian
