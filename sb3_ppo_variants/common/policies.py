"""Calls into the policy: SB3's public methods, or a leaner equivalent where the policy is exactly SB3's.

**The fast-path rule** (it holds for every fast path of this package: here, the lean distributions of
:mod:`sb3_ppo_variants.common.distributions` and the optimizer step of :mod:`sb3_ppo_variants.common.optimizer`):
a fast path runs only when the objects it stands in for are exactly SB3's (or torch's), with nothing a user added
that it would skip. Otherwise the code calls SB3's own public methods, as SB3's ``PPO``/``A2C`` do. Concretely, for
the policy (:func:`is_exact_sb3_policy`):

- its class is exactly :class:`~stable_baselines3.common.policies.ActorCriticPolicy`,
  :class:`~stable_baselines3.common.policies.ActorCriticCnnPolicy` or
  :class:`~stable_baselines3.common.policies.MultiInputActorCriticPolicy` (the aliases ``MlpPolicy``, ``CnnPolicy``,
  ``MultiInputPolicy``): a subclass may override ``forward``, ``evaluate_actions``, ``get_distribution``,
  ``predict_values``, ``extract_features``, ``_get_action_dist_from_latent``, ``set_training_mode``, ... and then
  SB3's calls run, so every override is honoured; the same holds for one of these methods replaced on the policy
  object itself (``policy.forward = ...``);
- no forward/backward hook is registered on the policy or any of its modules, nor globally for all modules
  (the fast path does not go through ``policy.__call__``);
- a private torch attribute the check needs is missing (a renamed internal in a new release): the answer is "not
  exactly SB3's", so the public path runs.

It is decided once per rollout and once per update (:class:`PolicyCalls`), so a hook registered between two
updates is honoured from the next one on. The lean path computes the same numbers and draws the same random numbers
as SB3's methods (tested bit for bit). Within it, rollouts of SB3's exact ``MlpPolicy`` run the NumPy step of
:mod:`sb3_ppo_variants.common.numpy_policy` (the same draws, float rounding may differ) while the optimizer is the
default fused Adam (:func:`~sb3_ppo_variants.common.optimizer.rounding_fast_paths_allowed`), and its updates the
NumPy forward and backward of :mod:`sb3_ppo_variants.common.numpy_update` (which also needs the algorithm's loss
methods to be ours and no gradient hook on a parameter). With the public path our
algorithms call

- in rollouts: ``policy(obs)`` (``forward``: actions, values, log-probabilities, as SB3's ``collect_rollouts``), plus
  ``policy.get_distribution(obs)`` when the algorithm stores the old distribution (KLPenaltyPPO's closed-form KL);
- in training: ``policy.evaluate_actions(obs, actions)`` (as SB3's ``PPO.train``), plus ``get_distribution`` when
  the loss needs the distribution object;
- everywhere: ``policy.predict_values`` for bootstrapping and ``policy.set_training_mode``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_ppo_variants.common import internals
from sb3_ppo_variants.common.distributions import action_distribution
from sb3_ppo_variants.common.modules import run_module
from sb3_ppo_variants.common.numpy_policy import NumpyRolloutStep, numpy_rollout_step
from sb3_ppo_variants.common.optimizer import rounding_fast_paths_allowed

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
        cannot be read: asked through :mod:`~sb3_ppo_variants.common.internals` on the root, then read from each
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
    if type(policy).set_training_mode is not BasePolicy.set_training_mode or "set_training_mode" in vars(policy):
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


def _features(policy: Any, obs: PyTorchObs, extractor: nn.Module) -> th.Tensor:
    """SB3's ``BasePolicy.extract_features(obs, extractor)``: the preprocessed observation through the extractor."""
    preprocessed = preprocess_obs(obs, policy.observation_space, normalize_images=policy.normalize_images)
    return run_module(extractor, preprocessed)  # type: ignore[arg-type]


def _mlp_half(policy: Any, features: th.Tensor, half: str) -> th.Tensor:
    """SB3's ``mlp_extractor.forward_actor`` (``half="policy_net"``) or ``forward_critic`` (``"value_net"``)."""
    extractor = policy.mlp_extractor
    if type(extractor) is not MlpExtractor:
        return extractor.forward_actor(features) if half == "policy_net" else extractor.forward_critic(features)
    return run_module(getattr(extractor, half), features)


def lean_latents(policy: Any, obs: PyTorchObs, with_values: bool) -> tuple[th.Tensor, th.Tensor | None]:
    """The actor's latent code and (``with_values``) the values, as SB3's ``forward``/``evaluate_actions`` (with values)
    or ``get_distribution`` (without) compute them, in one pass (exact classes: SB3's, or sb3-contrib's maskable
    policies, which compute them the same way).

    The same modules compute in the same order as in those methods, called through
    :func:`~sb3_ppo_variants.common.modules.run_module`; the critic is skipped when not needed.
    """
    if not with_values or policy.share_features_extractor:
        # shared extractor: SB3 extracts the features once for both halves; get_distribution uses the actor's
        pi_features = vf_features = _features(policy, obs, policy.pi_features_extractor)
    else:
        pi_features = _features(policy, obs, policy.pi_features_extractor)
        vf_features = _features(policy, obs, policy.vf_features_extractor)
    latent_pi = _mlp_half(policy, pi_features, "policy_net")
    if not with_values:
        return latent_pi, None
    return latent_pi, run_module(policy.value_net, _mlp_half(policy, vf_features, "value_net"))


def _lean_outputs(policy: ActorCriticPolicy, obs: PyTorchObs, with_values: bool) -> tuple[Distribution, th.Tensor | None]:
    """SB3's ``forward``/``evaluate_actions``/``get_distribution`` up to the distribution, in one pass (exact classes):
    :func:`lean_latents`, and the distribution built with
    :func:`~sb3_ppo_variants.common.distributions.action_distribution`."""
    latent_pi, values = lean_latents(policy, obs, with_values)
    return action_distribution(policy, latent_pi), values


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
    ) -> None:
        self.values = values
        self.log_prob = log_prob
        self.actions = actions
        self.entropy = entropy
        self._distribution = distribution
        #: the NumPy rollout step's distribution parameters, flat per sample (None elsewhere: read the distribution)
        self.flat_params = flat_params

    @property
    def distribution(self) -> Distribution:
        """The policy's action distribution on the same observations (built on first access on the public path)."""
        if callable(self._distribution) and not isinstance(self._distribution, Distribution):
            self._distribution = self._distribution()
        return self._distribution


class PolicyCalls:
    """How our loop calls one policy during one rollout or one update: the lean path or SB3's public methods.

    :param policy: the algorithm's policy; the choice (:func:`is_exact_sb3_policy`) is made here, once
    :param structure: the policy's :class:`PolicyStructure` if already read (read here otherwise)
    :param cache: where the NumPy rollout step is kept between rollouts (a new one, for this object alone, if None)
    """

    def __init__(
        self, policy: ActorCriticPolicy, structure: PolicyStructure | None = None, cache: StructureCache | None = None
    ) -> None:
        self.policy = policy
        self.structure = structure if structure is not None else PolicyStructure(policy)
        self.lean = is_exact_sb3_policy(policy, self.structure)
        self._cache = cache if cache is not None else StructureCache()
        self._numpy_step: NumpyRolloutStep | bool | None = False  # built on the first act(): False = not yet

    def numpy_step(self) -> NumpyRolloutStep | None:
        """The NumPy rollout step of :mod:`sb3_ppo_variants.common.numpy_policy` where it applies, else None (kept in
        the algorithm's :class:`StructureCache` while the policy's structure is the same)."""
        if self._numpy_step is False:
            # it changes float rounding: not where the user asked for SB3's exact arithmetic (optimizer.py)
            allowed = self.lean and rounding_fast_paths_allowed(getattr(self.policy, "optimizer", None))
            policy = self.policy
            self._numpy_step = (
                self._cache.get("numpy_step", self.structure, lambda: numpy_rollout_step(policy)) if allowed else None
            )
        return self._numpy_step  # type: ignore[return-value]

    def act(self, obs: PyTorchObs, with_values: bool, **policy_kwargs: Any) -> PolicyOutputs:
        """One rollout step: sampled actions, values (``with_values``), log-probabilities, the distribution.

        Public path: ``policy(obs, **policy_kwargs)`` (``forward``), as SB3's ``collect_rollouts``; call it under
        ``th.no_grad()``. ``policy_kwargs`` (e.g. sb3-contrib's ``action_masks=``) go to every policy call and turn the
        lean path off.
        """
        if self.lean and not policy_kwargs:
            numpy_step = self.numpy_step()
            if numpy_step is not None and isinstance(obs, th.Tensor) and numpy_step.applies(obs):
                actions, values, log_prob, build_distribution, flat_params = numpy_step.act(obs, with_values)
                return PolicyOutputs(values, log_prob, build_distribution, actions=actions, flat_params=flat_params)
            distribution, values = _lean_outputs(self.policy, obs, with_values)
            actions = distribution.get_actions()
            return PolicyOutputs(values, distribution.log_prob(actions), distribution, actions=actions)
        actions, values, log_prob = self.policy(obs, **policy_kwargs)
        policy = self.policy
        return PolicyOutputs(
            values if with_values else None, log_prob, lambda: policy.get_distribution(obs, **policy_kwargs), actions=actions
        )

    def evaluate(
        self, obs: PyTorchObs, actions: th.Tensor, with_values: bool, entropy_grad: bool, **policy_kwargs: Any
    ) -> PolicyOutputs:
        """Values (``with_values``), log-probabilities and entropy of ``actions`` under the current policy.

        Public path: ``policy.evaluate_actions(obs, actions, **policy_kwargs)``, as SB3's ``PPO.train`` (sb3-contrib's
        ``MaskablePPO.train`` passes ``action_masks=``). With ``entropy_grad`` False the lean path computes the entropy
        without a graph (it is then only logged). ``policy_kwargs`` turn the lean path off.
        """
        if self.lean and not policy_kwargs:
            distribution, values = _lean_outputs(self.policy, obs, with_values)
            log_prob = distribution.log_prob(actions)
            with th.set_grad_enabled(entropy_grad and th.is_grad_enabled()):
                entropy = distribution.entropy()
            return PolicyOutputs(values, log_prob, distribution, entropy=entropy)
        values, log_prob, entropy = self.policy.evaluate_actions(obs, actions, **policy_kwargs)
        policy = self.policy
        return PolicyOutputs(
            values if with_values else None, log_prob, lambda: policy.get_distribution(obs, **policy_kwargs), entropy=entropy
        )
