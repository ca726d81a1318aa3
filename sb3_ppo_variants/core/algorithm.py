"""The shared algorithm: one rollout loop and one update loop for all our algorithms, in torch.

:class:`PolicyGradientAlgorithm` subclasses SB3's :class:`~stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`
and owns everything the variants share: minibatch epochs over SB3's rollout buffer, advantage normalisation, the value
loss (optionally clipped around the old value), the entropy bonus, gradient clipping, SB3's ``target_kl`` early stop,
the schedules, the logging, and the PPO controls of other libraries (``docs/controls.md``). It reads like SB3's
``ppo.py``: :meth:`~PolicyGradientAlgorithm.collect_rollouts`, :meth:`~PolicyGradientAlgorithm.train` and
:meth:`~PolicyGradientAlgorithm._minibatch_loss` are the code that runs.

An algorithm plugs in through these hooks, so a fix to the loop lands once for all:

- :meth:`~PolicyGradientAlgorithm._policy_loss` (required): the policy-loss term of one minibatch;
- :meth:`~PolicyGradientAlgorithm._on_update_start` / :meth:`~PolicyGradientAlgorithm._on_update_end`: before and
  after all epochs on one batch (schedules, KLPenaltyPPO's beta rule);
- :attr:`~PolicyGradientAlgorithm.uses_critic`: whether a value function is trained and used at all;
- :meth:`~PolicyGradientAlgorithm._rollout_extras`: extra per-step fields for the rollout buffer;
- :meth:`~PolicyGradientAlgorithm._rollout_policy_kwargs` / :meth:`~PolicyGradientAlgorithm._minibatch_policy_kwargs`:
  extra arguments of the policy calls (the masked algorithms' ``action_masks``);
- :meth:`~PolicyGradientAlgorithm._bootstrap_truncations`, :meth:`~PolicyGradientAlgorithm._terminal_values` and
  :meth:`~PolicyGradientAlgorithm._last_values`: time-limit truncations and the values that bootstrap them and GAE;
- :meth:`~PolicyGradientAlgorithm._after_policy_step` and :attr:`~PolicyGradientAlgorithm._call_only_kwargs`: state
  carried from one rollout step to the next (the recurrent algorithms' hidden states);
- :meth:`~PolicyGradientAlgorithm._batch_mean`: a mean over the whole rollout under the current policy;
- :meth:`~PolicyGradientAlgorithm._required_rollout_buffer`, :meth:`~PolicyGradientAlgorithm._required_rollout_buffer_reason`
  and :meth:`~PolicyGradientAlgorithm._rollout_buffer_extra_kwargs`: the buffer the algorithm needs.

How the loop talks to the policy and the optimizer is a backend (:mod:`sb3_ppo_variants.core.backends`): SB3's public
calls, or a faster twin of them that the fast wing's gate (:mod:`sb3_ppo_variants._lean`) chooses once per rollout and
once per update, logs (``rollout/backend``, ``train/backend``) and explains (``verbose >= 1``).
"""

from __future__ import annotations

import io
import math
import pathlib
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

from sb3_ppo_variants._lean import Plan, plan_rollout, plan_update, policy_kwargs_for
from sb3_ppo_variants.core import controls, persistence
from sb3_ppo_variants.core.backends import PolicyCalls, PolicyOutputs
from sb3_ppo_variants.core.buffers import DictTensorRolloutBuffer, TensorRolloutBuffer
from sb3_ppo_variants.core.checks import (
    check_adaptive_lr,
    check_argument_types,
    check_env_fit,
    check_float,
    check_int,
    check_loop_arguments,
    initial_adaptive_lr,
)
from sb3_ppo_variants.core.losses import value_function_loss
from sb3_ppo_variants.threads import check_threads, count_parameters, limited_threads

SelfPolicyGradientAlgorithm = TypeVar("SelfPolicyGradientAlgorithm", bound="PolicyGradientAlgorithm")

SUPPORTED_ACTION_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


class PolicyGradientAlgorithm(OnPolicyAlgorithm):
    """Base class of ClipPPO, KLPenaltyPPO and REINFORCE: SB3's on-policy algorithm with one shared ``train()``.

    The parameters are those of SB3's ``PPO`` plus the PPO controls (``docs/controls.md``), ``numerics`` and
    ``threads``; each algorithm's class documents them (:class:`~sb3_ppo_variants.ClipPPO` lists them all). The ones
    only this class takes:

    :param supported_action_spaces: The action spaces the algorithm accepts (checked with a ``ValueError`` that names
        them, instead of SB3's assert)
    :param _init_setup_model: Whether to build the networks and the buffer now (``False``: the subclass calls
        :meth:`_setup_model` once its own attributes are set, as SB3's algorithms do)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    #: the class a ``policy`` given as a class must subclass (the masked algorithms: sb3-contrib's maskable policy)
    policy_base: ClassVar[type[BasePolicy]] = ActorCriticPolicy
    #: keys of :meth:`_rollout_policy_kwargs` passed to the policy call but not stored by ``rollout_buffer.add``
    _call_only_kwargs: ClassVar[tuple[str, ...]] = ()
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
        numerics: str = "fast",
        threads: int | str | None = "auto",
    ):
        owner = type(self).__name__
        threads = check_threads(threads, owner)
        # Checks that need no environment come first, so that bad input fails before an env is built.
        a = check_loop_arguments(
            owner,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range_vf=clip_range_vf,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            sde_sample_freq=sde_sample_freq,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            verbose=verbose,
            seed=seed,
            normalize_advantage_scope=normalize_advantage_scope,
            value_clip_form=value_clip_form,
            recompute_advantage=recompute_advantage,
            numerics=numerics,
        )
        adaptive_lr = check_adaptive_lr(
            target_kl=adaptive_lr_target_kl,
            every=adaptive_lr_every,
            kl_margin=adaptive_lr_kl_margin,
            factor=adaptive_lr_factor,
            lr_min=adaptive_lr_min,
            lr_max=adaptive_lr_max,
            owner=owner,
        )
        initial_lr = initial_adaptive_lr(owner, a["learning_rate"], adaptive_lr)
        check_argument_types(
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
            learning_rate=a["learning_rate"],
            n_steps=a["n_steps"],
            gamma=a["gamma"],
            gae_lambda=a["gae_lambda"],
            ent_coef=a["ent_coef"],
            vf_coef=a["vf_coef"],
            max_grad_norm=a["max_grad_norm"],
            use_sde=use_sde,
            sde_sample_freq=a["sde_sample_freq"],
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=a["stats_window_size"],
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=a["verbose"],
            device=device,
            seed=a["seed"],
            _init_setup_model=False,
            # checked below with a ValueError that names the parameter, rather than SB3's assert
            supported_action_spaces=None,
        )
        if self.env is not None:
            check_env_fit(
                owner, self.env, self.action_space, supported_action_spaces, a["n_steps"], a["batch_size"], normalize_advantage
            )
        #: saved with the model, so that load() can refuse a file of another algorithm
        self._algorithm_name = type(self).__name__
        self.batch_size = a["batch_size"]
        self.n_epochs = a["n_epochs"]
        self.clip_range_vf = a["clip_range_vf"]
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = a["target_kl"]
        self.normalize_advantage_scope = a["normalize_advantage_scope"]
        self.value_clip_form = a["value_clip_form"]
        self.recompute_advantage = a["recompute_advantage"]
        self.numerics: str = a["numerics"]
        self.threads = threads
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
        """SB3's ``OnPolicyAlgorithm._setup_model`` (learning-rate schedule, seeding, policy, rollout buffer), with the
        policy built before the buffer so that the buffer can be sized from it (the recurrent buffers' hidden-state
        shape, :meth:`_rollout_buffer_extra_kwargs`); SB3 builds the buffer first, and neither draws random numbers."""
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = DictTensorRolloutBuffer if dict_obs else TensorRolloutBuffer
        else:
            self._check_rollout_buffer_class(self.rollout_buffer_class, dict_obs)
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        # The policy is built with the fused-Adam choice and the buffer with the algorithm's own arguments, while
        # `policy_kwargs` and `rollout_buffer_kwargs` (what save() stores and load() compares) stay what the user passed.
        policy_kwargs = policy_kwargs_for(getattr(self, "numerics", "fast"), self.policy_kwargs, self.device)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self._maybe_recommend_cpu()
        self.rollout_buffer = self.rollout_buffer_class(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            **{**self.rollout_buffer_kwargs, **self._rollout_buffer_extra_kwargs()},
        )
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

        With ``recompute_advantage`` the terminal observations and the rewards before bootstrapping are kept (for this
        rollout), so that the bootstrapped value can be recomputed with the current critic as well.
        """
        if self.recompute_advantage:
            self._remember_truncations(rewards, dones, infos)
        truncated = _truncated_envs(dones, infos)
        if truncated:
            values = self._terminal_values([infos[idx]["terminal_observation"] for idx in truncated], truncated)
            rewards[truncated] += (self.gamma * values).cpu().numpy()

    def _terminal_values(self, observations: list[Any], envs: list[int]) -> th.Tensor:
        """V(terminal observation) of the truncated ``envs``, ``(len(envs),)``, for bootstrapping (the recurrent
        algorithms evaluate them with each env's hidden state)."""
        calls = getattr(self, "_rollout_calls", None) or PolicyCalls(self.policy)
        return calls.terminal_values(observations)

    def _last_values(self, observations: Any, dones: np.ndarray) -> th.Tensor:
        """V(s_T) of the observations after a rollout's last step, ``(n_envs, 1)``, for GAE (call under no_grad)."""
        return self.policy.predict_values(obs_as_tensor(observations, self.device))  # type: ignore[arg-type]

    def _after_policy_step(self, outputs: PolicyOutputs) -> None:
        """Called after each rollout step's policy call (the recurrent algorithms keep the new hidden states)."""

    def _remember_truncations(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """For ``recompute_advantage``: this step's truncated envs, their terminal observation and raw reward."""
        if self.rollout_buffer.pos == 0:
            self._truncations = []  # the first step of a new rollout
        for idx in _truncated_envs(dones, infos):
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
        plan = plan_rollout(self)
        self._report_backend("rollout", plan)
        calls = self._rollout_calls = plan.backend
        calls.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with plan.grad_mode, plan.scope:  # SB3: th.no_grad()
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs, step_kwargs = self._policy_step(calls, obs_tensor, env)
            clipped_actions = self._clip_actions(actions)

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
                **step_kwargs,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        with th.no_grad():
            if self.uses_critic:
                values = self._last_values(new_obs, dones)
            else:
                values = th.zeros((env.num_envs, 1), device=self.device)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _policy_step(
        self, calls: PolicyCalls, obs_tensor: Any, env: VecEnv
    ) -> tuple[np.ndarray, th.Tensor, th.Tensor, dict[str, Any]]:
        """One policy step: the actions (NumPy, shaped like the action space), values (zeros without a critic),
        log-probabilities, and the extra keyword arguments of ``rollout_buffer.add``."""
        policy_kwargs = self._rollout_policy_kwargs(env)
        try:
            outputs = calls.act(obs_tensor, with_values=self.uses_critic, **policy_kwargs)
        except RuntimeError as exc:  # torch's sampling error; SB3's distribution validation raises a ValueError first
            _raise_if_parameters_not_finite(type(self).__name__, self.policy, exc)
            raise
        self._after_policy_step(outputs)
        extras = self._rollout_extras(outputs)
        values = outputs.values if outputs.values is not None else th.zeros((env.num_envs, 1), device=self.device)
        assert outputs.actions is not None
        # SB3: actions.cpu().numpy() (a view of the tensor's memory on the CPU), then reshaped
        actions = outputs.actions.numpy() if self.device.type == "cpu" else outputs.actions.cpu().numpy()
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[arg-type,misc]
        stored = {key: value for key, value in policy_kwargs.items() if key not in self._call_only_kwargs}
        return actions, values, outputs.log_prob, {**stored, **extras} if stored else extras

    def _clip_actions(self, actions: np.ndarray) -> np.ndarray:
        """The actions sent to the env: Box actions unscaled (squashed policies) or clipped to the bounds, as SB3."""
        if not isinstance(self.action_space, spaces.Box):
            return actions
        if self.policy.squash_output:
            return self.policy.unscale_action(actions)
        return np.clip(actions, self.action_space.low, self.action_space.high)

    # ------------------------------------------------------------------ training

    def train(self) -> None:
        """One policy update on the collected rollout: ``n_epochs`` passes of minibatch gradient steps."""
        self._train()

    def _train(self) -> None:
        plan = plan_update(self)
        self._report_backend("train", plan)
        with plan.scope:
            self._update(plan.backend)

    def _update(self, backend: Any) -> None:
        """The update loop; ``backend`` computes each minibatch's loss (``loss``), its gradients (``backward``) and the
        clipped optimizer step (``step``)."""
        backend.calls.set_training_mode(True)
        if self.current_learning_rate is None:
            self._update_learning_rate(self.policy.optimizer)
        else:
            self._set_learning_rate(self.current_learning_rate)
        clip_range_vf = self.clip_range_vf(self._current_progress_remaining) if self.clip_range_vf is not None else None  # type: ignore[operator]
        self._on_update_start()

        # Statistics stay on the device as 0-dim tensors (or floats) and are read back once, at the end.
        stats: dict[str, list[Any]] = defaultdict(list)
        grad_norms: list[th.Tensor] = []
        approx_kl_divs: list[th.Tensor] = []
        loss: th.Tensor | None = None
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            self._start_epoch(epoch)
            for batch in self.rollout_buffer.get(self.batch_size):
                loss, approx_kl_div = backend.loss(batch, clip_range_vf, stats)
                approx_kl_divs.append(approx_kl_div)
                continue_training = self._before_step(epoch, approx_kl_div)
                if not continue_training:
                    break
                backend.backward()
                grad_norms.append(backend.step())

            self._n_updates += 1
            if not continue_training:
                break

        self._check_update_finite(grad_norms)
        self._end_update_controls()
        self._on_update_end()
        self._record_update_logs(stats, approx_kl_divs, loss, clip_range_vf)

    def _before_step(self, epoch: int, approx_kl_div: th.Tensor) -> bool:
        """SB3's ``target_kl`` early stop (False: stop the update), then the per-minibatch adaptive learning rate."""
        if self.target_kl is not None and approx_kl_div.item() > 1.5 * self.target_kl:
            if self.verbose >= 1:
                print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div.item():.2f}")
            return False
        if self.current_learning_rate is not None and self.adaptive_lr_every == "minibatch":
            # rsl_rl's order: the KL of this minibatch before the step sets the rate of this very step
            self._adapt_learning_rate(approx_kl_div.item())
        return True

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

    # ------------------------------------------------------------------ controls (docs/controls.md)

    def _start_epoch(self, epoch: int) -> None:
        """``recompute_advantage`` before each epoch after the first; batch-level advantage normalisation once per
        update and after each recomputation."""
        recomputed = epoch > 0 and self.recompute_advantage
        if recomputed:
            self._recompute_advantages()
        if epoch == 0 or recomputed:
            self._normalize_batch_advantages()

    def _recompute_advantages(self) -> None:
        """``recompute_advantage``: the critic's values of the whole batch, then GAE with them
        (:func:`~sb3_ppo_variants.core.controls.recompute_advantages`)."""
        controls.recompute_advantages(
            self.policy,
            self.rollout_buffer,
            self._chunk_size(),
            self._last_obs,
            np.asarray(self._last_episode_starts),
            self._truncations,
            self.gamma,
            self.gae_lambda,
        )

    def _normalize_batch_advantages(self) -> None:
        """``normalize_advantage_scope="batch"``: normalise the advantages of the whole rollout, in the buffer."""
        if self.normalize_advantage and self.normalize_advantage_scope == "batch":
            controls.normalize_batch_advantages(self.rollout_buffer)

    def _end_update_controls(self) -> None:
        """The adaptive learning rate's logs, and its once-per-update rule."""
        if self.current_learning_rate is None:
            return
        self.logger.record("train/learning_rate", self.current_learning_rate)  # the rate of the last step
        if self.adaptive_lr_every == "update":
            self._adapt_learning_rate(self._batch_approx_kl())  # the rate of the next update
        self.logger.record("train/adaptive_lr_kl", self._adaptive_lr_kl)

    def _set_learning_rate(self, learning_rate: float) -> None:
        for group in self.policy.optimizer.param_groups:
            group["lr"] = learning_rate

    def _adapt_learning_rate(self, kl: float) -> None:
        """One application of the KL-adaptive rule: the next rate from ``kl``, set on the optimizer."""
        assert self.current_learning_rate is not None and self.adaptive_lr_target_kl is not None
        self._adaptive_lr_kl = kl
        self.current_learning_rate = controls.adapt_learning_rate(
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
        return self._batch_mean(controls.approx_kl_per_sample)

    def _batch_mean(self, per_sample: Any) -> float:
        """The mean of ``per_sample(batch, log_prob, distribution)`` over the whole rollout, with the current policy
        and no gradient (:func:`~sb3_ppo_variants.core.controls.batch_mean`)."""
        return controls.batch_mean(
            self.policy,
            self.rollout_buffer,
            self._chunk_size(),
            isinstance(self.action_space, spaces.Discrete),
            self._minibatch_policy_kwargs,
            per_sample,
        )

    # ------------------------------------------------------------------ logs

    def _report_backend(self, phase: str, plan: Plan) -> None:
        """Log the backend of this rollout/update (``rollout/backend``, ``train/backend``); with ``verbose >= 1`` print
        each reason a faster backend was declined, once."""
        # a string: kept out of the numeric outputs (CSV files are often read as floats, TensorBoard plots scalars)
        self.logger.record(f"{phase}/backend", plan.name, exclude=("tensorboard", "csv"))
        if self.verbose < 1 or not plan.declined:
            return
        reported = self.__dict__.setdefault("_declined_reported", set())
        for reason in plan.declined:
            if (phase, reason) not in reported:
                reported.add((phase, reason))
                print(f"{type(self).__name__}: {phase} on the {plan.name} backend; declined {reason}")

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
        for key, value in _update_means(stats, approx_kl_divs, loss).items():
            self.logger.record(key, value)
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
        scratch = ["_truncations", "_fast_path_cache", "_rollout_calls", "_declined_reported"]
        return [*super()._excluded_save_params(), *scratch]

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
        fused-Adam choice inside ``policy_kwargs``, also accepts the ``policy_kwargs`` it was built with. A file saved
        before ``numerics`` existed keeps the arithmetic it was trained with. Loading runs pickled code, as in SB3: only
        load files from a trusted source.
        """
        data = persistence.check_model_file(cls.__name__, path)
        requested = kwargs.pop("policy_kwargs", persistence.NOT_GIVEN)
        model = super().load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        persistence.after_load(model, data, requested, kwargs)
        return model

    # ------------------------------------------------------------------ learn

    def learn(
        self: SelfPolicyGradientAlgorithm,
        total_timesteps: int | float,
        callback: MaybeCallback = None,
        log_interval: int | None = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPolicyGradientAlgorithm:
        """Train for ``total_timesteps`` environment steps (an int, or a float such as ``1e6``).

        :param total_timesteps: The total number of samples (env steps) to train on, > 0
        :param callback: callback(s) called at every step with state of the algorithm
        :param log_interval: The number of rollouts between two dumps of the logs, >= 1; ``None`` dumps none (SB3's
            meaning: log with a callback such as ``LogEveryNTimesteps`` instead)
        :param tb_log_name: the name of the run for TensorBoard logging (default: the class name)
        :param reset_num_timesteps: whether or not to reset the current timestep number (used in logging)
        :param progress_bar: Display a progress bar using tqdm and rich
        :return: the trained model
        """
        owner = type(self).__name__
        if isinstance(total_timesteps, (str, bytes)) or isinstance(total_timesteps, bool):
            raise TypeError(
                f"{owner}: `total_timesteps` must be a number of steps (an int, or a whole float such as 1e6), "
                f"got {total_timesteps!r} of type {type(total_timesteps).__name__}"
            )
        total = check_float("total_timesteps", total_timesteps, low=0.0, low_open=True, owner=owner)
        if not math.isclose(total, round(total)):
            raise ValueError(f"{owner}: `total_timesteps` must be a whole number of steps, got {total_timesteps!r}")
        if log_interval is not None:
            log_interval = check_int("log_interval", log_interval, minimum=1, owner=owner)
        # threads: see sb3_ppo_variants.threads (a model loaded from a file of an earlier release has no setting)
        with limited_threads(getattr(self, "threads", "auto"), count_parameters(self.policy), owner, self.verbose):
            return super().learn(
                total_timesteps=round(total),
                callback=callback,
                log_interval=log_interval,  # type: ignore[arg-type]
                tb_log_name=tb_log_name or owner,
                reset_num_timesteps=reset_num_timesteps,
                progress_bar=progress_bar,
            )


def _raise_if_parameters_not_finite(owner: str, policy: Any, error: Exception) -> None:
    """A ``ValueError`` naming the cause where the policy's parameters are NaN or inf (what SB3 raises there)."""
    if not all(bool(th.isfinite(parameter).all()) for parameter in policy.parameters()):
        raise ValueError(
            f"{owner}: the policy's parameters are NaN or inf, so its action distribution cannot be sampled (set them "
            "with finite values, or load a model saved before it diverged)"
        ) from error


def _update_means(stats: dict[str, list[Any]], approx_kl_divs: list[th.Tensor], loss: th.Tensor | None) -> dict[str, Any]:
    """The ``train/`` means of one update as floats: the tensors among them read back in one call."""
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
    return {key: next(read_back) if isinstance(value, th.Tensor) else value for key, value in means.items()}


def _truncated_envs(dones: np.ndarray, infos: list[dict[str, Any]]) -> list[int]:
    """The envs whose episode ended by a time limit at this step, with their terminal observation."""
    return [
        idx
        for idx, done in enumerate(dones)
        if done and infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False)
    ]


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
