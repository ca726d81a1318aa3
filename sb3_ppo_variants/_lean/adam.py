"""The optimizer: Adam's fused implementation by default, and one direct call for gradient clipping + the Adam step.

- :func:`with_fast_optimizer`: the ``policy_kwargs`` the policy is built with, selecting the fused Adam kernel unless
  the user chose an implementation. Only the policy sees them: ``model.policy_kwargs`` (what ``save`` stores) stays
  what the user passed.
- :class:`ClippedAdamStep`: SB3's ``optimizer.zero_grad()``, ``clip_grad_norm_(policy.parameters(), max_grad_norm)``
  and ``optimizer.step()``. Every Adam step and gradient clip regroups the parameter list by device and dtype in
  Python; where the optimizer is exactly ``torch.optim.Adam(fused=True)`` over exactly the policy's parameters, in
  one group, with no step hooks (its own or global), the direct path clips (``clip_grad_norm_``'s foreach arithmetic)
  and calls the fused Adam kernel with the optimizer's own state tensors (bit-identical, same state dict, so saving,
  loading and falling back to ``optimizer.step()`` are unaffected). Otherwise SB3's three calls run.

Both use private torch internals (``torch._fused_adam_``, ``torch._foreach_*``, the optimizer hook registries), read
through :func:`sb3_ppo_variants.core.internals.private`: where one is missing, the fused kernel is not requested
and the direct path is off (see :mod:`sb3_ppo_variants._lean.structure` for the rule every fast path follows).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from torch import nn
from torch.optim import optimizer as torch_optimizer

from sb3_ppo_variants.core import internals
from sb3_ppo_variants.core.backends import OptimizerStep

#: The private torch functions of the direct step
DIRECT_STEP_KERNELS = ("_foreach_norm", "_foreach_mul_", "_foreach_add_", "_fused_adam_")


def with_fast_optimizer(policy_kwargs: dict[str, Any], device: th.device) -> dict[str, Any]:
    """``policy_kwargs`` selecting Adam's fused implementation (CPU, CUDA; ``foreach`` elsewhere), unless the user chose.

    SB3 leaves PyTorch's default, which on the CPU is the per-parameter loop: a dozen small kernels per parameter per
    step. The fused kernel computes the same update in one pass; results differ from SB3's only by float rounding
    (about 3e-8 on the parameters after three PPO updates). It is called only with ``numerics="fast"`` (the default);
    ``numerics="sb3"`` leaves SB3's optimizer as it is. When the user passes no ``optimizer_kwargs``, SB3's
    default ``eps=1e-5`` for Adam is kept. Where this torch build cannot run the fused kernel on ``device``
    (:func:`fused_adam_available`), PyTorch's default is left, as SB3 does.
    """
    optimizer_class = policy_kwargs.get("optimizer_class", th.optim.Adam)
    if optimizer_class not in (th.optim.Adam, th.optim.AdamW):
        return policy_kwargs
    optimizer_kwargs = policy_kwargs.get("optimizer_kwargs")
    if optimizer_kwargs is None:
        optimizer_kwargs = {"eps": 1e-5} if optimizer_class is th.optim.Adam else {}
    if "foreach" in optimizer_kwargs or "fused" in optimizer_kwargs:
        return policy_kwargs
    device_type = th.device(device).type
    implementation = "fused" if device_type in ("cpu", "cuda") else "foreach"
    if implementation == "fused" and not fused_adam_available(device_type):
        return policy_kwargs
    return {**policy_kwargs, "optimizer_kwargs": {**optimizer_kwargs, implementation: True}}


@functools.cache
def fused_adam_available(device_type: str) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` runs on ``device_type`` and its kernel can be called directly."""
    if internals.private(th, "_fused_adam_") is None:
        return False
    try:
        parameter = th.zeros(2, device=device_type, requires_grad=True)
        parameter.grad = th.ones(2, device=device_type)
        th.optim.Adam([parameter], fused=True).step()
    except Exception:  # no fused kernel for this device or build
        return False
    return True


class ClippedAdamStep(OptimizerStep):
    """The twin of the core's :class:`~sb3_ppo_variants.core.backends.OptimizerStep` (SB3's ``zero_grad``,
    ``clip_grad_norm_`` and ``step``), whose calls it makes where the direct path does not apply.

    :meth:`__call__` clips and steps and returns the gradients' total norm before clipping. The direct path of the
    module docstring runs where :meth:`supports` the optimizer, decided once, here (our algorithms build one
    ``ClippedAdamStep`` per update, so a hook registered between updates is honoured from the next one on).

    :param policy: the module whose parameters SB3 clips
    :param optimizer: the policy's optimizer
    """

    def __init__(
        self, policy: nn.Module, optimizer: th.optim.Optimizer, policy_parameters: Sequence[th.Tensor] | None = None
    ) -> None:
        super().__init__(policy, optimizer)
        self.parameters: list[th.Tensor] = [p for group in optimizer.param_groups for p in group["params"]]
        self.direct = self.supports(optimizer, policy, policy_parameters)
        self._cached_lists: tuple[list[th.Tensor | None], tuple[list[th.Tensor], ...]] | None = None

    @staticmethod
    def supports(
        optimizer: th.optim.Optimizer, policy: nn.Module, policy_parameters: Sequence[th.Tensor] | None = None
    ) -> bool:
        """Whether the direct path applies: exactly fused Adam over exactly ``policy``'s parameters, in one group, with
        no step hooks, float32 parameters on one device, and the private kernels present (``policy_parameters``:
        ``list(policy.parameters())`` if already read)."""
        if type(optimizer) is not th.optim.Adam or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if not group.get("fused") or group.get("amsgrad") or group.get("maximize") or group.get("capturable"):
            return False
        if group.get("differentiable") or group.get("decoupled_weight_decay"):
            return False
        if any(internals.private(th, name) is None for name in DIRECT_STEP_KERNELS):
            return False
        # step hooks, the optimizer's own or registered for all optimizers, run only through Optimizer.step;
        # a registry that cannot be read counts as holding a hook
        registries = (
            internals.private(optimizer, "_optimizer_step_pre_hooks"),
            internals.private(optimizer, "_optimizer_step_post_hooks"),
            internals.private(torch_optimizer, "_global_optimizer_pre_hooks"),
            internals.private(torch_optimizer, "_global_optimizer_post_hooks"),
        )
        if any(registry is None or len(registry) > 0 for registry in registries):
            return False
        params = group["params"]
        if policy_parameters is None:
            policy_parameters = list(policy.parameters())
        if len(params) != len(policy_parameters) or any(a is not b for a, b in zip(params, policy_parameters, strict=True)):
            return False
        return bool(params) and all(p.dtype == th.float32 and p.device == params[0].device for p in params)

    def _adam_lists(self) -> tuple[list[th.Tensor], ...]:
        """The parameters with a gradient, their gradients and Adam states (initialised here as Adam does lazily).

        Kept while every parameter's ``.grad`` is the same tensor as at the last call (the NumPy update reuses its
        gradient tensors for a whole update; autograd makes new ones at every backward)."""
        grads_now = [param.grad for param in self.parameters]
        cached = self._cached_lists
        if cached is not None and all(a is b for a, b in zip(grads_now, cached[0], strict=True)):
            return cached[1]
        state = self.optimizer.state
        lists: tuple[list[th.Tensor], ...] = ([], [], [], [], [])
        params, grads, exp_avgs, exp_avg_sqs, steps = lists
        for param, grad in zip(self.parameters, grads_now, strict=True):
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
        self._cached_lists = (grads_now, lists)
        return lists

    def zero_grad(self) -> None:
        """``optimizer.zero_grad()`` (direct path: its effect, ``set_to_none=True``, without its profiling hooks)."""
        if not self.direct:
            super().zero_grad()
            return
        for parameter in self.parameters:
            parameter.grad = None

    def __call__(self, max_grad_norm: float, flat_grads: np.ndarray | None = None) -> th.Tensor:
        """Clip and step; returns the total gradient norm before clipping (a 0-dim tensor, no host sync).

        ``flat_grads``: one float32 array whose views are all the parameters' gradients (the NumPy update's): the
        direct path then clips them with two NumPy calls (the same norm and scaling, a dozen torch calls fewer; float
        rounding may differ)."""
        if not self.direct:
            return super().__call__(max_grad_norm)
        group = self.optimizer.param_groups[0]
        params, grads, exp_avgs, exp_avg_sqs, steps = self._adam_lists()
        if not params:
            return th.zeros(())
        beta1, beta2 = group["betas"]
        with th.no_grad():
            if flat_grads is not None:
                total_norm = _clip_flat(flat_grads, max_grad_norm)
            else:
                # clip_grad_norm_(foreach=True): total = ||(||g_i||)_i||, g_i *= min(1, max_norm / (total + 1e-6))
                total_norm = th.linalg.vector_norm(th.stack(th._foreach_norm(grads, 2.0)), 2.0)  # type: ignore[attr-defined]
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


def _clip_flat(flat_grads: np.ndarray, max_grad_norm: float) -> th.Tensor:
    """``clip_grad_norm_`` on gradients that are all views of ``flat_grads``: the total norm ``||(||g_i||)_i||``
    (the norm of the flat array) and, where it exceeds ``max_grad_norm``, every gradient scaled by
    ``max_grad_norm / (total + 1e-6)``. A NaN norm leaves the gradients as they are (torch scales them to NaN); either
    way the norm returned is NaN, which the algorithm's check after the update reports."""
    total = math.sqrt(float(np.dot(flat_grads, flat_grads)))
    coefficient = max_grad_norm / (total + 1e-6)
    if coefficient < 1.0:
        flat_grads *= np.float32(coefficient)
    return th.tensor(total, dtype=th.float32)
