"""The update of SB3's MLP policy in NumPy: forward, the registered loss twins, backward, gradients into ``.grad``.

A PPO minibatch of SB3's defaults is 64 samples through two 64x64 MLPs: torch spends most of such a step in
dispatch (about fifty forward and backward kernels and the autograd engine) for microseconds of arithmetic each.
:class:`NumpyPolicyGradient` computes what the lean torch path computes for one minibatch of an exact SB3
``MlpPolicy`` (:mod:`~sb3_ppo_variants._lean.numpy_net`, :mod:`~sb3_ppo_variants._lean.numpy_dists`), with every
intermediate on a tape, and then the backward pass by hand, from the gradients of the loss with respect to the
per-sample values and distribution parameters down to every parameter, written into the parameters' ``.grad``
(buffers kept for the update, so the optimizer step and the gradient clipping run unchanged, and after the update
``.grad`` holds the last minibatch's clipped gradients, as with SB3).

The loss is not written here: :class:`NumpyUpdate` calls the NumPy twins registered in
:mod:`sb3_ppo_variants._lean.twins` for the core's minibatch loss and the algorithm's policy loss. The gate
(:mod:`sb3_ppo_variants._lean.gate`) builds a :class:`NumpyUpdate` only where every torch method a twin stands in for
is exactly the registered one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution, StateDependentNoiseDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ppo_variants._lean.numpy_dists import NumpyCategorical, NumpyDistribution, NumpyGaussian, NumpyGsde
from sb3_ppo_variants._lean.numpy_net import Gradients, NumpyPolicyNet, policy_net


class NumpyBatch:
    """A minibatch of the rollout buffer as NumPy arrays: ``batch.<field>`` of the torch minibatch (CPU tensors),
    read without a copy on first access (``observations``, ``actions``, ``old_log_prob``, ``advantages``, ...)."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def __getattr__(self, name: str) -> np.ndarray:
        array = getattr(self._batch, name).detach().numpy()
        setattr(self, name, array)
        return array


class NumpyPolicyGradient:
    """Forward and backward of an exact SB3 ``MlpPolicy`` on one minibatch, in NumPy (the module docstring); build with
    :func:`numpy_policy_gradient`, and call :meth:`start_update` at the start of every update.

    Use: :meth:`forward` (values, the distribution), the loss and its per-sample gradients, then :meth:`backward`.
    """

    def __init__(self, policy: ActorCriticPolicy, net: NumpyPolicyNet) -> None:
        self.policy = policy
        self.net = net
        self.kind = {DiagGaussianDistribution: "gaussian", StateDependentNoiseDistribution: "gsde"}.get(
            type(policy.action_dist), "categorical"
        )
        self.gradients = Gradients(list(policy.parameters()))
        self._tapes: dict[str, list[np.ndarray]] = {}
        self._dist: NumpyDistribution | None = None
        #: the loss's gradient with respect to each sample's value (None where the values are not in the loss), set
        #: with the loss and read by :meth:`backward`
        self.grad_values: np.ndarray | None = None

    def start_update(self) -> None:
        """New gradient buffers for an update: the ``.grad`` tensors of one update are not overwritten by the next
        (a callback may keep them, as it may keep autograd's)."""
        self.gradients = Gradients(self.gradients.parameters)

    def forward(self, obs: np.ndarray, with_values: bool) -> tuple[np.ndarray | None, NumpyDistribution]:
        """Values (``(batch,)``; None without ``with_values``) and the action distribution of the observations."""
        x = obs.astype(np.float32, copy=False).reshape(obs.shape[0], -1)
        net = self.net
        tapes: dict[str, list[np.ndarray]] = {"actor": [], "action_head": [], "critic": [], "value_head": []}
        self._tapes = tapes
        values = None
        self.grad_values = None
        if with_values:
            values = net.value_head.forward(net.critic.forward(x, tapes["critic"]), tapes["value_head"])[:, 0]
        latent = net.actor.forward(x, tapes["actor"])
        out = net.action_head.forward(latent, tapes["action_head"])
        dist: NumpyDistribution
        if self.kind == "categorical":
            dist = NumpyCategorical(out)
        elif self.kind == "gaussian":
            dist = NumpyGaussian(out, self.policy.log_std.detach().numpy())
        else:
            dist = NumpyGsde(out, self.policy.log_std.detach().numpy(), latent, self.policy.action_dist)
        self._dist = dist
        return values, dist

    def backward(self) -> None:
        """Write the parameter gradients of the last :meth:`forward`'s loss: the distribution's accumulated gradients
        and :attr:`grad_values`, then point ``.grad`` at them."""
        net, tapes, gradients, dist = self.net, self._tapes, self.gradients, self._dist
        assert dist is not None, "forward() first"
        log_std_grad = dist.log_std_grad()
        if log_std_grad is not None:
            gradients[self.policy.log_std][...] = log_std_grad
        latent_grad = net.action_head.backward(tapes["action_head"], dist.grad_out, gradients, input_grad=True)
        net.actor.backward(tapes["actor"], latent_grad, gradients)
        if self.grad_values is not None:
            latent_grad = net.value_head.backward(tapes["value_head"], self.grad_values[:, None], gradients, input_grad=True)
            net.critic.backward(tapes["critic"], latent_grad, gradients)
        gradients.publish()


def numpy_policy_gradient(policy: ActorCriticPolicy) -> NumpyPolicyGradient | None:
    """A :class:`NumpyPolicyGradient` for ``policy``, or None where one of its layers is not an exact supported class.

    The gate checks first that the lean path applies (exact SB3 policy, no hooks, no gradient hook).
    """
    net = policy_net(policy, contiguous=True)
    return None if net is None else NumpyPolicyGradient(policy, net)


class NumpyUpdate:
    """The update backend of the NumPy path: :meth:`loss`, :meth:`backward`, :meth:`step`, as the core's torch
    backend (:class:`sb3_ppo_variants.core.backends.TorchUpdate`) offers them.

    :param gradient: the policy's :class:`NumpyPolicyGradient`
    :param minibatch_loss: the registered twin of the core's minibatch loss, ``(batch, gradient, clip_range_vf, stats)
        -> (loss, approx_kl)``, with the algorithm's policy-loss twin bound in
    :param optimizer_step: clips and steps (:class:`~sb3_ppo_variants._lean.adam.ClippedAdamStep`)
    :param max_grad_norm: the clipping norm
    :param calls: the policy calls of the rest of the update (the training mode)
    """

    name = "numpy"

    def __init__(
        self,
        gradient: NumpyPolicyGradient,
        minibatch_loss: Callable[..., tuple[th.Tensor, th.Tensor]],
        optimizer_step: Any,
        max_grad_norm: float,
        calls: Any,
    ) -> None:
        self.calls = calls
        self.gradient = gradient
        self.minibatch_loss = minibatch_loss
        self.optimizer_step = optimizer_step
        self.max_grad_norm = max_grad_norm
        gradient.start_update()

    def loss(self, batch: Any, clip_range_vf: float | None, stats: dict[str, list[Any]]) -> tuple[th.Tensor, th.Tensor]:
        """The minibatch's loss and approximate KL (the per-sample gradients kept for :meth:`backward`)."""
        return self.minibatch_loss(NumpyBatch(batch), self.gradient, clip_range_vf, stats)

    def backward(self) -> None:
        """The gradients of the last :meth:`loss`, written into the parameters' ``.grad``."""
        self.gradient.backward()

    def step(self) -> th.Tensor:
        """Clip the gradients (two NumPy calls on the flat array) and step the optimizer; the norm before clipping."""
        return self.optimizer_step(self.max_grad_norm, self.gradient.gradients.flat)
