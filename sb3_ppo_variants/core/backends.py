"""How the loop talks to the policy and the optimizer: SB3's public calls (this file), or a faster twin of them.

The core's rollout loop calls a :class:`PolicyCalls` (``act``, ``evaluate``, ``set_training_mode``, ``values``) and
its update loop an update backend (``loss(batch)``, ``backward()``, ``step()``, :class:`TorchUpdate`). The classes
here call exactly what SB3's ``PPO``/``A2C`` call:

- in rollouts: ``policy(obs)`` (``forward``: actions, values, log-probabilities, as SB3's ``collect_rollouts``), and
  ``policy.get_distribution(obs)`` only when the algorithm needs the distribution object (KLPenaltyPPO's closed form);
- in training: ``policy.evaluate_actions(obs, actions)`` (as SB3's ``PPO.train``), the loss in torch,
  ``loss.backward()``, ``clip_grad_norm_(policy.parameters(), max_grad_norm)`` and ``optimizer.step()``;
- everywhere: ``policy.predict_values`` for bootstrapping and ``policy.set_training_mode``.

Which backend runs is decided once per rollout and once per update by the fast wing's gate
(:mod:`sb3_ppo_variants._lean`), which hands back these classes, or the lean ones that stand in for them, with the
reason of its choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.type_aliases import PyTorchObs


class PolicyOutputs:
    """What one call into the policy gave: values (None when the critic is not used), log-probabilities, entropy,
    sampled actions (rollouts), and the action distribution, computed on first use where the public path needs an
    extra ``get_distribution`` call for it."""

    def __init__(
        self,
        values: th.Tensor | None,
        log_prob: th.Tensor,
        distribution: Distribution | Callable[[], Distribution],
        actions: th.Tensor | None = None,
        entropy: th.Tensor | None = None,
        flat_params: Callable[[], th.Tensor] | None = None,
        states: Any = None,
    ) -> None:
        self.values = values
        self.log_prob = log_prob
        self.actions = actions
        self.entropy = entropy
        self._distribution = distribution
        #: the distribution's parameters flat per sample where a fast path has them at hand (None: read the
        #: distribution; the layout of :func:`sb3_ppo_variants.kl_penalty_ppo.kl.dist_params`)
        self.flat_params = flat_params
        #: the recurrent policies' hidden states after this call (sb3-contrib's ``RNNStates``; None without memory)
        self.states = states

    @property
    def distribution(self) -> Distribution:
        """The policy's action distribution on the same observations (built on first access on the public path)."""
        if callable(self._distribution) and not isinstance(self._distribution, Distribution):
            self._distribution = self._distribution()
        return self._distribution


class PolicyCalls:
    """SB3's public policy calls, for one rollout or one update.

    :param policy: the algorithm's policy
    """

    #: the name logged as ``rollout/backend`` / ``train/backend``
    name = "sb3"
    #: whether the rollouts may run under ``torch.inference_mode`` (only where nothing of the user's runs inside)
    inference_mode = False

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def set_training_mode(self, mode: bool) -> None:
        """``policy.set_training_mode(mode)``."""
        self.policy.set_training_mode(mode)

    def act(self, obs: PyTorchObs, with_values: bool, **policy_kwargs: Any) -> PolicyOutputs:
        """One rollout step: ``policy(obs, **policy_kwargs)`` (call it under ``th.no_grad()``); the distribution on
        first use by ``policy.get_distribution``. ``policy_kwargs``: e.g. sb3-contrib's ``action_masks=``."""
        actions, values, log_prob = self.policy(obs, **policy_kwargs)
        policy = self.policy
        return PolicyOutputs(
            values if with_values else None, log_prob, lambda: policy.get_distribution(obs, **policy_kwargs), actions=actions
        )

    def evaluate(
        self, obs: PyTorchObs, actions: th.Tensor, with_values: bool, entropy_grad: bool, **policy_kwargs: Any
    ) -> PolicyOutputs:
        """``policy.evaluate_actions(obs, actions, **policy_kwargs)``, as SB3's ``PPO.train`` (sb3-contrib's
        ``MaskablePPO.train`` passes ``action_masks=``). ``entropy_grad`` is a hint a lean twin may use."""
        values, log_prob, entropy = self.policy.evaluate_actions(obs, actions, **policy_kwargs)
        policy = self.policy
        return PolicyOutputs(
            values if with_values else None, log_prob, lambda: policy.get_distribution(obs, **policy_kwargs), entropy=entropy
        )

    def terminal_values(self, observations: list[Any]) -> th.Tensor:
        """The values of single-env terminal observations, ``(n,)``: one ``predict_values`` call each, as SB3."""
        values = []
        for observation in observations:
            obs_tensor = self.policy.obs_to_tensor(observation)[0]
            with th.no_grad():
                values.append(self.policy.predict_values(obs_tensor)[0])
        return th.cat(values)


class OptimizerStep:
    """SB3's ``optimizer.zero_grad()``, ``clip_grad_norm_(policy.parameters(), max_grad_norm)``, ``optimizer.step()``
    (the fast wing's direct fused-Adam step, :class:`~sb3_ppo_variants._lean.adam.ClippedAdamStep`, falls back to
    these calls)."""

    def __init__(self, policy: Any, optimizer: th.optim.Optimizer) -> None:
        self.policy = policy
        self.optimizer = optimizer

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def __call__(self, max_grad_norm: float, flat_grads: np.ndarray | None = None) -> th.Tensor:
        """Clip and step; the total gradient norm before clipping (a 0-dim tensor)."""
        norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), max_grad_norm)
        self.optimizer.step()
        return norm


class TorchUpdate:
    """The update backend in torch: the algorithm's loss, autograd's backward, the optimizer step.

    :param minibatch_loss: the algorithm's ``_minibatch_loss(batch, calls, clip_range_vf, stats)``
    :param calls: the policy calls the loss makes (SB3's public ones, or the lean twins)
    :param optimizer_step: ``zero_grad()`` and ``(max_grad_norm) -> norm`` (:class:`OptimizerStep`, or its twin)
    :param max_grad_norm: the clipping norm
    """

    def __init__(
        self,
        minibatch_loss: Callable[..., tuple[th.Tensor, th.Tensor]],
        calls: PolicyCalls,
        optimizer_step: Any,
        max_grad_norm: float,
    ) -> None:
        self.minibatch_loss = minibatch_loss
        self.calls = calls
        self.optimizer_step = optimizer_step
        self.max_grad_norm = max_grad_norm
        self.name = "torch" if calls.name == "sb3" else f"torch-{calls.name}"
        self._loss: th.Tensor | None = None

    def loss(self, batch: Any, clip_range_vf: float | None, stats: dict[str, list[Any]]) -> tuple[th.Tensor, th.Tensor]:
        """The minibatch's loss (kept for :meth:`backward`) and its approximate KL."""
        self._loss, approx_kl = self.minibatch_loss(batch, self.calls, clip_range_vf, stats)
        return self._loss, approx_kl

    def backward(self) -> None:
        assert self._loss is not None, "loss() first"
        self.optimizer_step.zero_grad()
        self._loss.backward()

    def step(self) -> th.Tensor:
        return self.optimizer_step(self.max_grad_norm)
