"""The shared on-policy machinery: one rollout loop and one training loop for all our algorithms.

:class:`PolicyGradientAlgorithm` subclasses SB3's :class:`~stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`
and owns everything the variants share: minibatch epochs over SB3's rollout buffer, advantage
normalisation, the value loss (optionally clipped around the old value), the entropy bonus, gradient
clipping, SB3's ``target_kl`` early stop, the learning-rate and other schedules, the logging, and the PPO controls
of other libraries (``docs/controls.md``: KL-adaptive learning rate, the value-loss clipping forms, batch-level
advantage normalisation, per-epoch advantage recomputation; dual-clip is a loss term of the clipped algorithms).

An algorithm plugs in through a few hooks, so a fix to the loop lands once for all three:

- :meth:`~PolicyGradientAlgorithm._policy_loss` (required): the policy-loss term of one minibatch;
- :meth:`~PolicyGradientAlgorithm._on_update_start` / :meth:`~PolicyGradientAlgorithm._on_update_end`: before
  and after all epochs on one batch (schedules, KLPenaltyPPO's beta adaptation);
- :attr:`~PolicyGradientAlgorithm.uses_critic`: whether a value function is trained and used at all
  (REINFORCE without baseline: no);
- :meth:`~PolicyGradientAlgorithm._rollout_extras`: extra per-step fields for the rollout buffer;
- :meth:`~PolicyGradientAlgorithm._bootstrap_truncations`: what to do with time-limit truncations.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import warnings
import zipfile
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, BasePolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppo_variants.common import numpy_losses
from sb3_ppo_variants.common.buffers import DictTensorRolloutBuffer, TensorRolloutBuffer, samples_in_order
from sb3_ppo_variants.common.controls import (
    ADVANTAGE_SCOPES,
    VALUE_CLIP_FORMS,
    adapt_learning_rate,
    compute_gae,
    normalize_advantages,
)
from sb3_ppo_variants.common.distributions import no_distribution_validation
from sb3_ppo_variants.common.losses import value_function_loss
from sb3_ppo_variants.common.numpy_update import NumpyBatch, NumpyDistribution, NumpyPolicyGradient, numpy_policy_gradient
from sb3_ppo_variants.common.optimizer import ClippedAdamStep, rounding_fast_paths_allowed, with_fast_optimizer
from sb3_ppo_variants.common.policies import (
    PolicyCalls,
    PolicyOutputs,
    PolicyStructure,
    StructureCache,
    is_exact_sb3_policy,
    set_training_mode,
)
from sb3_ppo_variants.common.validation import (
    check_adaptive_lr,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_schedule,
)

SelfPolicyGradientAlgorithm = TypeVar("SelfPolicyGradientAlgorithm", bound="PolicyGradientAlgorithm")

SUPPORTED_ACTION_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


def _check_argument_types(
    owner: str,
    policy_aliases: dict[str, type[BasePolicy]],
    policy_base: type[BasePolicy],
    policy: Any,
    normalize_advantage: Any,
    use_sde: Any,
    policy_kwargs: Any,
    rollout_buffer_kwargs: Any,
    rollout_buffer_class: Any,
    tensorboard_log: Any,
    device: Any,
) -> None:
    """The constructor's checks of non-numeric arguments: a TypeError/ValueError naming the parameter."""
    if isinstance(policy, type) and not issubclass(policy, policy_base):
        article = "an" if policy_base.__name__[0] in "AEIOU" else "a"
        raise TypeError(
            f"{owner}: `policy` must be {article} {policy_base.__name__} subclass or one of {sorted(policy_aliases)}"
        )
    if isinstance(policy, str) and policy not in policy_aliases:
        raise ValueError(f"{owner}: `policy` must be one of {sorted(policy_aliases)} or a class, got {policy!r}")
    for name, flag in (("normalize_advantage", normalize_advantage), ("use_sde", use_sde)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{owner}: `{name}` must be a bool, got {flag!r}")
    for name, mapping in (("policy_kwargs", policy_kwargs), ("rollout_buffer_kwargs", rollout_buffer_kwargs)):
        if mapping is not None and not isinstance(mapping, dict):
            raise TypeError(f"{owner}: `{name}` must be a dict or None, got {type(mapping).__name__}")
    if rollout_buffer_class is not None and not (
        isinstance(rollout_buffer_class, type) and issubclass(rollout_buffer_class, RolloutBuffer)
    ):
        raise TypeError(
            f"{owner}: `rollout_buffer_class` must be a RolloutBuffer subclass or None, got {rollout_buffer_class!r}"
        )
    if tensorboard_log is not None and not isinstance(tensorboard_log, (str, os.PathLike)):
        raise TypeError(f"{owner}: `tensorboard_log` must be a path (str) or None, got {type(tensorboard_log).__name__}")
    if not isinstance(device, th.device) and device != "auto":
        try:
            th.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"{owner}: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N', ... or a torch.device; got {device!r}"
            ) from exc


class PolicyGradientAlgorithm(OnPolicyAlgorithm):
    """Base class of ClipPPO, KLPenaltyPPO and REINFORCE: SB3's on-policy algorithm with one shared ``train()``.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy or an ``ActorCriticPolicy`` subclass)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate, it can be a function of the current progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update
        (i.e. the rollout buffer holds ``n_steps * n_envs`` samples)
    :param batch_size: Minibatch size; ``None`` uses the whole rollout as one batch
    :param n_epochs: Number of passes over the rollout per update
    :param gamma: Discount factor, in [0, 1]
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator, in [0, 1]
    :param clip_range_vf: Clipping parameter for the value function, it can be a function of the current progress
        remaining (from 1 to 0). ``None`` (default) means no clipping of the value function.
        This clips around the old value, so it depends on the reward scaling.
    :param normalize_advantage: Whether to normalize the advantage per minibatch
    :param ent_coef: Entropy coefficient c2 of the loss, >= 0
    :param vf_coef: Value function coefficient c1 of the loss, >= 0
    :param max_grad_norm: The maximum value for the gradient clipping, > 0
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of action noise exploration
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE (-1: only at the start of a rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, it will be automatically selected.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates: SB3's early stop of the epochs of an update once the
        approximate KL of a minibatch exceeds ``1.5 * target_kl``. ``None`` (default) disables it.
    :param stats_window_size: Window size for the rollout logging, the number of episodes to average
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages, 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run
    :param supported_action_spaces: The action spaces this algorithm accepts
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    :param normalize_advantage_scope: Over which samples ``normalize_advantage`` normalises: ``"minibatch"``
        (SB3, default) or ``"batch"`` (the whole rollout, once per update and after each recomputation; rsl_rl, RLlib)
    :param value_clip_form: How ``clip_range_vf`` clips the value loss: ``"prediction"`` (SB3, default) or ``"max"``
        (OpenAI baselines / CleanRL: ``max((V - R)^2, (V_clip - R)^2)``); no effect without ``clip_range_vf``
    :param recompute_advantage: Before each epoch after the first, recompute the critic's values of the whole batch
        and the GAE advantages and returns from them (Tianshou's ``recompute_advantage``). Default False.
    :param adaptive_lr_target_kl: The KL target of the KL-adaptive learning rate (rsl_rl's ``desired_kl``);
        ``None`` (default) keeps the ``learning_rate`` schedule. The rule:
        :func:`~sb3_ppo_variants.common.controls.adapt_learning_rate`.
    :param adaptive_lr_every: ``"minibatch"`` (rsl_rl, default: before each gradient step, from that minibatch's KL)
        or ``"update"`` (once per update, from the KL over the whole batch after the update)
    :param adaptive_lr_kl_margin: The band of the rule, > 1 (default 2: adapt above 2 x target or below target / 2)
    :param adaptive_lr_factor: The multiplier of the rule, > 1 (default 1.5)
    :param adaptive_lr_min: Lower bound of the adapted rate, > 0 (default 1e-5)
    :param adaptive_lr_max: Upper bound of the adapted rate, > adaptive_lr_min (default 1e-2)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    #: the class a ``policy`` given as a class must subclass (the masked algorithms: sb3-contrib's maskable policy)
    policy_base: ClassVar[type[BasePolicy]] = ActorCriticPolicy
    #: how the loop calls the policy (the lean path for exact classes, else their public methods); the masked
    #: algorithms use a subclass with a lean path for sb3-contrib's exact maskable policies
    policy_calls_class: ClassVar[type[PolicyCalls]] = PolicyCalls
    policy: ActorCriticPolicy
    rollout_buffer: RolloutBuffer

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule,
        n_steps: int,
        batch_size: int | None,
        n_epochs: int,
        gamma: float,
        gae_lambda: float,
        clip_range_vf: float | Schedule | None,
        normalize_advantage: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float,
        use_sde: bool,
        sde_sample_freq: int,
        rollout_buffer_class: type[RolloutBuffer] | None,
        rollout_buffer_kwargs: dict[str, Any] | None,
        target_kl: float | None,
        stats_window_size: int,
        tensorboard_log: str | None,
        policy_kwargs: dict[str, Any] | None,
        verbose: int,
        seed: int | None,
        device: th.device | str,
        supported_action_spaces: tuple[type[spaces.Space], ...] = SUPPORTED_ACTION_SPACES,
        _init_setup_model: bool = True,
        normalize_advantage_scope: str = "minibatch",
        value_clip_form: str = "prediction",
        recompute_advantage: bool = False,
        adaptive_lr_target_kl: float | None = None,
        adaptive_lr_every: str = "minibatch",
        adaptive_lr_kl_margin: float = 2.0,
        adaptive_lr_factor: float = 1.5,
        adaptive_lr_min: float = 1e-5,
        adaptive_lr_max: float = 1e-2,
    ):
        owner = type(self).__name__
        # Checks that need no environment come first, so that bad input fails before an env is built.
        learning_rate = check_schedule("learning_rate", learning_rate, owner=owner)  # type: ignore[assignment]
        n_steps = check_int("n_steps", n_steps, minimum=1, owner=owner)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1, owner=owner)
        n_epochs = check_int("n_epochs", n_epochs, minimum=1, owner=owner)
        gamma = check_float("gamma", gamma, low=0.0, high=1.0, owner=owner)
        gae_lambda = check_float("gae_lambda", gae_lambda, low=0.0, high=1.0, owner=owner)
        clip_range_vf = check_schedule("clip_range_vf", clip_range_vf, allow_none=True, owner=owner)
        ent_coef = check_float("ent_coef", ent_coef, low=0.0, owner=owner)
        vf_coef = check_float("vf_coef", vf_coef, low=0.0, owner=owner)
        max_grad_norm = check_float("max_grad_norm", max_grad_norm, low=0.0, low_open=True, owner=owner)
        sde_sample_freq = check_int("sde_sample_freq", sde_sample_freq, minimum=-1, owner=owner)
        if target_kl is not None:
            target_kl = check_float("target_kl", target_kl, low=0.0, low_open=True, owner=owner)
        stats_window_size = check_int("stats_window_size", stats_window_size, minimum=1, owner=owner)
        verbose = check_int("verbose", verbose, minimum=0, owner=owner)
        if seed is not None:
            seed = check_int("seed", seed, minimum=0, owner=owner)
        normalize_advantage_scope = check_choice(
            "normalize_advantage_scope", normalize_advantage_scope, ADVANTAGE_SCOPES, owner=owner
        )
        value_clip_form = check_choice("value_clip_form", value_clip_form, VALUE_CLIP_FORMS, owner=owner)
        recompute_advantage = check_bool("recompute_advantage", recompute_advantage, owner=owner)
        adaptive_lr = check_adaptive_lr(
            target_kl=adaptive_lr_target_kl,
            every=adaptive_lr_every,
            kl_margin=adaptive_lr_kl_margin,
            factor=adaptive_lr_factor,
            lr_min=adaptive_lr_min,
            lr_max=adaptive_lr_max,
            owner=owner,
        )
        initial_lr = _initial_adaptive_lr(owner, learning_rate, adaptive_lr)
        _check_argument_types(
            owner,
            self.policy_aliases,
            self.policy_base,
            policy=policy,
            normalize_advantage=normalize_advantage,
            use_sde=use_sde,
            policy_kwargs=policy_kwargs,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            rollout_buffer_class=rollout_buffer_class,
            tensorboard_log=tensorboard_log,
            device=device,
        )

        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            # checked below with a ValueError that names the parameter, rather than SB3's assert
            supported_action_spaces=None,
        )
        if self.env is not None:
            if not isinstance(self.action_space, supported_action_spaces):
                names = ", ".join(space.__name__ for space in supported_action_spaces)
                raise ValueError(f"{owner}: the action space of `env` must be one of {names}; got {self.action_space}")
            buffer_size = self.env.num_envs * n_steps
            if normalize_advantage:
                # SB3's PPO asserts these two; the wording is SB3's
                if batch_size is not None and batch_size < 2:
                    raise ValueError(
                        f"{owner}: `batch_size` must be greater than 1 with `normalize_advantage=True`, got {batch_size}. "
                        "See https://github.com/DLR-RM/stable-baselines3/issues/440"
                    )
                if buffer_size < 2:
                    raise ValueError(
                        f"{owner}: `n_steps * n_envs` must be greater than 1 with `normalize_advantage=True`. "
                        f"Currently n_steps={n_steps} and n_envs={self.env.num_envs}"
                    )
            if batch_size is not None and buffer_size % batch_size > 0:
                # SB3's warning: the last minibatch of each epoch is smaller (with batch_size > n_steps * n_envs,
                # the only one: each epoch is one step on the whole rollout), as rl_zoo3's configs rely on
                warnings.warn(
                    f"You have specified a mini-batch size of {batch_size},"
                    f" but because the `RolloutBuffer` is of size `n_steps * n_envs = {buffer_size}`,"
                    f" after every {buffer_size // batch_size} untruncated mini-batches,"
                    f" there will be a truncated mini-batch of size {buffer_size % batch_size}\n"
                    f"We recommend using a `batch_size` that is a factor of `n_steps * n_envs`.\n"
                    f"Info: (n_steps={n_steps} and n_envs={self.env.num_envs})",
                    stacklevel=3,
                )
        #: saved with the model, so that load() can refuse a file of another algorithm
        self._algorithm_name = type(self).__name__
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = target_kl
        self.normalize_advantage_scope = normalize_advantage_scope
        self.value_clip_form = value_clip_form
        self.recompute_advantage = recompute_advantage
        self.adaptive_lr_target_kl: float | None = adaptive_lr["target_kl"]
        self.adaptive_lr_every: str = adaptive_lr["every"]
        self.adaptive_lr_kl_margin: float = adaptive_lr["kl_margin"]
        self.adaptive_lr_factor: float = adaptive_lr["factor"]
        self.adaptive_lr_min: float = adaptive_lr["lr_min"]
        self.adaptive_lr_max: float = adaptive_lr["lr_max"]
        # Training state lives here, not in _setup_model(): load() restores __dict__ and then calls _setup_model().
        #: the adapted learning rate of the next gradient step (None when the rate follows `learning_rate`)
        self.current_learning_rate: float | None = initial_lr
        #: the KL the adaptive rule last used (logged as train/adaptive_lr_kl)
        self._adaptive_lr_kl = float("nan")
        #: (step, env, terminal observation, reward before bootstrapping) of this rollout's truncations, for
        #: recompute_advantage
        self._truncations: list[tuple[int, int, Any, float]] = []

    # ------------------------------------------------------------------ set-up

    def _setup_model(self) -> None:
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = DictTensorRolloutBuffer if dict_obs else TensorRolloutBuffer
        else:
            self._check_rollout_buffer_class(self.rollout_buffer_class, dict_obs)
        # The policy is built with the fused-Adam choice and the buffer with the algorithm's own arguments, while
        # `policy_kwargs` and `rollout_buffer_kwargs` (what save() stores and load() compares) stay what the user passed.
        user_policy_kwargs, user_buffer_kwargs = self.policy_kwargs, self.rollout_buffer_kwargs
        self.policy_kwargs = with_fast_optimizer(user_policy_kwargs, self.device)
        self.rollout_buffer_kwargs = {**user_buffer_kwargs, **self._rollout_buffer_extra_kwargs()}
        try:
            super()._setup_model()
        finally:
            self.policy_kwargs, self.rollout_buffer_kwargs = user_policy_kwargs, user_buffer_kwargs
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    @property
    def uses_critic(self) -> bool:
        """Whether the value function is trained (value loss) and used (GAE, bootstrapping). Default: yes."""
        return True

    # ------------------------------------------------------------------ hooks

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        """The class a user's ``rollout_buffer_class`` must subclass (None: any ``RolloutBuffer`` of the right kind)."""
        return None

    def _check_rollout_buffer_class(self, buffer_class: type[RolloutBuffer], dict_obs: bool) -> None:
        """A user's ``rollout_buffer_class`` must fit the observation space and the algorithm (a clear error, not one from
        deep inside SB3 at the first rollout)."""
        owner = type(self).__name__
        name = buffer_class.__name__
        if dict_obs != issubclass(buffer_class, DictRolloutBuffer):
            kind = "Dict" if dict_obs else "non-Dict"
            wanted = "a DictRolloutBuffer subclass" if dict_obs else "a RolloutBuffer subclass that is not a DictRolloutBuffer"
            raise ValueError(f"{owner}: with a {kind} observation space, `rollout_buffer_class` must be {wanted}; got {name}")
        required = self._required_rollout_buffer(dict_obs)
        if required is not None and not issubclass(buffer_class, required):
            raise ValueError(
                f"{owner}: `rollout_buffer_class` must be a subclass of {required.__module__}.{required.__name__} "
                f"{self._required_rollout_buffer_reason()}; got {name}"
            )

    def _required_rollout_buffer_reason(self) -> str:
        """Why :meth:`_required_rollout_buffer` is required (completes the error message)."""
        return ""

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        """Keyword arguments the algorithm itself passes to its rollout buffer, beside the user's ``rollout_buffer_kwargs``."""
        return {}

    def _on_update_start(self) -> None:
        """Called once at the start of :meth:`train`, before any epoch: evaluate schedules here."""

    def _policy_loss(
        self,
        batch: Any,
        outputs: PolicyOutputs,
        log_prob: th.Tensor,
        ratio: th.Tensor,
        advantages: th.Tensor,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """The policy-loss term of one minibatch (to be minimised).

        :param batch: the minibatch from the rollout buffer (``old_log_prob``, ``advantages``, ... and extra fields)
        :param outputs: the current policy's outputs on ``batch.observations`` (``outputs.distribution``: the action
            distribution; on SB3's public path it costs a ``policy.get_distribution`` call, so use it only when needed)
        :param log_prob: log pi_theta(a_t|s_t) of the stored actions
        :param ratio: r_t(theta) = pi_theta(a_t|s_t) / pi_old(a_t|s_t)
        :param advantages: the advantages, normalised when ``normalize_advantage``
        :return: the scalar loss and extra statistics (0-dim tensors, detached) to average and log as ``train/<key>``
        """
        raise NotImplementedError

    #: the loss methods that :meth:`_numpy_policy_loss` computes in NumPy: where a subclass (or the object itself)
    #: replaces one of them, the update runs in torch and calls it (see :meth:`_numpy_update`)
    _numpy_loss_replaces: ClassVar[tuple[str, ...]] = ("_policy_loss",)

    def _numpy_policy_loss(
        self, batch: NumpyBatch, dist: NumpyDistribution, log_prob: np.ndarray, ratio: np.ndarray, advantages: np.ndarray
    ) -> tuple[float, np.ndarray, dict[str, float]] | None:
        """:meth:`_policy_loss` in NumPy, for the NumPy update (:mod:`sb3_ppo_variants.common.numpy_update`).

        :return: the loss, its gradient with respect to ``log_prob`` (per sample; through ``ratio`` and any direct
            use; a gradient with respect to the distribution itself goes through ``dist``'s ``*_backward`` methods),
            and the extra statistics of :meth:`_policy_loss`; None (the default): no NumPy form, the update runs in
            torch
        """
        return None

    def _on_update_end(self) -> None:
        """Called once after all epochs of :meth:`train` (KLPenaltyPPO adapts beta here)."""

    def _rollout_extras(self, outputs: PolicyOutputs) -> dict[str, Any]:
        """Extra keyword arguments for ``rollout_buffer.add`` computed from the rollout step's policy outputs."""
        return {}

    def _rollout_policy_kwargs(self, env: VecEnv) -> dict[str, Any]:
        """Extra keyword arguments of the policy calls of one rollout step (``policy(obs, **kwargs)``,
        ``get_distribution``), stored with the step too (``rollout_buffer.add(..., **kwargs)``): the masked algorithms
        return ``{"action_masks": ...}``, sb3-contrib's convention for both. Default: none."""
        return {}

    def _minibatch_policy_kwargs(self, batch: Any) -> dict[str, Any]:
        """Extra keyword arguments of the policy calls on one minibatch (``evaluate_actions``, ``get_distribution``):
        the masked algorithms return the minibatch's stored ``action_masks``. Default: none."""
        return {}

    def _bootstrap_truncations(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Time-limit truncations: add gamma * V(terminal observation) to the reward, in place (SB3's treatment).

        SB3 calls ``predict_values`` once per truncated env; with a policy that is exactly SB3's (the rule of
        :mod:`sb3_ppo_variants.common.policies`) the truncated envs of a step share one call, the same values.
        With ``recompute_advantage`` the terminal observations and the rewards before bootstrapping are kept (for this
        rollout), so that the bootstrapped value can be recomputed with the current critic as well.
        """
        if self.recompute_advantage:
            self._remember_truncations(rewards, dones, infos)
        truncated = [
            idx
            for idx, done in enumerate(dones)
            if done and infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False)
        ]
        if not truncated:
            return
        if len(truncated) > 1 and is_exact_sb3_policy(self.policy):
            terminal_obs = _stack_observations([infos[idx]["terminal_observation"] for idx in truncated])
            with th.no_grad():
                values = self.policy.predict_values(self.policy.obs_to_tensor(terminal_obs)[0])  # type: ignore[arg-type]
            rewards[truncated] += (self.gamma * values[:, 0]).cpu().numpy()
            return
        for idx in truncated:
            terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
            with th.no_grad():
                terminal_value = self.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
            rewards[idx] += self.gamma * terminal_value

    def _remember_truncations(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """For ``recompute_advantage``: this step's truncated envs, their terminal observation and raw reward."""
        if self.rollout_buffer.pos == 0:
            self._truncations = []  # the first step of a new rollout
        for idx, done in enumerate(dones):
            if done and infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False):
                terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                self._truncations.append((self.rollout_buffer.pos, idx, terminal_obs, float(rewards[idx])))

    # ------------------------------------------------------------------ rollouts

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` steps per env with the current policy into ``rollout_buffer``.

        The same steps, random draws and callback calls as SB3's ``OnPolicyAlgorithm.collect_rollouts``, plus the
        hooks :meth:`_rollout_extras` and :meth:`_bootstrap_truncations`, and no critic pass when
        :attr:`uses_critic` is False.

        :return: True if ``n_rollout_steps`` were collected, False if a callback stopped training.
        """
        assert self._last_obs is not None, "No previous observation was provided"
        structure = PolicyStructure(self.policy)  # the fast-path checks of this rollout read this one walk
        set_training_mode(self.policy, False, structure)
        calls = self.policy_calls_class(self.policy, structure, self._structure_cache())
        # SB3's collect_rollouts runs the policy under no_grad; the lean path may use inference mode (faster).
        # One instance of each context manager, entered at every step (cheaper than building them per step).
        grad_mode = th.inference_mode() if calls.lean else th.no_grad()
        no_validation = no_distribution_validation()
        on_cpu = self.device.type == "cpu"
        uses_critic = self.uses_critic
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with grad_mode, no_validation:
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                policy_kwargs = self._rollout_policy_kwargs(env)
                outputs = calls.act(obs_tensor, with_values=uses_critic, **policy_kwargs)
                actions_tensor, values, log_probs = outputs.actions, outputs.values, outputs.log_prob
                extras = self._rollout_extras(outputs)
            if values is None:
                values = th.zeros((env.num_envs, 1), device=self.device)
            assert actions_tensor is not None
            # SB3: actions.cpu().numpy() (a view of the tensor's memory on the CPU), then reshaped
            actions: np.ndarray = actions_tensor.numpy() if on_cpu else actions_tensor.cpu().numpy()
            actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[arg-type,misc]

            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            _check_finite(new_obs, rewards, self.num_timesteps)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            self._bootstrap_truncations(rewards, dones, infos)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                **policy_kwargs,
                **extras,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        with th.no_grad():
            if uses_critic:
                values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
            else:
                values = th.zeros((env.num_envs, 1), device=self.device)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """One policy update on the collected rollout: ``n_epochs`` passes of minibatch gradient steps."""
        with no_distribution_validation():
            self._train()

    def _train(self) -> None:
        structure = PolicyStructure(self.policy)  # the fast-path checks of this update read this one walk
        set_training_mode(self.policy, True, structure)
        if self.current_learning_rate is None:
            self._update_learning_rate(self.policy.optimizer)
        else:
            self._set_learning_rate(self.current_learning_rate)
        progress = self._current_progress_remaining
        clip_range_vf = self.clip_range_vf(progress) if self.clip_range_vf is not None else None  # type: ignore[operator]
        self._on_update_start()
        # the fast paths are chosen once per update (see common/policies.py and common/optimizer.py)
        calls = self.policy_calls_class(self.policy, structure, self._structure_cache())
        clipped_step = ClippedAdamStep(self.policy, self.policy.optimizer, structure.parameters)
        numpy_gradient = self._numpy_update(calls)

        # Statistics stay on the device as 0-dim tensors and are read back once, at the end (no per-minibatch sync).
        stats: dict[str, list[Any]] = defaultdict(list)  # 0-dim tensors (torch loop) or floats (NumPy update)
        grad_norms: list[th.Tensor] = []
        approx_kl_divs: list[th.Tensor] = []
        loss: th.Tensor | None = None
        continue_training = True
        adapt_every_minibatch = self.current_learning_rate is not None and self.adaptive_lr_every == "minibatch"
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            if epoch > 0 and self.recompute_advantage:
                self._recompute_advantages()
            if epoch == 0 or self.recompute_advantage:
                self._normalize_batch_advantages()
            for batch in self.rollout_buffer.get(self.batch_size):
                if numpy_gradient is None:
                    loss, approx_kl_div = self._minibatch_loss(batch, calls, clip_range_vf, stats)
                else:  # the same loss, its gradients written into .grad
                    loss, approx_kl_div = self._numpy_minibatch_loss(batch, numpy_gradient, clip_range_vf, stats)
                approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div.item() > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div.item():.2f}")
                    break
                if adapt_every_minibatch:
                    # rsl_rl's order: the KL of this minibatch before the step sets the rate of this very step
                    self._adapt_learning_rate(approx_kl_div.item())

                if numpy_gradient is None:
                    clipped_step.zero_grad()
                    loss.backward()
                else:  # where torch runs its backward: after the early stop, so .grad holds the last step's
                    numpy_gradient.backward()
                flat_grads = None if numpy_gradient is None else numpy_gradient.gradients.flat
                grad_norms.append(clipped_step(self.max_grad_norm, flat_grads))

            self._n_updates += 1
            if not continue_training:
                break

        self._check_update_finite(grad_norms)
        if self.current_learning_rate is not None:
            self.logger.record("train/learning_rate", self.current_learning_rate)  # the rate of the last step
            if self.adaptive_lr_every == "update":
                self._adapt_learning_rate(self._batch_approx_kl())  # the rate of the next update
            self.logger.record("train/adaptive_lr_kl", self._adaptive_lr_kl)
        self._on_update_end()
        self._record_update_logs(stats, approx_kl_divs, loss, clip_range_vf)

    # ------------------------------------------------------------------ controls (docs/controls.md)

    def _set_learning_rate(self, learning_rate: float) -> None:
        for group in self.policy.optimizer.param_groups:
            group["lr"] = learning_rate

    def _adapt_learning_rate(self, kl: float) -> None:
        """One application of the KL-adaptive rule: the next rate from ``kl``, set on the optimizer."""
        assert self.current_learning_rate is not None and self.adaptive_lr_target_kl is not None
        self._adaptive_lr_kl = kl
        self.current_learning_rate = adapt_learning_rate(
            self.current_learning_rate,
            kl,
            self.adaptive_lr_target_kl,
            self.adaptive_lr_kl_margin,
            self.adaptive_lr_factor,
            self.adaptive_lr_min,
            self.adaptive_lr_max,
        )
        self._set_learning_rate(self.current_learning_rate)

    def _chunk_size(self) -> int:
        buffer = self.rollout_buffer
        return max(self.batch_size or buffer.buffer_size * buffer.n_envs, 4096)

    def _batch_approx_kl(self) -> float:
        """Mean approximate KL[pi_rollout, pi_now] over the whole batch, the estimator of ``train/approx_kl``."""
        discrete = isinstance(self.action_space, spaces.Discrete)
        total, count = 0.0, 0
        with th.no_grad():
            for batch in samples_in_order(self.rollout_buffer, self._chunk_size()):
                actions = batch.actions.long().flatten() if discrete else batch.actions
                distribution = self.policy.get_distribution(batch.observations, **self._minibatch_policy_kwargs(batch))
                log_ratio = distribution.log_prob(actions) - batch.old_log_prob
                total += float(((th.exp(log_ratio) - 1) - log_ratio).sum())
                count += len(log_ratio)
        return total / count

    def _normalize_batch_advantages(self) -> None:
        """``normalize_advantage_scope="batch"``: normalise the advantages of the whole rollout, in the buffer."""
        if not (self.normalize_advantage and self.normalize_advantage_scope == "batch"):
            return
        buffer = self.rollout_buffer
        buffer.advantages[...] = normalize_advantages(buffer.advantages)
        _drop_cached_tensors(buffer)

    def _recompute_advantages(self) -> None:
        """``recompute_advantage``: the critic's values of the whole batch, then GAE with them (Tianshou).

        As in Tianshou, the recomputed values also become the ``old_values`` of value clipping. Truncated episodes
        had ``gamma * V(terminal observation)`` added to their last reward during the rollout (SB3's treatment);
        that value is recomputed too. The old log-probabilities stay those of the rollout policy.
        """
        buffer = self.rollout_buffer
        assert buffer.generator_ready, "recompute after the first epoch, once the buffer is flattened"
        n_steps, n_envs = buffer.buffer_size, buffer.n_envs
        with th.no_grad():
            flat_values = th.cat(
                [
                    self.policy.predict_values(batch.observations).flatten()
                    for batch in samples_in_order(buffer, self._chunk_size())
                ]
            )
            last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))  # type: ignore[arg-type]
            for step, env, terminal_obs, raw_reward in self._truncations:
                buffer.rewards[step, env] = raw_reward + self.gamma * float(self.policy.predict_values(terminal_obs)[0])
        # the flattened buffer is env-major (SB3's swap_and_flatten): index env * n_steps + step
        values = flat_values.cpu().numpy().reshape(n_envs, n_steps).T.copy()
        advantages, returns = compute_gae(
            buffer.rewards,
            values,
            buffer.episode_starts,
            last_values.flatten().cpu().numpy(),
            np.asarray(self._last_episode_starts),
            self.gamma,
            self.gae_lambda,
        )
        buffer.values[...] = values.T.reshape(buffer.values.shape)
        buffer.advantages[...] = advantages.T.reshape(buffer.advantages.shape)
        buffer.returns[...] = returns.T.reshape(buffer.returns.shape)
        _drop_cached_tensors(buffer)

    def _minibatch_loss(
        self, batch: Any, calls: PolicyCalls, clip_range_vf: float | None, stats: dict[str, list[th.Tensor]]
    ) -> tuple[th.Tensor, th.Tensor]:
        """Loss of one minibatch: ``policy term + c2 * entropy term + c1 * value term``, and the approximate KL.

        Appends the detached loss terms to ``stats``.
        """
        actions = batch.actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else batch.actions
        # with a zero coefficient the entropy is only logged: no graph, no backward through it (lean path)
        outputs = calls.evaluate(
            batch.observations,
            actions,
            with_values=self.uses_critic,
            entropy_grad=self.ent_coef != 0,
            **self._minibatch_policy_kwargs(batch),
        )
        log_prob, entropy, values = outputs.log_prob, outputs.entropy, outputs.values

        advantages = batch.advantages
        # normalising a single sample would divide by a zero std (SB3 issue #325)
        if self.normalize_advantage and self.normalize_advantage_scope == "minibatch" and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        log_ratio = log_prob - batch.old_log_prob
        ratio = th.exp(log_ratio)
        policy_loss, extra_stats = self._policy_loss(batch, outputs, log_prob, ratio, advantages)

        # entropy bonus; where the distribution has no analytical entropy, -log_prob estimates it
        entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
        loss = policy_loss + self.ent_coef * entropy_loss if self.ent_coef != 0 else policy_loss
        if values is not None:
            # value loss to the TD(lambda) return (or the reward-to-go for REINFORCE's baseline)
            value_loss = value_function_loss(
                values.flatten(), batch.old_values, batch.returns, clip_range_vf, self.value_clip_form
            )
            loss = loss + self.vf_coef * value_loss
            stats["value_loss"].append(value_loss.detach())

        stats["policy_gradient_loss"].append(policy_loss.detach())
        stats["entropy_loss"].append(entropy_loss.detach())
        for key, value in extra_stats.items():
            stats[key].append(value)

        # approximate KL[old, new] with the low-variance estimator (J. Schulman's blog, SB3 issue #417)
        with th.no_grad():
            approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio)
        return loss, approx_kl_div

    def _numpy_update(self, calls: PolicyCalls) -> NumpyPolicyGradient | None:
        """The NumPy update (:mod:`sb3_ppo_variants.common.numpy_update`) for this update, or None: the torch loop.

        It stands in for :meth:`_minibatch_loss`, the methods named in :attr:`_numpy_loss_replaces` and the policy's
        ``evaluate_actions``, so it runs only where all of them are exactly ours / SB3's: the lean path applies (exact
        policy, no module hooks, no gradient hook on a parameter, no frozen parameter, no anomaly detection), the policy
        is an ``MlpPolicy`` the NumPy step supports, on the CPU, the optimizer is the
        default fused Adam (the NumPy arithmetic rounds differently: with SB3's exact optimizer settings the torch
        loop runs, bit for bit), and no loss method is replaced, in a subclass or
        on the object, since the class that wrote :meth:`_numpy_policy_loss`.
        """
        if not (calls.lean and self.device.type == "cpu" and rounding_fast_paths_allowed(self.policy.optimizer)):
            return None
        # autograd's own features: gradient hooks on a parameter, anomaly detection
        structure = calls.structure
        if th.is_anomaly_enabled() or structure.tensor_hooks:
            return None
        owner = next(klass for klass in type(self).__mro__ if "_numpy_policy_loss" in vars(klass))
        names = ("_minibatch_loss", "_minibatch_policy_kwargs", "_numpy_minibatch_loss", "_numpy_policy_loss")
        for name in (*names, *self._numpy_loss_replaces):
            if name in vars(self) or getattr(type(self), name) is not getattr(owner, name):
                return None
        if structure.frozen:
            return None  # a frozen parameter: autograd leaves it without a gradient, and Adam leaves it as it is
        # its construction checks every part of the policy: kept while the policy's structure is the same (a module
        # or parameter replaced, .to(...), param.data = ... build it again)
        policy = self.policy
        gradient = self._structure_cache().get("numpy_update", structure, lambda: numpy_policy_gradient(policy))
        if gradient is not None:
            gradient.start_update()
        return gradient

    def _numpy_minibatch_loss(
        self, batch: Any, gradient: NumpyPolicyGradient, clip_range_vf: float | None, stats: dict[str, list[Any]]
    ) -> tuple[th.Tensor, th.Tensor]:
        """:meth:`_minibatch_loss` in NumPy: the same loss, statistics and approximate KL, with the per-sample
        gradients kept in ``gradient`` for its :meth:`~NumpyPolicyGradient.backward`, which writes the parameters'
        ``.grad`` (:meth:`_numpy_update` says when it runs)."""
        data = NumpyBatch(batch)
        values, dist = gradient.forward(data.observations, with_values=self.uses_critic)
        discrete = isinstance(self.action_space, spaces.Discrete)
        actions = data.actions.reshape(-1).astype(np.int64) if discrete else data.actions
        log_prob = dist.log_prob(actions)

        advantages = data.advantages
        if self.normalize_advantage and self.normalize_advantage_scope == "minibatch" and len(advantages) > 1:
            advantages = numpy_losses.normalize_minibatch_advantages(advantages)
        log_ratio = log_prob - data.old_log_prob
        ratio = np.exp(log_ratio)
        policy_terms = self._numpy_policy_loss(data, dist, log_prob, ratio, advantages)
        assert policy_terms is not None, "_numpy_update checked that the algorithm has a NumPy loss"
        policy_loss, grad_log_prob, extra_stats = policy_terms
        dist.log_prob_backward(actions, grad_log_prob)

        entropy = dist.entropy()
        entropy_loss = -float(entropy.mean())
        loss = policy_loss
        if self.ent_coef != 0:
            loss += self.ent_coef * entropy_loss
            dist.entropy_backward(entropy, np.full_like(entropy, -self.ent_coef / len(entropy)))
        grad_values = None
        if values is not None:
            value_loss, grad_values = numpy_losses.value_function_loss(
                values, data.old_values, data.returns, clip_range_vf, self.value_clip_form
            )
            loss += self.vf_coef * value_loss
            grad_values *= self.vf_coef
            stats["value_loss"].append(value_loss)
        gradient.grad_values = grad_values  # the backward pass runs in _train, where the torch loop runs its own

        # the statistics as floats (no tensor to build per value: _record_update_logs averages them in float64)
        stats["policy_gradient_loss"].append(policy_loss)
        stats["entropy_loss"].append(entropy_loss)
        for key, value in extra_stats.items():
            stats[key].append(value)
        approx_kl_div = float(((ratio - 1) - log_ratio).mean())
        return th.tensor(loss), th.tensor(approx_kl_div)

    def _record_update_logs(
        self,
        stats: dict[str, list[Any]],
        approx_kl_divs: list[th.Tensor],
        loss: th.Tensor | None,
        clip_range_vf: float | None,
    ) -> None:
        """Log SB3's ``train/`` keys (means over the minibatches; ``approx_kl`` over the last epoch as SB3 does).

        ``stats`` holds 0-dim tensors (the torch loop: averaged in torch, one read-back for all the means) or floats
        (the NumPy update: averaged in float64, as SB3 averages its ``.item()`` values)."""
        means: dict[str, Any] = {}
        for key, values in stats.items():
            if values:
                tensors = isinstance(values[0], th.Tensor)
                means[f"train/{key}"] = th.stack(values).float().mean() if tensors else sum(values) / len(values)
        if approx_kl_divs:
            means["train/approx_kl"] = th.stack(approx_kl_divs).mean()
        if loss is not None:
            means["train/loss"] = loss.detach()
        tensor_means = [value for value in means.values() if isinstance(value, th.Tensor)]
        read_back = iter(th.stack(tensor_means).tolist() if tensor_means else [])
        for key, value in means.items():
            self.logger.record(key, next(read_back) if isinstance(value, th.Tensor) else value)
        if self.uses_critic:
            self.logger.record(
                "train/explained_variance",
                explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()),
            )
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def _check_update_finite(self, grad_norms: list[th.Tensor]) -> None:
        """Stop with a clear message when an update went non-finite (one host sync per update).

        The gradient norm of every step is computed anyway for the clipping: a NaN/inf loss, or parameters made
        NaN/inf by an earlier step, give a non-finite norm, so checking the norms covers both without touching
        the parameters.
        """
        if len(grad_norms) <= 8:  # a few steps (A2C-sized updates): reading each norm is cheaper than a stack
            finite = all(math.isfinite(norm.item()) for norm in grad_norms)
        else:
            finite = bool(th.isfinite(th.stack(grad_norms)).all())
        if not finite:
            raise FloatingPointError(
                f"{type(self).__name__}: training diverged at update {self._n_updates} (timestep {self.num_timesteps}): "
                "a loss, gradient or network parameter is NaN or inf. Lower `learning_rate` or `max_grad_norm`, or "
                "scale the rewards/observations (e.g. VecNormalize)."
            )

    # ------------------------------------------------------------------ save / load

    def _excluded_save_params(self) -> list[str]:
        # the terminal observations of the last rollout are scratch space of recompute_advantage, not state; the
        # fast paths' objects built from the policy (the NumPy rollout step and update) are rebuilt
        return [*super()._excluded_save_params(), "_truncations", "_fast_path_cache"]

    def _structure_cache(self) -> StructureCache:
        """The fast paths' objects built from the policy's structure (the NumPy rollout step and update): rebuilt
        when the policy's modules or parameters change, and after loading (not saved)."""
        cache = getattr(self, "_fast_path_cache", None)
        if cache is None:
            cache = self._fast_path_cache = StructureCache()
        return cache

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfPolicyGradientAlgorithm],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfPolicyGradientAlgorithm:
        """Load a model saved with :meth:`save` (see SB3's ``BaseAlgorithm.load`` for the parameters).

        Before unpickling anything, the file is checked: it must be a complete zip archive holding a saved SB3 model,
        and a model saved by another of our algorithms is refused (SB3 would silently load it into this class).
        ``policy_kwargs``, if given, must equal the stored ones, as in SB3; a file of release 0.1.0, which stored the
        fused-Adam choice inside ``policy_kwargs``, also accepts the ``policy_kwargs`` it was built with.
        Loading runs pickled code, as in SB3: only load files from a trusted source.
        """
        _check_model_file(cls.__name__, path)
        requested = kwargs.pop("policy_kwargs", _NOT_GIVEN)
        model = super().load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        if requested is not _NOT_GIVEN and requested != model.policy_kwargs:
            if not _stored_by_release_0_1(model.policy_kwargs, requested):
                # SB3's check and wording
                raise ValueError(
                    f"The specified policy kwargs do not equal the stored policy kwargs."
                    f"Stored kwargs: {model.policy_kwargs}, specified kwargs: {requested}"
                )
            model.policy_kwargs = requested
        return model

    # ------------------------------------------------------------------ learn

    def learn(
        self: SelfPolicyGradientAlgorithm,
        total_timesteps: int | float,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPolicyGradientAlgorithm:
        """Train for ``total_timesteps`` environment steps (an int, or a float such as ``1e6``).

        :param total_timesteps: The total number of samples (env steps) to train on, > 0
        :param callback: callback(s) called at every step with state of the algorithm
        :param log_interval: The number of rollouts before logging, >= 1
        :param tb_log_name: the name of the run for TensorBoard logging (default: the class name)
        :param reset_num_timesteps: whether or not to reset the current timestep number (used in logging)
        :param progress_bar: Display a progress bar using tqdm and rich
        :return: the trained model
        """
        owner = type(self).__name__
        total = check_float("total_timesteps", total_timesteps, low=0.0, low_open=True, owner=owner)
        if not math.isclose(total, round(total)):
            raise ValueError(f"{owner}: `total_timesteps` must be a whole number of steps, got {total_timesteps!r}")
        log_interval = check_int("log_interval", log_interval, minimum=1, owner=owner)
        return super().learn(
            total_timesteps=round(total),
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or owner,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _initial_adaptive_lr(owner: str, learning_rate: Any, adaptive_lr: dict[str, Any]) -> float | None:
    """The first rate of the KL-adaptive learning rate (None when it is off); the rule replaces a schedule."""
    if adaptive_lr["target_kl"] is None:
        return None
    initial = float(learning_rate(1.0)) if callable(learning_rate) else float(learning_rate)
    if callable(learning_rate):
        warnings.warn(
            f"{owner}: `adaptive_lr_target_kl` replaces the `learning_rate` schedule: its value at the start, {initial}, "
            "is the initial rate, then the KL rule alone sets the rate",
            stacklevel=4,
        )
    if not adaptive_lr["lr_min"] <= initial <= adaptive_lr["lr_max"]:
        raise ValueError(
            f"{owner}: with the adaptive learning rate, `learning_rate` ({initial}) must lie within "
            f"[`adaptive_lr_min`, `adaptive_lr_max`] = [{adaptive_lr['lr_min']}, {adaptive_lr['lr_max']}]"
        )
    return initial


def _drop_cached_tensors(buffer: RolloutBuffer) -> None:
    """Our buffers cache torch copies of the flattened fields: drop them after the numpy arrays were rewritten."""
    drop = getattr(buffer, "_drop_tensors", None)
    if drop is not None:
        drop()


def _stack_observations(observations: list[Any]) -> Any:
    """A batch of single-env observations (arrays, or dicts of arrays) with a leading batch dimension."""
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def _check_finite(observations: Any, rewards: np.ndarray, timestep: int) -> None:
    """Refuse NaN/inf rewards or (floating-point) observations coming from the environment.

    This is the check of SB3's ``VecCheckNan`` wrapper, built in: a non-finite value would otherwise flow into the
    returns and the losses and turn the network into NaN later, far from its cause.
    """
    if not np.isfinite(rewards).all():
        raise ValueError(f"The environment returned a non-finite reward at timestep {timestep}: {rewards}")
    arrays = observations.values() if isinstance(observations, dict) else (observations,)
    for array in arrays:
        if isinstance(array, np.ndarray) and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"The environment returned a non-finite observation at timestep {timestep}")


_NOT_GIVEN = object()


def _stored_by_release_0_1(stored: dict[str, Any], requested: Any) -> bool:
    """Whether ``stored`` is ``requested`` with the fused/foreach Adam choice release 0.1.0 wrote into policy_kwargs."""
    if not isinstance(requested, dict):
        return False
    optimizer_kwargs = requested.get("optimizer_kwargs")
    if optimizer_kwargs is None:
        optimizer_kwargs = {"eps": 1e-5} if requested.get("optimizer_class", th.optim.Adam) is th.optim.Adam else {}
    return any(
        stored == {**requested, "optimizer_kwargs": {**optimizer_kwargs, implementation: True}}
        for implementation in ("fused", "foreach")
    )


def _check_model_file(class_name: str, path: str | pathlib.Path | io.BufferedIOBase) -> None:
    """Clear errors for a path that is not a complete saved model, or holds another algorithm's model."""
    if not isinstance(path, (str, pathlib.Path)):
        return  # a file object: SB3 reads it as it is
    path = str(path)
    if not os.path.exists(path) and os.path.exists(path + ".zip"):
        path += ".zip"
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r} (nor with '.zip' added): No such file or directory")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names or "policy.pth" not in names:
                raise ValueError(
                    f"{path!r} is not a complete saved model: the 'data' or 'policy.pth' entry is missing "
                    "(truncated file, or not a model)"
                )
            if archive.testzip() is not None:
                raise ValueError(f"{path!r} is corrupted (CRC check failed)")
            data = json.loads(archive.read("data"))
    except zipfile.BadZipFile as exc:
        # SB3's wording ("wasn't a zip-file") kept for code that matches it
        raise ValueError(
            f"Error: the file {path} wasn't a zip-file: not a saved model (not a zip archive, or a truncated one: {exc})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} is not a saved model: its 'data' entry is not valid JSON ({exc})") from None
    saved = data.get("_algorithm_name")
    if saved is None:
        warnings.warn(f"{path!r} was not saved by sb3-ppo-variants; loading it into {class_name} as SB3 would", stacklevel=3)
    elif saved != class_name:
        raise ValueError(f"{path!r} holds a {saved} model, not a {class_name} one: load it with {saved}.load()")
