"""Leaner versions of three hot spots of an on-policy update, computing what SB3 computes.

A PPO update on a small MLP is dominated by per-call overhead, not arithmetic: every ``torch.distributions``
object re-derives its batch shape and normalises its parameters through generic code, and every Adam step and
gradient clip regroups the parameter list by device and dtype in Python. The functions here do the same maths with
fewer calls, and fall back to SB3's and torch's own code for everything they do not cover:

- :func:`action_distribution`: SB3's ``policy._get_action_dist_from_latent`` for the exact classes
  :class:`~stable_baselines3.common.distributions.CategoricalDistribution`,
  :class:`~stable_baselines3.common.distributions.DiagGaussianDistribution` and
  :class:`~stable_baselines3.common.distributions.StateDependentNoiseDistribution` (gSDE), whose ``distribution``
  attribute becomes a :class:`LeanCategorical` / :class:`LeanNormal`. These are subclasses of torch's ``Categorical`` /
  ``Normal`` with the same parameters and the same arithmetic for the normalised logits, the probabilities, the
  samples, ``log_prob`` and ``entropy`` (so the random draws and the sampled actions are those of SB3), built
  without torch's generic constructor. Any other distribution, or a policy class that overrides
  ``_get_action_dist_from_latent``, goes through SB3's method.
- :func:`set_training_mode`: SB3's ``policy.set_training_mode``, skipped when nothing would change.
- :class:`ClippedAdamStep`: gradient-norm clipping (``clip_grad_norm_(..., foreach=True)``'s arithmetic) followed by
  the fused Adam kernel, called directly with the optimizer's own state tensors, for ``torch.optim.Adam(fused=True)``
  with one parameter group (what our algorithms create by default on the CPU and CUDA). The optimizer's state dict
  is the one ``Adam.step`` keeps (``step``, ``exp_avg``, ``exp_avg_sq``), so saving, loading and falling back to
  ``optimizer.step()`` are unaffected. Any other optimizer or setting uses ``clip_grad_norm_`` and ``step()``.
"""

from __future__ import annotations

import math
from typing import Any

import torch as th
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from torch.distributions import Categorical, Normal
from torch.optim import optimizer as torch_optimizer

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class LeanCategorical(Categorical):
    """``Categorical(logits=...)`` for a ``(batch, n)`` logits tensor, built without torch's generic constructor.

    Same normalisation (``logits - logsumexp``), same ``probs`` (softmax, computed on first use), same sampling;
    ``log_prob`` gathers the stored actions' log-probabilities directly and ``entropy`` is torch's formula.
    """

    def __init__(self, logits: th.Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._param = self.logits
        self._num_events = logits.shape[-1]
        self._batch_shape = logits.shape[:-1]
        self._event_shape = th.Size()

    def log_prob(self, value: th.Tensor) -> th.Tensor:
        """Log-probability of the actions ``value`` (shape ``(batch,)``)."""
        if value.shape != self._batch_shape:
            return super().log_prob(value)
        return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> th.Tensor:
        """Entropy per sample (torch's formula: ``-sum(p * clamp(log p))``)."""
        logits = th.clamp(self.logits, min=th.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)


class LeanNormal(Normal):
    """``Normal(loc, scale)`` for two tensors of the same shape, built without torch's generic constructor
    (argument broadcasting and batch-shape bookkeeping); torch's own ``log_prob``, ``entropy`` and sampling."""

    def __init__(self, loc: th.Tensor, scale: th.Tensor) -> None:
        self.loc = loc
        self.scale = scale
        self._batch_shape = loc.shape
        self._event_shape = th.Size()


def action_distribution(policy: ActorCriticPolicy, latent_pi: th.Tensor) -> Distribution:
    """SB3's ``policy._get_action_dist_from_latent(latent_pi)``, with the lean torch distributions where they apply."""
    dist = policy.action_dist
    if type(policy)._get_action_dist_from_latent is ActorCriticPolicy._get_action_dist_from_latent:
        dist_type = type(dist)
        if dist_type is CategoricalDistribution:
            dist.distribution = LeanCategorical(policy.action_net(latent_pi))  # type: ignore[attr-defined]
            return dist
        if dist_type is DiagGaussianDistribution:
            mean = policy.action_net(latent_pi)
            # SB3: Normal(mean, ones_like(mean) * exp(log_std))
            dist.distribution = LeanNormal(mean, th.ones_like(mean) * policy.log_std.exp())  # type: ignore[attr-defined]
            return dist
        if dist_type is StateDependentNoiseDistribution:
            assert isinstance(dist, StateDependentNoiseDistribution)
            mean = policy.action_net(latent_pi)
            # SB3's proba_distribution: std of a_j = sqrt(sum_i latent_i^2 * sigma_ij^2 + eps)
            dist._latent_sde = latent_pi if dist.learn_features else latent_pi.detach()
            variance = th.mm(dist._latent_sde**2, dist.get_std(policy.log_std) ** 2)
            dist.distribution = LeanNormal(mean, th.sqrt(variance + dist.epsilon))
            return dist
    return policy._get_action_dist_from_latent(latent_pi)


def set_training_mode(policy: BasePolicy, mode: bool) -> None:
    """``policy.set_training_mode(mode)``, skipped when every module already is in that mode.

    ``nn.Module.train()`` walks the module tree through ``__setattr__`` (about 0.4 ms for SB3's MLP policy): called at
    every rollout and every update, that is a few percent of a short-rollout algorithm's time.
    """
    if any(module.training != mode for module in policy.modules()):
        policy.set_training_mode(mode)


class ClippedAdamStep:
    """Clip the gradients' global norm to ``max_grad_norm``, then take one Adam step; returns the norm before clipping.

    Uses the direct path described in the module docstring when :meth:`supports` the optimizer, else
    ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)`` and ``optimizer.step()``.
    """

    def __init__(self, optimizer: th.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.parameters: list[th.Tensor] = [p for group in optimizer.param_groups for p in group["params"]]
        self.direct = self.supports(optimizer)

    @staticmethod
    def supports(optimizer: th.optim.Optimizer) -> bool:
        """Whether the direct path applies: plain fused Adam, one group, no step hooks, float32 parameters on one device."""
        if type(optimizer) is not th.optim.Adam or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if not group.get("fused") or group.get("amsgrad") or group.get("maximize") or group.get("capturable"):
            return False
        if group.get("differentiable") or group.get("decoupled_weight_decay"):
            return False
        # step hooks, the optimizer's own or registered for all optimizers, run only through Optimizer.step
        if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
            return False
        if torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks:
            return False
        params = group["params"]
        return bool(params) and all(p.dtype == th.float32 and p.device == params[0].device for p in params)

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``, without its profiling hooks."""
        for parameter in self.parameters:
            parameter.grad = None

    def __call__(self, max_grad_norm: float) -> th.Tensor:
        """Clip and step; returns the total gradient norm before clipping (a 0-dim tensor, no host sync)."""
        if not self.direct:
            norm = th.nn.utils.clip_grad_norm_(self.parameters, max_grad_norm, foreach=True)
            self.optimizer.step()
            return norm
        group = self.optimizer.param_groups[0]
        state = self.optimizer.state
        params: list[th.Tensor] = []
        grads: list[th.Tensor] = []
        exp_avgs: list[th.Tensor] = []
        exp_avg_sqs: list[th.Tensor] = []
        steps: list[th.Tensor] = []
        for param in self.parameters:
            grad = param.grad
            if grad is None:
                continue
            param_state: dict[str, Any] = state[param]
            if not param_state:  # Adam's own lazy initialisation (fused: a float32 step on the parameter's device)
                param_state["step"] = th.zeros((), dtype=th.float32, device=param.device)
                param_state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
                param_state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
            params.append(param)
            grads.append(grad)
            exp_avgs.append(param_state["exp_avg"])
            exp_avg_sqs.append(param_state["exp_avg_sq"])
            steps.append(param_state["step"])
        if not params:
            return th.zeros(())
        beta1, beta2 = group["betas"]
        with th.no_grad():
            # clip_grad_norm_(foreach=True): total = ||(||g_i||)_i||, g_i *= min(1, max_norm / (total + 1e-6))
            total_norm = th.linalg.vector_norm(th.stack(th._foreach_norm(grads, 2.0)), 2.0)
            th._foreach_mul_(grads, th.clamp(max_grad_norm / (total_norm + 1e-6), max=1.0))
            # Adam.step(fused=True) on the same state
            th._foreach_add_(steps, 1)
            th._fused_adam_(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
        return total_norm
