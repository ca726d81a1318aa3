"""What the gate reads off the policy: one walk of its modules and parameters, and the exact-class rule.

**The fast-path rule** (it holds for every path of the fast wing): a fast path runs only when the objects it stands in
for are exactly SB3's (or torch's), with nothing a user added that it would skip. For the policy
(:func:`is_exact_sb3_policy`):

- its class is exactly :class:`~stable_baselines3.common.policies.ActorCriticPolicy`,
  :class:`~stable_baselines3.common.policies.ActorCriticCnnPolicy` or
  :class:`~stable_baselines3.common.policies.MultiInputActorCriticPolicy` (the aliases ``MlpPolicy``, ``CnnPolicy``,
  ``MultiInputPolicy``): a subclass may override ``forward``, ``evaluate_actions``, ``get_distribution``,
  ``predict_values``, ``extract_features``, ``_get_action_dist_from_latent``, ``set_training_mode``, ... and then
  SB3's calls run, so every override is honoured; the same holds for one of these methods replaced on the policy
  object itself (``policy.forward = ...``) and for a wrapper such as ``torch.compile``'s ``OptimizedModule``;
- no forward/backward hook is registered on the policy or any of its modules, nor globally for all modules
  (the lean path does not go through ``policy.__call__``);
- a private torch attribute the check needs is missing (a renamed internal in a new release): the answer is "not
  exactly SB3's", so the public path runs.

:class:`PolicyStructure` reads all of that in one walk, at the start of each rollout and each update, so a hook
registered between two updates is honoured from the next one on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from torch import nn

from sb3_ppo_variants.core import internals

#: The policy classes the lean path stands in for (exact classes: a subclass takes SB3's public path).
SB3_POLICY_CLASSES: tuple[type[ActorCriticPolicy], ...] = (
    ActorCriticPolicy,
    ActorCriticCnnPolicy,
    MultiInputActorCriticPolicy,
)
#: Per-module hook registries of ``nn.Module`` (private attributes) and the global ones of ``torch.nn.modules.module``.
MODULE_HOOK_REGISTRIES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
GLOBAL_MODULE_HOOK_REGISTRIES = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def has_module_hooks(module: nn.Module) -> bool:
    """Whether a forward/backward hook is registered on ``module``, one of its submodules, or for all modules.

    A hook registry that cannot be read (a renamed torch internal) counts as a registered hook.
    """
    return _any_module_hooks(list(module.modules()))


def _any_module_hooks(modules: list[nn.Module]) -> bool:
    """:func:`has_module_hooks` on the modules of one walk."""
    global_owner = th.nn.modules.module
    for name in GLOBAL_MODULE_HOOK_REGISTRIES:
        registry = internals.private(global_owner, name)
        if registry is None or len(registry) > 0:
            return True
    for submodule in modules:
        for name in MODULE_HOOK_REGISTRIES:
            registry = internals.private(submodule, name)
            if registry is None or len(registry) > 0:
                return True
    return False


#: Gradient hook registries of a tensor (``Tensor.register_hook``, ``Tensor.register_post_accumulate_grad_hook``):
#: private attributes that hold None or an empty dict when no hook is registered
TENSOR_HOOK_REGISTRIES = ("_backward_hooks", "_post_accumulate_grad_hooks")


def _any_tensor_hooks(parameters: list[nn.Parameter]) -> bool:
    """Whether a gradient hook is registered on one of the parameters (tensor hooks: autograd runs them when it
    computes the parameter's gradient, so a path that computes gradients without autograd must not run). A registry
    that cannot be read counts as a registered hook."""
    for parameter in parameters:
        for name in TENSOR_HOOK_REGISTRIES:
            if not internals.has_private(parameter, name) or internals.private(parameter, name):
                return True
    return False


class PolicyStructure:
    """The policy's modules and parameters, read in one walk at the start of each rollout and each update, with what
    the fast-path checks ask about them (each check used to walk the module tree on its own: a few percent of the
    time of a short-rollout algorithm such as REINFORCE at A2C's settings).

    :attr:`key` identifies the structure the fast paths build on: the modules, the parameters (object, dtype, device,
    shape and memory: ``param.data = ...`` counts as a change) and the action distribution object. Objects built from
    one structure (:class:`StructureCache`) are kept while the key is the same.
    """

    def __init__(self, policy: nn.Module) -> None:
        #: ``list(policy.modules())`` and ``list(policy.parameters())``, in their order
        self.modules: list[nn.Module] = []
        self.parameters: list[nn.Parameter] = []
        #: a forward/backward hook on one of the modules or for all modules (:func:`has_module_hooks`)
        self.module_hooks = False
        if not self._walk(policy):  # a registry that cannot be read: torch's public walk
            self.modules, self.parameters = list(policy.modules()), list(policy.parameters())
            self.module_hooks = _any_module_hooks(self.modules)
        elif not self.module_hooks:
            self.module_hooks = _any_module_hooks([])  # the registries for all modules
        #: a gradient hook on one of the parameters (:func:`_any_tensor_hooks`)
        self.tensor_hooks = _any_tensor_hooks(self.parameters)
        #: a parameter with ``requires_grad=False``
        self.frozen = not all(parameter.requires_grad for parameter in self.parameters)
        #: a module whose class or object has its own ``train`` or ``__setattr__`` (then ``set_training_mode`` runs)
        self.own_train = any(
            type(module).train is not nn.Module.train
            or type(module).__setattr__ is not nn.Module.__setattr__
            or "train" in vars(module)
            for module in self.modules
        )
        self.key = (
            tuple(map(id, self.modules)),
            tuple((id(p), p.dtype, p.device, p.shape, p.data_ptr()) for p in self.parameters),
            id(getattr(policy, "action_dist", None)),
        )

    def _walk(self, root: nn.Module) -> bool:
        """``modules()``'s pre-order walk (each module once) collecting what ``parameters()`` yields (each parameter
        once, in module order) and whether a module hook is registered, read from torch's registries (``_modules``,
        ``_parameters``, the hook dicts of :data:`MODULE_HOOK_REGISTRIES`) in one pass. False where the registries
        cannot be read: asked through :mod:`~sb3_ppo_variants.core.internals` on the root, then read from each
        module's ``__dict__`` (a module without one of them: False)."""
        if not all(isinstance(internals.private(root, name), dict) for name in _WALKED_REGISTRIES):
            return False
        modules, parameters = self.modules, self.parameters
        seen_modules: set[int] = set()
        seen_parameters: set[int] = set()
        hooks = False
        stack = [root]
        try:
            while stack:
                module = stack.pop()
                if id(module) in seen_modules:
                    continue
                seen_modules.add(id(module))
                modules.append(module)
                registries = module.__dict__
                # the four registries of MODULE_HOOK_REGISTRIES, spelled out (this runs for every module)
                hooks = (
                    hooks
                    or bool(registries["_forward_hooks"])
                    or bool(registries["_forward_pre_hooks"])
                    or bool(registries["_backward_hooks"])
                    or bool(registries["_backward_pre_hooks"])
                )
                for parameter in registries["_parameters"].values():
                    if parameter is not None and id(parameter) not in seen_parameters:
                        seen_parameters.add(id(parameter))
                        parameters.append(parameter)
                # pushed in reverse: popped in registration order (the pre-order of modules())
                stack.extend(child for child in reversed(registries["_modules"].values()) if child is not None)
        except (KeyError, AttributeError, TypeError):
            return False
        self.module_hooks = hooks
        return True


#: the registries :meth:`PolicyStructure._walk` reads (it spells out the hook registries: a test checks they agree)
_WALKED_REGISTRIES = ("_modules", "_parameters", *MODULE_HOOK_REGISTRIES)


class StructureCache:
    """Objects built from a policy's structure (the NumPy rollout step, the NumPy update), kept while the
    :attr:`PolicyStructure.key` they were built from is the same. An algorithm holds one; it is not saved."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple, Any]] = {}

    def get(self, name: str, structure: PolicyStructure, build: Callable[[], Any]) -> Any:
        """The object ``name`` built for ``structure``: the kept one if its key is ``structure.key``, else ``build()``."""
        entry = self._entries.get(name)
        if entry is None or entry[0] != structure.key:
            entry = self._entries[name] = (structure.key, build())
        return entry[1]


#: The policy methods the lean paths stand in for (overridden in a subclass, or replaced on the object itself)
REPLACED_METHODS = (
    "forward",
    "evaluate_actions",
    "get_distribution",
    "predict_values",
    "extract_features",
    "_get_action_dist_from_latent",
    "obs_to_tensor",
    "set_training_mode",
)


def is_exact_sb3_policy(policy: BasePolicy, structure: PolicyStructure | None = None) -> bool:
    """Whether the lean path may stand in for the policy's methods (the rule in the module docstring); ``structure``:
    the policy's :class:`PolicyStructure` if already read."""
    if type(policy) not in SB3_POLICY_CLASSES or any(name in vars(policy) for name in REPLACED_METHODS):
        return False
    return not (structure.module_hooks if structure is not None else has_module_hooks(policy))


def set_training_mode(policy: BasePolicy, mode: bool, structure: PolicyStructure | None = None) -> None:
    """``policy.set_training_mode(mode)``: SB3's ``nn.Module.train(mode)``, which sets ``training`` on every module.

    ``nn.Module.train()`` walks the module tree through ``__setattr__`` (about 35 us for SB3's MLP policy): called at
    every rollout and every update, that is a few percent of a short-rollout algorithm's time. Where neither the
    policy nor any of its modules has its own ``set_training_mode`` / ``train`` / ``__setattr__``, the flags are set
    directly on the modules of ``structure`` (the policy's :class:`PolicyStructure`, read if not given), which is all
    ``train`` does; otherwise the policy's own method runs.
    """
    # looked up on the class with a default: a wrapper module (torch.compile's OptimizedModule) forwards the
    # method per instance only, and then its own call runs
    if getattr(type(policy), "set_training_mode", None) is not BasePolicy.set_training_mode or "set_training_mode" in vars(
        policy
    ):
        policy.set_training_mode(mode)
        return
    if structure is None:
        structure = PolicyStructure(policy)
    if structure.own_train:
        policy.set_training_mode(mode)
        return
    for module in structure.modules:
        if module.training is not mode:
            object.__setattr__(module, "training", mode)  # where nn.Module.__setattr__ ends for a bool
