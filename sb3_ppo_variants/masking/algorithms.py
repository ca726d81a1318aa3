"""MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO: our algorithms with invalid-action masking.

Each is its unmasked algorithm (same loss, same shared rollout and training loop) combined with
:class:`MaskableAlgorithmMixin`, which plugs sb3-contrib's maskable machinery into the loop's hooks:

- the policy is sb3-contrib's :class:`~sb3_contrib.common.maskable.policies.MaskableActorCriticPolicy` (aliases
  ``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy`` as in ``MaskablePPO``);
- at each rollout step the masks come from the environment's ``action_masks()`` (sb3-contrib's
  :func:`~sb3_contrib.common.maskable.utils.get_action_masks`), are checked, passed to the policy call as
  ``action_masks=`` and stored in sb3-contrib's maskable rollout buffer (or a subclass of it);
- in training, each minibatch's stored masks are passed to the policy calls, so that the log-probabilities, the
  entropy and (MaskableKLPenaltyPPO) the KL are those of the masked policy;
- ``learn(..., use_masking=True)`` and ``predict(obs, action_masks=...)`` as in ``MaskablePPO``, so that
  sb3-contrib's ``evaluate_policy`` and ``MaskableEvalCallback`` work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from sb3_contrib.common.maskable.policies import (
    MaskableActorCriticCnnPolicy,
    MaskableActorCriticPolicy,
    MaskableMultiInputActorCriticPolicy,
)
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.core.checks import n_observations
from sb3_ppo_variants.kl_penalty_ppo import KLPenaltyPPO
from sb3_ppo_variants.masking.buffers import (
    MaskableDictDistParamsRolloutBuffer,
    MaskableDictRewardToGoRolloutBuffer,
    MaskableDictTensorRolloutBuffer,
    MaskableDistParamsRolloutBuffer,
    MaskableRewardToGoRolloutBuffer,
    MaskableTensorRolloutBuffer,
)
from sb3_ppo_variants.masking.kl import has_masked_closed_form_kl, masked_closed_form_kl, masked_dist_params
from sb3_ppo_variants.masking.masks import MASKABLE_ACTION_SPACES, check_action_masks, check_masking_env, mask_dim
from sb3_ppo_variants.reinforce import REINFORCE
from sb3_ppo_variants.spo import SPO

SelfMaskable = TypeVar("SelfMaskable", bound="MaskableAlgorithmMixin")


class MaskablePolicyError(TypeError, ValueError):
    """A policy that is not a ``MaskableActorCriticPolicy``: a ``TypeError`` (the kind of value is wrong), and a
    ``ValueError`` as what sb3-contrib's ``MaskablePPO`` raises, so that code written for it catches ours."""


class MaskableAlgorithmMixin:
    """Invalid-action masking for an algorithm of the shared loop (put it first in the bases).

    Discrete, MultiDiscrete and MultiBinary action spaces. With ``use_masking=True`` (the default of :meth:`learn`)
    the environment must have an ``action_masks()`` method (sb3-contrib's ``ActionMasker`` wrapper adds one).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MaskableActorCriticPolicy,
        "CnnPolicy": MaskableActorCriticCnnPolicy,
        "MultiInputPolicy": MaskableMultiInputActorCriticPolicy,
    }
    #: the constructor's shared check asks only for an SB3 policy; :meth:`_setup_model` asks for a
    #: MaskableActorCriticPolicy, with the exception sb3-contrib raises (:class:`MaskablePolicyError`)
    policy_base: ClassVar[type[BasePolicy]] = BasePolicy  # type: ignore[type-abstract]
    #: the default rollout buffers: (non-Dict observations, Dict observations)
    _mask_buffer_classes: ClassVar[tuple[type[RolloutBuffer], type[RolloutBuffer]]] = (
        MaskableTensorRolloutBuffer,
        MaskableDictTensorRolloutBuffer,
    )
    #: the class the policy must be (a subclass of): sb3-contrib's maskable policy (the masked recurrent algorithms:
    #: our :class:`~sb3_ppo_variants.recurrent.policies.MaskableRecurrentActorCriticPolicy`)
    _maskable_policy: ClassVar[type[BasePolicy]] = MaskableActorCriticPolicy
    #: whether the current ``learn()`` reads and applies the environment's masks
    _use_masking: bool = True

    action_space: spaces.Space
    observation_space: spaces.Space
    policy: Any
    policy_class: Any
    env: VecEnv | None
    rollout_buffer_class: type[RolloutBuffer] | None

    def _setup_model(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.action_space, MASKABLE_ACTION_SPACES):
            # SB3's wording (an assert in BaseAlgorithm, given MaskablePPO's supported_action_spaces) kept inside
            names = ", ".join(space.__name__ for space in MASKABLE_ACTION_SPACES)
            raise ValueError(
                f"{owner}: the action space of `env` is not maskable. The algorithm only supports {names} as action "
                f"spaces but {self.action_space} was provided"
            )
        try:
            mask_dim(self.action_space)
        except ValueError as exc:
            raise ValueError(f"{owner}: the action space of `env` is not maskable: {exc}") from None
        _check_maskable_policy(owner, self.policy_class, self.policy_aliases, self._maskable_policy)
        if getattr(self, "use_sde", False):
            raise ValueError(f"{owner}: `use_sde=True` (gSDE) is for continuous actions; masked policies are categorical")
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = self._default_mask_buffer(isinstance(self.observation_space, spaces.Dict))
        # SB3's OnPolicyAlgorithm._setup_model builds the policy with `use_sde=...`, which sb3-contrib's maskable
        # policies do not take (MaskablePPO re-implements _setup_model for that); the class is swapped for one call
        # that drops it, and restored, so that the saved `policy_class` is the user's.
        policy_class = self.policy_class
        self.policy_class = _without_use_sde(policy_class)
        try:
            super()._setup_model()  # type: ignore[misc]
        finally:
            self.policy_class = policy_class
        required = self._maskable_policy.__name__
        if not isinstance(self.policy, self._maskable_policy):
            raise MaskablePolicyError(
                f"{owner}: `policy` must be a {required} or a subclass of it, "
                f"got {type(self.policy).__name__} (Policy must subclass {required})"
            )

    def _default_mask_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        """The rollout buffer used when the user gives none."""
        return self._mask_buffer_classes[dict_obs]

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return MaskableDictRolloutBuffer if dict_obs else MaskableRolloutBuffer

    def _required_rollout_buffer_reason(self) -> str:
        return "(it stores each step's action masks, which training passes to the policy again)"

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_use_masking"]  # type: ignore[misc]

    # ------------------------------------------------------------------ hooks of the shared loop

    def _rollout_policy_kwargs(self, env: VecEnv) -> dict[str, Any]:
        """``action_masks=`` the environment's current masks (checked), or nothing when masking is off."""
        if not self._use_masking:
            return {}
        masks = check_action_masks(
            get_action_masks(env), self.action_space, env.num_envs, name="action_masks()", owner=type(self).__name__
        )
        return {"action_masks": masks}

    def _minibatch_policy_kwargs(self, batch: Any) -> dict[str, Any]:
        """``action_masks=`` the masks stored with the minibatch's samples (all True when collected unmasked)."""
        return {"action_masks": batch.action_masks}

    # ------------------------------------------------------------------ public interface of MaskablePPO

    def learn(  # type: ignore[override]
        self: SelfMaskable,
        total_timesteps: int | float,
        callback: MaybeCallback = None,
        log_interval: int | None = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        use_masking: bool = True,
        progress_bar: bool = False,
    ) -> SelfMaskable:
        """Train for ``total_timesteps`` environment steps, as ``MaskablePPO.learn``. The other parameters are those of
        :meth:`~sb3_ppo_variants.core.algorithm.PolicyGradientAlgorithm.learn`.

        :param use_masking: Whether to read the legal actions from the environment's ``action_masks()`` at every step
            and sample only those (True, default). With False the policy is trained on all actions.
        """
        owner = type(self).__name__
        if not isinstance(use_masking, (bool, np.bool_)):
            raise TypeError(f"{owner}: `use_masking` must be a bool, got {use_masking!r}")
        if use_masking:
            check_masking_env(self.env, owner)
        self._use_masking = bool(use_masking)
        return super().learn(  # type: ignore[misc]
            total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The policy's action for ``observation``, choosing only among the legal actions of ``action_masks``. The other
        parameters are those of SB3's ``BaseAlgorithm.predict``.

        :param action_masks: one row per observation (``(mask_dim,)`` for a single one), True where the action is
            legal (sb3-contrib's ``get_action_masks(env)`` gives them); ``None``: every action is allowed
        """
        if action_masks is not None:
            action_masks = check_action_masks(
                action_masks,
                self.action_space,
                n_observations(observation, self.observation_space),
                owner=type(self).__name__,
            )
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)


def _check_maskable_policy(
    owner: str, policy_class: Any, aliases: dict[str, type[BasePolicy]], required: type[BasePolicy]
) -> None:
    """Raise :class:`MaskablePolicyError` unless ``policy_class`` is a subclass of ``required``."""
    if isinstance(policy_class, type) and issubclass(policy_class, required):
        return
    got = policy_class.__name__ if isinstance(policy_class, type) else repr(policy_class)
    raise MaskablePolicyError(
        f"{owner}: `policy` must be a {required.__name__} subclass or one of {sorted(aliases)}, got {got} "
        f"(Policy must subclass {required.__name__})"
    )


def _without_use_sde(policy_class: type[BasePolicy]) -> Any:
    """``policy_class`` as a callable that accepts and drops SB3's ``use_sde=False`` keyword."""

    def build(*args: Any, use_sde: bool = False, **kwargs: Any) -> BasePolicy:
        return policy_class(*args, **kwargs)

    build.__name__ = policy_class.__name__
    return build


class MaskableClipPPO(MaskableAlgorithmMixin, ClipPPO):  # type: ignore[misc]  # learn() takes use_masking, as MaskablePPO's
    """:class:`~sb3_ppo_variants.ClipPPO` with invalid-action masking: sb3-contrib's ``MaskablePPO`` on our loop.

    Parameters are ClipPPO's (and so SB3 PPO's and ``MaskablePPO``'s); ``policy`` is a ``MaskableActorCriticPolicy``
    (``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"``). With the same arguments, seed and
    ``policy_kwargs=dict(optimizer_kwargs=dict(eps=1e-5, fused=False, foreach=False))`` (SB3's Adam), it computes
    what ``MaskablePPO`` computes.
    """


class MaskableKLPenaltyPPO(MaskableAlgorithmMixin, KLPenaltyPPO):  # type: ignore[misc]  # learn() takes use_masking, as MaskablePPO's
    """:class:`~sb3_ppo_variants.KLPenaltyPPO` with invalid-action masking.

    The closed-form KL (``kl_estimator="closed_form"``, default) is taken over the legal actions of each state
    (:func:`~sb3_ppo_variants.masking.kl.masked_closed_form_kl`): an illegal action has probability 0 under the old
    and the new policy and contributes nothing. The sample estimators use the masked policy's log-probabilities.
    Parameters are KLPenaltyPPO's; ``policy`` is a ``MaskableActorCriticPolicy``.
    """

    def _default_mask_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        if self.kl_estimator == "closed_form":
            return MaskableDictDistParamsRolloutBuffer if dict_obs else MaskableDistParamsRolloutBuffer
        return super()._default_mask_buffer(dict_obs)

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        if self.kl_estimator == "closed_form":
            return MaskableDictDistParamsRolloutBuffer if dict_obs else MaskableDistParamsRolloutBuffer
        return super()._required_rollout_buffer(dict_obs)

    def _required_rollout_buffer_reason(self) -> str:
        if self.kl_estimator == "closed_form":
            return "(it stores each step's action masks and, for the closed-form KL, the old masked distribution)"
        return super()._required_rollout_buffer_reason()

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        if self.kl_estimator == "closed_form":
            return {"dist_params_dim": mask_dim(self.action_space)}
        return {}

    def _has_closed_form_kl(self, distribution: Distribution) -> bool:
        return has_masked_closed_form_kl(distribution)

    def _rollout_extras(self, outputs: PolicyOutputs) -> dict[str, Any]:
        if self.kl_estimator == "closed_form":
            return {"dist_params": masked_dist_params(outputs.distribution)}  # type: ignore[arg-type]
        return {}

    def _kl(self, batch: Any, log_prob: th.Tensor, distribution: Distribution | Callable[[], Distribution]) -> th.Tensor:
        if self.kl_estimator == "closed_form":
            current = distribution if isinstance(distribution, Distribution) else distribution()
            return masked_closed_form_kl(batch.old_dist_params, current, batch.action_masks)
        return super()._kl(batch, log_prob, distribution)


class MaskableREINFORCE(MaskableAlgorithmMixin, REINFORCE):  # type: ignore[misc]  # learn() takes use_masking, as MaskablePPO's
    """:class:`~sb3_ppo_variants.REINFORCE` with invalid-action masking: the log-probabilities in the loss are those of
    the masked policy. Parameters are REINFORCE's; ``policy`` is a ``MaskableActorCriticPolicy``."""

    _mask_buffer_classes = (MaskableRewardToGoRolloutBuffer, MaskableDictRewardToGoRolloutBuffer)

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return self._mask_buffer_classes[dict_obs]

    def _required_rollout_buffer_reason(self) -> str:
        return "(the reward-to-go of REINFORCE with the action masks of each step)"


class MaskableSPO(MaskableAlgorithmMixin, SPO):  # type: ignore[misc]  # learn() takes use_masking, as MaskablePPO's
    """:class:`~sb3_ppo_variants.SPO` with invalid-action masking: SPO's loss on the masked policy's log-probabilities.

    Parameters are SPO's; ``policy`` is a ``MaskableActorCriticPolicy`` (``"MlpPolicy"``, ``"CnnPolicy"``,
    ``"MultiInputPolicy"``), and the interface (``learn(use_masking=...)``, ``predict(action_masks=...)``) is
    ``MaskablePPO``'s.
    """
