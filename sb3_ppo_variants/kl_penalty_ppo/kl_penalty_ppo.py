"""KLPenaltyPPO: PPO with the adaptive (or fixed) KL penalty (Schulman et al. 2017, arXiv 1707.06347, section 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import FloatSchedule

from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.core.checks import check_choice, check_dual_clip, check_float, check_schedule
from sb3_ppo_variants.core.controls import kl_band
from sb3_ppo_variants.core.losses import clip_fraction, dual_clip_fraction, kl_penalty_loss
from sb3_ppo_variants.kl_penalty_ppo.buffers import DictDistParamsRolloutBuffer, DistParamsRolloutBuffer
from sb3_ppo_variants.kl_penalty_ppo.kl import (
    closed_form_kl,
    dist_params,
    dist_params_dim,
    has_closed_form_kl,
    sample_kl_k1,
    sample_kl_k3,
)

#: ``kl_estimator`` values: the closed form, the low-variance sample estimate (r-1) - log r, the plain -log r.
KL_ESTIMATORS = ("closed_form", "sample_low_var", "sample_log_ratio")


def adapt_beta(
    beta: float,
    kl: float,
    kl_target: float,
    tolerance: float = 1.5,
    factor: float = 2.0,
    beta_min: float = 0.0,
    beta_max: float = float("inf"),
) -> float:
    """The paper's rule for the next beta, from the KL ``d`` measured after an update (section 4).

    - ``d < kl_target / tolerance``: ``beta / factor``
    - ``d > kl_target * tolerance``: ``beta * factor``
    - otherwise ``beta`` unchanged;

    the result is clipped to ``[beta_min, beta_max]``. A non-finite ``d`` (a diverged update) doubles beta,
    the safe direction, instead of propagating NaN.
    """
    band = kl_band(kl, kl_target, tolerance)
    if band > 0:
        beta = beta * factor
    elif band < 0:
        beta = beta / factor
    return float(min(max(beta, beta_min), beta_max))


class KLPenaltyPPO(PolicyGradientAlgorithm):
    """PPO with a KL penalty, adaptive (the paper's section 4) or fixed.

    Paper: https://arxiv.org/abs/1707.06347. The policy term of the loss is
    ``-E[r_t A_t - beta * KL[pi_old(.|s_t), pi_theta(.|s_t)]]`` plus the value and entropy terms of ClipPPO.
    After each policy update (all epochs on one batch) the mean KL ``d`` over the whole batch is measured
    with the updated policy, and beta for the *next* update is set by :func:`adapt_beta`:
    halved if ``d < kl_target / beta_tolerance``, doubled if ``d > kl_target * beta_tolerance``.
    The adapted beta, :attr:`current_beta`, is training state: it is logged (``train/beta``) and saved with the
    model, so ``load()`` then ``learn()`` continues from it (``beta`` stays the initial value, so a ``beta=...``
    passed to ``load()``, as rl_zoo3 does with its config when continuing a run, does not reset it).

    :param policy: The policy: an alias (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or a policy class
    :param env: The environment: a Gymnasium env, a VecEnv, or a registered id such as ``"CartPole-v1"``
    :param learning_rate: Adam's step size: a float, a schedule (called with the progress remaining, 1 at the start and 0 at
        the end) or ``"lin_<float>"``
    :param n_steps: Steps collected per environment before each update; a rollout holds ``n_steps * n_envs`` samples
    :param batch_size: Minibatch size, <= n_steps * n_envs (``None``: the whole rollout)
    :param n_epochs: Passes over the rollout in each update
    :param gamma: Discount factor, in [0, 1]
    :param gae_lambda: The lambda of generalised advantage estimation, in [0, 1] (0: one-step TD, 1: Monte Carlo)
    :param beta: Initial penalty coefficient beta >= 0 (paper: 1; it found the result insensitive to it)
    :param kl_target: The KL target d_targ > 0 of the adaptive rule (paper: 0.01; also 0.003 and 0.03). It can be a
        function of the current progress remaining (from 1 to 0) or a ``"lin_<float>"`` string.
    :param adaptive_beta: Whether beta adapts after each update (True, default) or stays fixed
        (the paper's fixed-beta rows, beta in {0.3, 1, 3, 10})
    :param beta_tolerance: The band of the rule, > 1 (paper: 1.5)
    :param beta_factor: The multiplier of the rule, > 1 (paper: 2)
    :param beta_min: Lower bound on beta, >= 0, so that it never decays to 0 (default 1e-6)
    :param beta_max: Upper bound on beta, > beta_min, so that it never overflows (default 1e6)
    :param kl_estimator: How KL[pi_old, pi_theta] is computed, in the loss and for ``d``: ``"closed_form"``
        (default; exact, from the old distribution's parameters kept in the rollout buffer),
        ``"sample_low_var"`` ((r - 1) - log r at the stored actions) or ``"sample_log_ratio"`` (-log r)
    :param clip_range: Optional clipping epsilon > 0 of the surrogate, combining clipping and the penalty (as RLlib
        does); a float, schedule or ``"lin_<float>"`` string. ``None`` (default): the paper's unclipped surrogate.
    :param clip_range_vf: Clipping parameter for the value function (see ClipPPO); ``None``: no clipping
    :param normalize_advantage: Standardise the advantages (mean 0, std 1) before the loss (where:
        ``normalize_advantage_scope``)
    :param ent_coef: Weight c2 >= 0 of the entropy bonus in the loss
    :param vf_coef: Weight c1 >= 0 of the value loss in the loss
    :param max_grad_norm: Gradients are rescaled so that their global norm is at most this, > 0
    :param use_sde: Explore with generalised state-dependent noise (gSDE) instead of independent Gaussian noise
    :param sde_sample_freq: With gSDE, draw a new noise matrix every this many steps (-1: once per rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, a buffer that keeps the old distribution's
        parameters (:class:`~sb3_ppo_variants.kl_penalty_ppo.buffers.DistParamsRolloutBuffer` or its Dict variant) with
        ``kl_estimator="closed_form"``, SB3's otherwise. With the closed form, a class of your own must subclass one of
        those two; the sample estimators take any ``RolloutBuffer`` subclass
    :param rollout_buffer_kwargs: Extra keyword arguments of the rollout buffer's constructor
    :param target_kl: SB3's early stop of an update's epochs at an approximate KL above ``1.5 * target_kl``;
        distinct from ``kl_target`` (the penalty's target). ``None`` (default): no early stop.
    :param stats_window_size: How many recent episodes the ``rollout/`` statistics (mean return, length, success) average
    :param tensorboard_log: Folder for TensorBoard event files (``None``: none are written; needs the ``tensorboard`` package)
    :param policy_kwargs: Extra keyword arguments of the policy's constructor (``net_arch``, ``activation_fn``, ...)
    :param verbose: 0: silent; 1: training logs and what the algorithm chose (device, backends); 2: debug output
    :param seed: Seed of Python's, NumPy's and torch's generators and of the environment
    :param device: Where the networks live: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ... or a
        ``torch.device``
    :param dual_clip: Dual-clip constant c > 1 (Ye et al. 2020; Tianshou's ``dual_clip``; 3 is common): for a negative
        advantage the objective becomes ``max(min(r A, clip(r, 1 - eps, 1 + eps) A), c A)``. ``None`` (default): off.
        Needs ``clip_range``.
    :param normalize_advantage_scope: Over which samples ``normalize_advantage`` normalises: ``"minibatch"`` (SB3,
        default) or ``"batch"`` (the whole rollout, once per update; rsl_rl, RLlib). ``normalize_advantage=False``: off.
    :param value_clip_form: How ``clip_range_vf`` clips the value loss: ``"prediction"`` (SB3, default: clip the
        prediction around the old value, then MSE) or ``"max"`` (OpenAI baselines / CleanRL:
        ``max((V - R)^2, (V_clip - R)^2)``); no effect without ``clip_range_vf``
    :param recompute_advantage: Before each epoch after the first, recompute the critic's values of the whole batch and
        GAE with them (Tianshou's ``recompute_advantage``; Andrychowicz et al. 2020). Default False.
    :param adaptive_lr_target_kl: KL target of the KL-adaptive learning rate (rsl_rl's ``desired_kl``, typically
        0.01); ``None`` (default) follows ``learning_rate``. When set, the rate is multiplied by
        ``adaptive_lr_factor`` when the KL is below ``target / adaptive_lr_kl_margin``, divided by it above
        ``target * adaptive_lr_kl_margin``, clamped to ``[adaptive_lr_min, adaptive_lr_max]``; it replaces a
        ``learning_rate`` schedule (whose start value becomes the initial rate, with a warning). Distinct from
        ``target_kl`` (SB3's early stop). The adapted rate is saved with the model and logged as
        ``train/learning_rate``.
    :param adaptive_lr_every: ``"minibatch"`` (rsl_rl, default: before each gradient step, from the approximate KL of
        that minibatch measured before the step) or ``"update"`` (once per update, from the approximate KL over the
        whole batch after the update; the rate of the next update)
    :param adaptive_lr_kl_margin: The band of the rule, > 1 (default 2)
    :param adaptive_lr_factor: The multiplier of the rule, > 1 (default 1.5)
    :param adaptive_lr_min: Lower bound of the adapted rate, > 0 (default 1e-5)
    :param adaptive_lr_max: Upper bound of the adapted rate, > ``adaptive_lr_min`` (default 1e-2)
    :param numerics: ``"fast"`` (default): our arithmetic (Adam's fused kernel where you chose no implementation; the
        NumPy rollout step and update for SB3's ``MlpPolicy`` on the CPU), the same math and random draws as SB3 with
        float rounding differences; ``"sb3"``: SB3's arithmetic, bit for bit. Saved with the model.
    :param threads: torch's and BLAS's thread count inside ``learn()``: ``"auto"`` (default: one thread for a small
        policy, unless you set torch's count yourself), an int N, or ``None`` (leave them as they are). Restored
        afterwards; ``verbose >= 1`` says what was done (:mod:`sb3_ppo_variants.threads`)
    :param _init_setup_model: Build the networks and the buffer at construction (``False`` is for ``load()``)
    """

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int | None = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        beta: float = 1.0,
        kl_target: float | Schedule = 0.01,
        adaptive_beta: bool = True,
        beta_tolerance: float = 1.5,
        beta_factor: float = 2.0,
        beta_min: float = 1e-6,
        beta_max: float = 1e6,
        kl_estimator: str = "closed_form",
        clip_range: float | Schedule | None = None,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        dual_clip: float | None = None,
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
        _init_setup_model: bool = True,
    ):
        owner = type(self).__name__
        beta_min = check_float("beta_min", beta_min, low=0.0, owner=owner)
        beta_max = check_float("beta_max", beta_max, low=0.0, low_open=True, owner=owner)
        if beta_min >= beta_max:
            raise ValueError(
                f"{owner}: the beta bounds are inverted: `beta_min` ({beta_min}) must be < `beta_max` ({beta_max})"
            )
        beta = check_float("beta", beta, low=beta_min, high=beta_max, owner=owner)
        kl_target = check_schedule("kl_target", kl_target, owner=owner)  # type: ignore[assignment]
        beta_tolerance = check_float("beta_tolerance", beta_tolerance, low=1.0, low_open=True, owner=owner)
        beta_factor = check_float("beta_factor", beta_factor, low=1.0, low_open=True, owner=owner)
        kl_estimator = check_choice("kl_estimator", kl_estimator, KL_ESTIMATORS, owner=owner)
        clip_range = check_schedule("clip_range", clip_range, allow_none=True, owner=owner)
        dual_clip = check_dual_clip(dual_clip, clip_range, owner=owner)
        if not isinstance(adaptive_beta, (bool, np.bool_)):
            raise TypeError(f"{owner}: `adaptive_beta` must be a bool, got {adaptive_beta!r}")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            normalize_advantage_scope=normalize_advantage_scope,
            value_clip_form=value_clip_form,
            recompute_advantage=recompute_advantage,
            adaptive_lr_target_kl=adaptive_lr_target_kl,
            adaptive_lr_every=adaptive_lr_every,
            adaptive_lr_kl_margin=adaptive_lr_kl_margin,
            adaptive_lr_factor=adaptive_lr_factor,
            adaptive_lr_min=adaptive_lr_min,
            adaptive_lr_max=adaptive_lr_max,
            numerics=numerics,
            threads=threads,
        )
        # Training state lives here, not in _setup_model(): load() restores __dict__ and then calls
        # _setup_model(), so anything reset there would silently lose the adapted beta.
        #: the initial beta (a hyperparameter; rl_zoo3 passes config keys to load(), which may set it again)
        self.beta = beta
        #: the adapted beta used by the next update: training state, saved and restored
        self.current_beta = beta
        self.kl_target = kl_target
        self.adaptive_beta = bool(adaptive_beta)
        self.beta_tolerance = beta_tolerance
        self.beta_factor = beta_factor
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.kl_estimator = kl_estimator
        self.clip_range = clip_range
        self.dual_clip = dual_clip
        self._update_beta: float = beta
        self._update_kl_target: float = float("nan")
        self._current_clip_range: float | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        closed_form = self.kl_estimator == "closed_form"
        if closed_form and self.rollout_buffer_class is None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = self._required_rollout_buffer(dict_obs)
        super()._setup_model()
        self.kl_target = FloatSchedule(self.kl_target)
        if self.clip_range is not None:
            self.clip_range = FloatSchedule(self.clip_range)
        if closed_form and not self._has_closed_form_kl(self.policy.action_dist):
            raise ValueError(
                f"{type(self).__name__}: `kl_estimator='closed_form'` has no closed form for the action distribution "
                f"{type(self.policy.action_dist).__name__}; use one of 'sample_low_var', 'sample_log_ratio'"
            )

    # ------------------------------------------------------------------ hooks of the shared loop

    def _has_closed_form_kl(self, distribution: Distribution) -> bool:
        """Whether :meth:`_kl` has a closed form for the policy's distribution (the masked variant has its own)."""
        return has_closed_form_kl(distribution)

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        if self.kl_estimator != "closed_form":
            return None
        return DictDistParamsRolloutBuffer if dict_obs else DistParamsRolloutBuffer

    def _required_rollout_buffer_reason(self) -> str:
        return (
            "with `kl_estimator='closed_form'` (it stores the old action distribution's parameters for the KL); "
            "the sample estimators ('sample_low_var', 'sample_log_ratio') work with any RolloutBuffer"
        )

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        if self.kl_estimator == "closed_form":
            return {"dist_params_dim": dist_params_dim(self.action_space)}
        return {}

    def _rollout_extras(self, outputs: PolicyOutputs) -> dict[str, Any]:
        if self.kl_estimator != "closed_form":
            return {}
        # the NumPy rollout step gives the same parameters without building the torch distribution
        return {"dist_params": dist_params(outputs.distribution) if outputs.flat_params is None else outputs.flat_params()}

    def _kl(self, batch: Any, log_prob: th.Tensor, distribution: Distribution | Callable[[], Distribution]) -> th.Tensor:
        """Per-sample KL[pi_old(.|s), pi_theta(.|s)] with the configured estimator. ``distribution``: the current
        policy's distribution on the batch, or a function that returns it (called only by the closed form)."""
        if self.kl_estimator == "closed_form":
            current = distribution if isinstance(distribution, Distribution) else distribution()
            return closed_form_kl(batch.old_dist_params, current)
        log_ratio = log_prob - batch.old_log_prob
        if self.kl_estimator == "sample_low_var":
            return sample_kl_k3(log_ratio)
        return sample_kl_k1(log_ratio)

    def _on_update_start(self) -> None:
        progress = self._current_progress_remaining
        self._update_beta = self.current_beta
        self._update_kl_target = self.kl_target(progress)  # type: ignore[operator]
        self._current_clip_range = None if self.clip_range is None else self.clip_range(progress)  # type: ignore[operator]
        if self._current_clip_range is not None:
            self.logger.record("train/clip_range", self._current_clip_range)

    def _policy_loss(
        self,
        batch: Any,
        outputs: PolicyOutputs,
        log_prob: th.Tensor,
        ratio: th.Tensor,
        advantages: th.Tensor,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        kl = self._kl(batch, log_prob, lambda: outputs.distribution)
        loss = kl_penalty_loss(ratio, advantages, kl, self._update_beta, self._current_clip_range, self.dual_clip)
        extra = {"kl_penalty": (self._update_beta * kl.mean()).detach()}
        if self._current_clip_range is not None:
            extra["clip_fraction"] = clip_fraction(ratio, self._current_clip_range)
            if self.dual_clip is not None:
                extra["dual_clip_fraction"] = dual_clip_fraction(ratio, advantages, self.dual_clip)
        return loss, extra

    def measure_kl(self) -> float:
        """Mean KL[pi_old, pi_theta] over the whole rollout buffer, with the current policy (no gradient).

        ``pi_old`` is the policy that collected the rollout; call after :meth:`train`'s epochs.
        """
        assert self.rollout_buffer.generator_ready, "measure_kl() reads the rollout buffer after train() has flattened it"
        return self._batch_mean(self._kl)

    def _on_update_end(self) -> None:
        kl = self.measure_kl()
        beta_used = self._update_beta
        if self.adaptive_beta:
            self.current_beta = adapt_beta(
                beta_used, kl, self._update_kl_target, self.beta_tolerance, self.beta_factor, self.beta_min, self.beta_max
            )
        self.logger.record("train/beta", beta_used)
        self.logger.record("train/kl", kl)
        self.logger.record("train/kl_target", self._update_kl_target)
