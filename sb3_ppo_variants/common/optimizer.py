"""Gradient clipping and the Adam step in one direct call, computing what ``clip_grad_norm_`` + ``Adam.step()`` compute.

Every Adam step and gradient clip regroups the parameter list by device and dtype in Python. :class:`ClippedAdamStep`
clips (``clip_grad_norm_(..., foreach=True)``'s arithmetic) and calls the fused Adam kernel directly with the
optimizer's own state tensors, for ``torch.optim.Adam(fused=True)`` with one parameter group (what our algorithms
create by default on the CPU and CUDA). The optimizer's state dict is the one ``Adam.step`` keeps (``step``,
``exp_avg``, ``exp_avg_sq``), so saving, loading and falling back to ``optimizer.step()`` are unaffected. Any other
optimizer or setting uses ``clip_grad_norm_`` and ``step()``.
"""

from __future__ import annotations

from typing import Any

import torch as th
from torch.optim import optimizer as torch_optimizer


def with_fast_optimizer(policy_kwargs: dict[str, Any], device: th.device) -> dict[str, Any]:
    """``policy_kwargs`` selecting Adam's fused implementation (CPU, CUDA; ``foreach`` elsewhere), unless the user chose.

    SB3 leaves PyTorch's default, which on the CPU is the per-parameter loop: a dozen small kernels per parameter per
    step. The fused kernel computes the same update in one pass; results differ from SB3's only by float rounding
    (about 3e-8 on the parameters after three PPO updates). Pass ``policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5,
    fused=False, foreach=False))`` to get SB3's exact arithmetic. When the user passes no ``optimizer_kwargs``, SB3's
    default ``eps=1e-5`` for Adam is kept.
    """
    optimizer_class = policy_kwargs.get("optimizer_class", th.optim.Adam)
    if optimizer_class not in (th.optim.Adam, th.optim.AdamW):
        return policy_kwargs
    optimizer_kwargs = policy_kwargs.get("optimizer_kwargs")
    if optimizer_kwargs is None:
        optimizer_kwargs = {"eps": 1e-5} if optimizer_class is th.optim.Adam else {}
    if "foreach" in optimizer_kwargs or "fused" in optimizer_kwargs:
        return policy_kwargs
    implementation = "fused" if th.device(device).type in ("cpu", "cuda") else "foreach"
    return {**policy_kwargs, "optimizer_kwargs": {**optimizer_kwargs, implementation: True}}


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
