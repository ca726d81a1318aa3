"""The gate: which backend runs each rollout and each update, and why.

The core asks once per rollout (:func:`plan_rollout`) and once per update (:func:`plan_update`); each answer is a
:class:`Plan`: the backend, its name (logged as ``rollout/backend`` / ``train/backend``), and the reasons a faster one
was declined (printed once each with ``verbose >= 1``). The rule every fast path follows is in
:mod:`sb3_ppo_variants._lean.structure`; the backends, from the slowest:

- ``sb3``/``torch``: SB3's public calls (:mod:`sb3_ppo_variants.core.backends`): any policy, any optimizer;
- ``lean``/``torch-lean``: the same computation with less overhead, bit for bit
  (:mod:`~sb3_ppo_variants._lean.torch_calls`, :mod:`~sb3_ppo_variants._lean.maskable`, the direct fused-Adam step of
  :mod:`~sb3_ppo_variants._lean.adam`): the policy is exactly one of SB3's or sb3-contrib's maskable classes, with no
  module hook;
- ``numpy``: the rollout step (:mod:`~sb3_ppo_variants._lean.numpy_rollout`) and the update
  (:mod:`~sb3_ppo_variants._lean.numpy_update` with the twins of :mod:`~sb3_ppo_variants._lean.twins`) of SB3's exact
  ``MlpPolicy`` in NumPy, where float rounding may differ from torch's: only with ``numerics="fast"`` (the default),
  on the CPU, and for the update only where every loss method is exactly one a registered twin stands in for, no
  gradient hook is on a parameter, no parameter is frozen and anomaly detection is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch as th

from sb3_ppo_variants._lean.adam import ClippedAdamStep
from sb3_ppo_variants._lean.distributions import lean_distributions_available, no_distribution_validation
from sb3_ppo_variants._lean.maskable import LeanMaskablePolicyCalls, is_exact_sb3_contrib_maskable_policy
from sb3_ppo_variants._lean.numpy_rollout import NumpyRolloutStep, numpy_rollout_step
from sb3_ppo_variants._lean.numpy_update import NumpyUpdate, numpy_policy_gradient
from sb3_ppo_variants._lean.recurrent import LeanRecurrentPolicyCalls, not_exact_recurrent_reason
from sb3_ppo_variants._lean.structure import REPLACED_METHODS, SB3_POLICY_CLASSES, PolicyStructure, StructureCache
from sb3_ppo_variants._lean.torch_calls import LeanPolicyCalls
from sb3_ppo_variants._lean.twins import MINIBATCH_TWIN, bound_minibatch_loss, policy_loss_twin
from sb3_ppo_variants.core.backends import PolicyCalls, TorchUpdate
from sb3_ppo_variants.recurrent.calls import RecurrentPolicyCalls

#: why the NumPy network declined a policy the exact-class rule accepts (:func:`~._lean.numpy_net.supported_policy`)
UNSUPPORTED = (
    "the policy is not SB3's MlpPolicy on a Box observation (FlattenExtractor, MlpExtractor, Linear/Tanh/ReLU layers, "
    "a categorical, Gaussian or gSDE distribution, float32 on the CPU)"
)


@dataclass
class Plan:
    """The gate's answer for one rollout or one update."""

    #: the rollout's :class:`~sb3_ppo_variants.core.backends.PolicyCalls` or the update's backend
    backend: Any
    #: why each faster backend was declined (empty: the fastest one runs)
    declined: list[str] = field(default_factory=list)
    #: entered around each rollout step, or once around the update: torch's distribution validation off inside our
    #: own computations (:func:`~sb3_ppo_variants._lean.distributions.no_distribution_validation`)
    scope: Any = field(default_factory=no_distribution_validation)
    #: entered around each rollout step: ``torch.inference_mode()`` for the lean calls (nothing of the user's runs
    #: inside), else ``torch.no_grad()`` as SB3's rollouts
    grad_mode: Any = field(default_factory=th.no_grad)

    @property
    def name(self) -> str:
        return str(self.backend.name)


def structure_cache(algo: Any) -> StructureCache:
    """The objects built from the policy's structure (the NumPy rollout step and update), kept on the algorithm while
    the structure is the same (not saved: rebuilt after loading)."""
    cache = getattr(algo, "_fast_path_cache", None)
    if cache is None:
        cache = algo._fast_path_cache = StructureCache()
    return cache


def not_exact_reason(policy: Any, structure: PolicyStructure) -> str | None:
    """Why the lean calls may not stand in for the policy's methods (None: they may)."""
    if type(policy) not in SB3_POLICY_CLASSES and not is_exact_sb3_contrib_maskable_policy(policy, structure):
        return f"the policy's class {type(policy).__name__} is not exactly one of SB3's or sb3-contrib's"
    replaced = [name for name in REPLACED_METHODS if name in vars(policy)]
    if replaced:
        return f"the policy object replaces {', '.join(replaced)}"
    if structure.module_hooks:
        return "a forward/backward hook is registered on a module of the policy (or for all modules)"
    return None


def _calls(
    algo: Any, structure: PolicyStructure, declined: list[str], reason: str | None, numpy_step: Any = None
) -> PolicyCalls:
    """The policy calls for ``reason``, the policy's :func:`not_exact_reason` (None: an exact SB3 or sb3-contrib
    maskable policy, whichever its class is)."""
    policy = algo.policy
    if getattr(algo, "_public_calls", PolicyCalls) is RecurrentPolicyCalls:
        return _recurrent_calls(algo, structure, declined)
    if reason is not None:
        declined.append(f"lean calls: {reason}")
        return PolicyCalls(policy)
    if type(policy) not in SB3_POLICY_CLASSES:  # exact, and not SB3's: one of sb3-contrib's maskable policies
        return LeanMaskablePolicyCalls(policy, structure)
    return LeanPolicyCalls(policy, structure, numpy_step)


def _recurrent_calls(algo: Any, structure: PolicyStructure, declined: list[str]) -> PolicyCalls:
    """sb3-contrib's recurrent calls (:mod:`sb3_ppo_variants.recurrent.calls`), or their lean twin where the policy is
    exactly one of sb3-contrib's recurrent classes (or our masked one) with no method replaced and no module hook;
    one LSTM call per minibatch only with ``numerics="fast"`` (:mod:`sb3_ppo_variants._lean.recurrent`)."""
    policy = algo.policy
    reason = not_exact_recurrent_reason(policy, structure)
    if reason is not None:
        declined.append(f"lean recurrent calls: {reason}")
        return RecurrentPolicyCalls(policy)
    whole_sequences = algo.numerics == "fast"
    if not whole_sequences:
        declined.append("one LSTM call per minibatch: numerics='sb3' keeps sb3-contrib's step-by-step LSTM")
    return LeanRecurrentPolicyCalls(policy, structure, whole_sequences)


def _numpy_declined(algo: Any, structure: PolicyStructure) -> str | None:
    """Why the NumPy network may not stand in for the policy (None: it may), beside the exact-class rule."""
    if algo.numerics != "fast":
        return "numerics='sb3' keeps torch's arithmetic"
    if algo.device.type != "cpu":
        return f"the device is {algo.device}, not the CPU"
    if not_exact_reason(algo.policy, structure) is not None or type(algo.policy) not in SB3_POLICY_CLASSES:
        return "the policy is not exactly SB3's"
    if not lean_distributions_available():
        return "the lean distributions do not match torch's on this torch version"
    return None


def _numpy_step(algo: Any, structure: PolicyStructure, declined: list[str]) -> NumpyRolloutStep | None:
    reason = _numpy_declined(algo, structure)
    step = None
    if reason is None:
        policy = algo.policy
        step = structure_cache(algo).get("numpy_step", structure, lambda: numpy_rollout_step(policy))
        if step is None:
            reason = UNSUPPORTED
    if reason is not None:
        declined.append(f"numpy rollout step: {reason}")
    return step


def plan_rollout(algo: Any) -> Plan:
    """The policy calls of one rollout: the NumPy step, the lean calls, or SB3's public calls."""
    structure = PolicyStructure(algo.policy)  # the checks of this rollout read this one walk
    declined: list[str] = []
    reason = not_exact_reason(algo.policy, structure)
    numpy_step = _numpy_step(algo, structure, declined) if reason is None else None
    calls = _calls(algo, structure, declined, reason, numpy_step)
    # SB3's collect_rollouts runs the policy under no_grad; the lean calls (nothing of the user's inside) may use the
    # faster inference mode
    return Plan(calls, declined, grad_mode=th.inference_mode() if calls.inference_mode else th.no_grad())


def _numpy_update_declined(algo: Any, structure: PolicyStructure) -> str | None:
    """Why the NumPy update may not stand in for the torch update (None: it may; then :func:`policy_loss_twin` has
    a twin for ``algo``)."""
    reason = _numpy_declined(algo, structure)
    if reason is not None:
        return reason
    if th.is_anomaly_enabled():
        return "autograd's anomaly detection is on"
    if structure.tensor_hooks:
        return "a gradient hook is registered on a parameter"
    if structure.frozen:
        return "a parameter is frozen (requires_grad=False)"
    if not MINIBATCH_TWIN.stands_in_for(algo):
        return f"{type(algo).__name__} replaces one of {', '.join(MINIBATCH_TWIN.methods)}"
    if policy_loss_twin(algo) is None:
        return f"no NumPy twin is registered for {type(algo).__name__}'s policy loss"
    return None


def plan_update(algo: Any) -> Plan:
    """The backend of one update: the NumPy update, the torch update with the lean calls, or SB3's calls."""
    policy = algo.policy
    structure = PolicyStructure(policy)  # the checks of this update read this one walk
    declined: list[str] = []
    optimizer_step = ClippedAdamStep(policy, policy.optimizer, structure.parameters)
    reason = _numpy_update_declined(algo, structure)
    gradient = None
    if reason is None:
        # its construction checks every layer: kept while the policy's structure is the same (a module or parameter
        # replaced, .to(...), param.data = ... build it again)
        gradient = structure_cache(algo).get("numpy_update", structure, lambda: numpy_policy_gradient(policy))
        if gradient is None:
            reason = UNSUPPORTED
    calls: PolicyCalls
    if gradient is not None:
        twin = policy_loss_twin(algo)
        assert twin is not None
        calls = LeanPolicyCalls(policy, structure)  # the training mode, outside the minibatch loss
        backend: Any = NumpyUpdate(gradient, bound_minibatch_loss(algo, twin), optimizer_step, algo.max_grad_norm, calls)
    else:
        declined.append(f"numpy update: {reason}")
        calls = _calls(algo, structure, declined, not_exact_reason(policy, structure))
        backend = TorchUpdate(algo._minibatch_loss, calls, optimizer_step, algo.max_grad_norm)
    return Plan(backend, declined)
